"""Tiny banks: a machine type with one training clip is a named, counted failure while the others finish;
a bank of two clips refuses to decide (recorded) instead of flagging every normal clip; a domain without
training clips is named in a warning."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from asdkit.data.manifest import Clip
from asdkit.data.synthetic import SyntheticSpec, generate
from asdkit.detectors.base import MIN_DECISION_CLIPS, ClipFeatures, Detector
from asdkit.detectors.registry import create_detector
from asdkit.errors import ModelError
from asdkit.features.config import FeatureConfig
from asdkit.run_result import load_run
from tests.helpers.cli import asdkit_cli as cli

PARTIAL_EXIT = 3


def _keep(folder: Path, n: int, pattern: str = "*.wav") -> None:
    for path in sorted(folder.glob(pattern))[n:]:
        path.unlink()


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """fan without section 01's target training clips, valve with one training clip, pump with two."""
    base = tmp_path_factory.mktemp("tiny")
    root = generate(
        base / "data", layout="dcase2022", spec=SyntheticSpec.tiny(machines=("fan", "valve", "pump"))
    )
    _keep(root / "valve" / "train", 1)
    _keep(root / "pump" / "train", 2)
    for path in (root / "fan" / "train").glob("section_01_target_*.wav"):
        path.unlink()
    return root


@pytest.fixture(scope="module")
def run(tree: Path) -> tuple[Path, object]:
    root, base = tree, tree.parent
    out = base / "run"
    proc = cli(
        "run",
        "--data",
        str(root),
        "--out",
        str(out),
        "--no-track",
        "--no-plots",
        "--cache-dir",
        str(base / "c"),
    )
    return out, proc


def test_a_machine_type_with_one_clip_is_a_named_failure_and_the_others_finish(run):
    out, proc = run
    assert proc.returncode == PARTIAL_EXIT, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "error: not trained: valve:" in proc.stderr and "1 training clip(s)" in proc.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["status"] == "partial"
    assert list(config["failed_machines"]) == ["valve"]
    assert (out / "result.csv").is_file()
    assert sorted(p.name for p in (out / "models").iterdir()) == ["fan", "pump"]
    assert not list((out / "scores").glob("*valve*"))


def test_a_bank_of_two_clips_refuses_to_decide_and_says_so(run):
    out, proc = run
    config = json.loads((out / "config.json").read_text())
    assert "pump" in config["decisions_refused"] and "held-out" in config["decisions_refused"]["pump"]
    assert "decisions refused" in proc.stderr
    model = json.loads((out / "models" / "pump" / "model.json").read_text())
    assert model["threshold_refused"] and model["threshold"] is None
    assert load_run(out).thresholds["pump"] == np.inf  # the report reads the refusal back
    for path in (out / "scores").glob("decision_result_pump_*.csv"):
        decisions = [int(row[1]) for row in csv.reader(path.open())]
        assert decisions and not all(decisions)
    assert "fan" not in config["decisions_refused"]


def test_a_domain_without_training_clips_is_named(run):
    _, proc = run
    assert "fan section 01 target: no training clips" in proc.stderr


def test_train_records_a_machine_type_it_cannot_train_and_trains_the_others(tree):
    out = tree.parent / "train"
    proc = cli("train", "--data", str(tree), "--out", str(out), "--model", "knn", "--no-track")
    assert proc.returncode == PARTIAL_EXIT, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "error: not trained: valve:" in proc.stderr and "1 training clip(s)" in proc.stderr
    assert "decisions refused" in proc.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["status"] == "partial" and list(config["failed_machines"]) == ["valve"]
    assert list(config["decisions_refused"]) == ["pump"]
    assert sorted(p.name for p in (out / "models").iterdir()) == ["fan", "pump"]


CONFIG = FeatureConfig(n_mels=8)


def _bundle(n: int) -> ClipFeatures:
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(8, 20)).astype(np.float32) for _ in range(n)]
    return ClipFeatures(
        arrays, [Clip(path=f"/m/{i}.wav", machine="m", section="00") for i in range(n)], CONFIG
    )


def test_one_clip_is_refused_by_name():
    with pytest.raises(ModelError, match="1 training clip"):
        create_detector("knn").fit(_bundle(1))


def _not_strict_json(token: str) -> None:
    raise AssertionError(f"model.json holds {token}, which strict JSON parsers reject")


def test_a_null_threshold_without_a_refusal_is_refused_on_load(tmp_path):
    folder = create_detector("knn").fit(_bundle(4 * MIN_DECISION_CLIPS)).save(tmp_path / "m")
    model = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**model, "threshold": None}))
    with pytest.raises(ModelError, match="threshold"):
        Detector.load(folder)


def test_too_few_held_out_scores_refuse_decisions_through_save_and_load(tmp_path):
    detector: Detector = create_detector("knn").fit(_bundle(MIN_DECISION_CLIPS - 1))
    assert detector.threshold_ == np.inf and "training clips" in detector.threshold_refused_
    assert not detector.predict(_bundle(3)).any()
    folder = detector.save(tmp_path / "m")
    model = json.loads((folder / "model.json").read_text(), parse_constant=_not_strict_json)
    assert model["threshold"] is None and model["threshold_refused"] == detector.threshold_refused_
    loaded = Detector.load(folder)
    assert loaded.threshold_ == np.inf and loaded.threshold_refused_ == detector.threshold_refused_
    enough = create_detector("knn").fit(_bundle(4 * MIN_DECISION_CLIPS))
    assert np.isfinite(enough.threshold_) and not hasattr(enough, "threshold_refused_")


def test_a_failure_in_a_worker_process_is_the_same_named_failure(tree):
    from asdkit import api
    from asdkit.tracking import TrackingOptions

    runs = {}
    for jobs in (1, 2):
        out = tree.parent / f"jobs{jobs}"
        result = api.run(
            tree, out, model="knn", jobs=jobs, plots=False, tracking=TrackingOptions(mlflow=False)
        )
        runs[jobs] = (result.failed, json.loads((out / "config.json").read_text())["status"])
        runs[jobs] += (sorted((out / "scores").iterdir()),)
    assert runs[2][:2] == runs[1][:2] and list(runs[1][0]) == ["valve"] and runs[1][1] == "partial"
    assert [p.read_bytes() for p in runs[2][2]] == [p.read_bytes() for p in runs[1][2]] != []
