"""End to end: synthetic trees of each layout -> run -> challenge files -> result.csv -> score/evaluate."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from asdkit import api
from asdkit.data.synthetic import SyntheticSpec, generate
from asdkit.detectors.base import Detector
from tests.helpers.cli import asdkit_cli as cli

QUICK = {"epochs": 2, "batch_size": 256, "accelerator": "cpu"}
SPEC = SyntheticSpec.tiny(machines=("pump", "fan"))


@pytest.fixture(scope="module")
def tree_2022(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("d22") / "data", layout="dcase2022", spec=SPEC)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def run_2022(tree_2022, cache_dir, tmp_path_factory) -> api.RunResult:
    return api.run(
        tree_2022, tmp_path_factory.mktemp("run") / "r", model="ae", params=QUICK, cache_dir=cache_dir
    )


def test_run_writes_every_challenge_file(run_2022):
    out = run_2022.run_dir
    config = json.loads((out / "config.json").read_text())
    assert config["status"] == "complete"
    assert config["layout"] == "dcase2022" and config["machines"] == ["fan", "pump"]
    assert config["params"]["epochs"] == 2
    assert config["environment"]["torch"]
    names = sorted(p.name for p in (out / "scores").iterdir())
    for machine in ("fan", "pump"):
        for section in ("00", "01"):
            assert f"anomaly_score_{machine}_section_{section}_test.csv" in names
            assert f"decision_result_{machine}_section_{section}_test.csv" in names
    assert not [n for n in names if n.startswith(".")], "temporary files left behind"
    rows = list(csv.reader((out / "scores" / "anomaly_score_fan_section_00_test.csv").open()))
    assert len(rows) == 2 * (SPEC.n_test_normal + SPEC.n_test_anomaly)
    assert all(r[0].startswith("section_00_") and np.isfinite(float(r[1])) for r in rows)
    for machine in ("fan", "pump"):
        assert Detector.load(out / "models" / machine).threshold_ > 0
    assert (out / "manifest.csv").is_file()


def test_result_csv_equals_evaluating_the_written_files(run_2022):
    again = api.evaluate(run_2022.run_dir / "scores")
    assert again.official_score == pytest.approx(run_2022.evaluation.official_score, abs=1e-12)
    text = (run_2022.run_dir / "result.csv").read_text()
    assert text.splitlines()[0] == "fan"
    assert "AUC (source),AUC (target),pAUC" in text


def test_same_seed_repeats_exactly(tree_2022, cache_dir, tmp_path, run_2022):
    again = api.run(tree_2022, tmp_path / "again", model="ae", params=QUICK, cache_dir=cache_dir)
    for machine, scores in run_2022.scores.items():
        np.testing.assert_allclose(again.scores[machine], scores, rtol=1e-6)


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ("dcase2020", ["anomaly_score_pump_id_00.csv", "anomaly_score_pump_id_02.csv"]),
        (
            "dcase2021",
            [
                "anomaly_score_pump_section_00_source_test.csv",
                "anomaly_score_pump_section_01_target_test.csv",
            ],
        ),
    ],
)
def test_older_layouts_get_their_file_names_and_scheme(layout, expected, tmp_path, cache_dir):
    data = generate(tmp_path / "data", layout=layout, spec=SyntheticSpec.tiny(machines=("pump",)))
    result = api.run(data, tmp_path / "run", model="ae", params=QUICK, cache_dir=cache_dir)
    names = {p.name for p in (tmp_path / "run" / "scores").iterdir()}
    assert set(expected) <= names
    assert result.evaluation.scheme == layout


def test_score_command_on_a_folder_and_a_file(run_2022, tree_2022, cache_dir):
    clip = next((tree_2022 / "fan" / "test").glob("*.wav"))
    proc = cli("score", str(run_2022.run_dir), str(tree_2022 / "fan" / "test"), "--cache-dir", str(cache_dir))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "file,machine,score,decision,threshold"
    assert len(lines) - 1 == len(list((tree_2022 / "fan" / "test").glob("*.wav")))
    row = next(r for r in csv.DictReader(lines) if Path(r["file"]).name == clip.name)
    scores_file = run_2022.run_dir / "scores" / f"anomaly_score_fan_section_{clip.name[8:10]}_test.csv"
    official = {r[0]: float(r[1]) for r in csv.reader(scores_file.open())}
    assert float(row["score"]) == pytest.approx(official[clip.name], rel=1e-9)
    assert row["decision"] == str(int(float(row["score"]) > float(row["threshold"])))


def test_score_needs_a_machine_when_the_run_has_several(run_2022, tmp_path, tree_2022):
    clip = next((tree_2022 / "fan" / "test").glob("*.wav"))
    loose = tmp_path / "clip.wav"
    loose.write_bytes(clip.read_bytes())
    proc = cli("score", str(run_2022.run_dir), str(loose))
    assert proc.returncode == 2
    assert "--machine" in proc.stderr and "Traceback" not in proc.stderr
    assert cli("score", str(run_2022.run_dir), str(loose), "--machine", "fan").returncode == 0


def test_evaluate_command_prints_the_official_score(run_2022, tmp_path):
    proc = cli("evaluate", str(run_2022.run_dir), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "official score" in proc.stdout
    assert (tmp_path / "result.csv").read_text() == (run_2022.run_dir / "result.csv").read_text()


def test_interrupted_run_does_not_look_complete(tree_2022, cache_dir, tmp_path, monkeypatch):
    from asdkit.reports import submission

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(submission, "write_scores", boom)
    with pytest.raises(KeyboardInterrupt):
        api.run(tree_2022, tmp_path / "run", model="ae", params=QUICK, cache_dir=cache_dir, machines=["fan"])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["status"] == "interrupted"
    assert not (tmp_path / "run" / "result.csv").exists()


def test_debug_run_uses_few_clips_and_still_evaluates(cache_dir, tmp_path):
    """A tree larger than the debug caps: training and every test set are cut to them, and it evaluates."""
    from asdkit.data.debug import DEBUG_TEST_CLIPS_PER_SET, DEBUG_TRAIN_CLIPS_PER_SECTION
    from tests.helpers.trees import make_tree

    n_train, n_test = DEBUG_TRAIN_CLIPS_PER_SECTION + 4, DEBUG_TEST_CLIPS_PER_SET + 2
    tree = make_tree(tmp_path / "data", "dcase2022", machines=("fan",), n_train=n_train, n_test=n_test)
    result = api.run(
        tree, tmp_path / "run", model="ae", debug=True, cache_dir=cache_dir, params={"accelerator": "cpu"}
    )
    assert result.evaluation is not None and result.evaluation.official_score > 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["params"]["epochs"] == 2 and config["debug"] is True
    sections = 2  # "00", "01": each n_train source + 1 target training clips
    model = json.loads((tmp_path / "run" / "models" / "fan" / "model.json").read_text())
    assert model["metadata"]["n_train_clips"] == sections * (DEBUG_TRAIN_CLIPS_PER_SECTION + 1)
    score_files = (tmp_path / "run" / "scores").glob("anomaly_score_*.csv")
    rows = [row for f in score_files for row in csv.reader(f.open())]
    sets = sections * 2 * 2  # section x domain x label
    assert len(rows) == sets * DEBUG_TEST_CLIPS_PER_SET < sets * n_test


def test_cli_run_mixes_channels_when_asked(tmp_path, cache_dir):
    data = generate(tmp_path / "data", layout="dcase2022", spec=SyntheticSpec.tiny(machines=("fan",)))
    proc = cli(
        "run",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "run"),
        "--channel",
        "mix",
        "--quiet",
        "--model",
        "ae",
        "--param",
        "epochs=1",
        "--param",
        "accelerator=cpu",
        "--cache-dir",
        str(cache_dir),
    )
    assert proc.returncode == 0, proc.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["features"]["channel"] == "mix" and config["status"] == "complete"
    assert "official score" in proc.stdout
