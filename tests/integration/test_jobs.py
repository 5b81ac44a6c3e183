"""``--jobs N``: machine types (and seeds) in worker processes, writing a serial run's files byte for byte."""

from __future__ import annotations

import json

import pytest

from asdkit import api
from asdkit.errors import AsdkitError
from asdkit.rundir import CONFIG_FILE, LOCK_NAME, RESULT_FILE, SCORES_DIR, SEEDS_CSV, seed_dir
from asdkit.tracking import TrackingOptions
from tests.helpers.cli import asdkit_cli
from tests.helpers.trees import make_tree

NO_TRACKING = TrackingOptions(mlflow=False)


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.csv"))}


@pytest.mark.slow
@pytest.mark.parametrize(("model", "params"), [("knn", {}), ("ae", {"epochs": 1, "accelerator": "cpu"})])
def test_two_jobs_write_the_score_files_of_one(tmp_path, model, params):
    tree = make_tree(tmp_path / "data", "dcase2022", n_train=6)
    runs = {}
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        messages: list[str] = []
        api.run(tree, out, model=model, params=params, jobs=jobs, plots=False, tracking=NO_TRACKING,
                cache_dir=tmp_path / "cache", progress=messages.append)  # fmt: skip
        assert json.loads((out / CONFIG_FILE).read_text())["status"] == "complete"
        assert not (out / LOCK_NAME).exists()
        runs[jobs] = (_files(out / SCORES_DIR), (out / RESULT_FILE).read_bytes(), messages)
    scores_1, result_1, _ = runs[1]
    scores_2, result_2, messages_2 = runs[2]
    assert len(scores_1) == 8  # 2 machine types x 2 sections x (scores, decisions)
    assert scores_2 == scores_1 and result_2 == result_1
    assert any("2 worker processes" in m for m in messages_2)
    assert sorted(m.split(":")[0] for m in messages_2 if "trained and scored" in m) == ["fan", "valve"]


@pytest.mark.slow
def test_seeds_in_two_jobs_equal_seeds_one_after_the_other(tmp_path):
    tree = make_tree(tmp_path / "data", "dcase2022", machines=("fan",), n_train=6)
    for jobs in (1, 2):
        api.run(tree, tmp_path / f"jobs{jobs}", model="knn", seeds=[0, 1], jobs=jobs, plots=False,
                tracking=NO_TRACKING, cache_dir=tmp_path / "cache")  # fmt: skip
    for seed in (0, 1):
        assert _files(seed_dir(tmp_path / "jobs2", seed)) == _files(seed_dir(tmp_path / "jobs1", seed))
    assert (tmp_path / "jobs2" / SEEDS_CSV).read_bytes() == (tmp_path / "jobs1" / SEEDS_CSV).read_bytes()


def test_jobs_refuse_nonsense_and_ddp(tmp_path):
    tree = make_tree(tmp_path / "data", "dcase2022", machines=("fan",), n_train=3)
    with pytest.raises(AsdkitError, match="--jobs 0"):
        api.run(tree, tmp_path / "r", model="knn", jobs=0)
    with pytest.raises(AsdkitError, match="DDP"):
        api.train(tree, tmp_path / "m", model="ae", params={"devices": 2, "strategy": "ddp"}, jobs=2)
    assert not (tmp_path / "r").exists() and not (tmp_path / "m").exists()
    done = asdkit_cli(
        "run", "--data", str(tree), "--out", str(tmp_path / "r"), "--model", "knn", "--jobs", "0"
    )
    assert done.returncode == 2 and "error: --jobs 0" in done.stderr
