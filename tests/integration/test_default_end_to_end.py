"""The detector users get without ``--model``, end to end as they meet it: ``asdkit run``, ``train``,
``score``, ``demo --debug``, the service and the watcher on its model; and the commands around them
(``detectors``, ``recipes``, ``prepare``) and ``asdkit.demo.demo``/``api.load_models``.

The default is whatever the registry names (:data:`asdkit.detectors.registry.DEFAULT_DETECTOR`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path

import pytest

from asdkit import api
from asdkit.demo import demo
from asdkit.detectors.base import Detector
from asdkit.detectors.registry import DEFAULT_DETECTOR, available_detectors, get_detector_class
from asdkit.errors import ModelError
from asdkit.pipeline import resolved_params
from tests.helpers.cli import asdkit_cli as cli
from tests.helpers.trees import make_tree

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("default") / "data", "dcase2022", n_train=6, n_test=3)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def default_run(tree, cache, tmp_path_factory) -> Path:
    """``asdkit run`` exactly as the README's first run line: no ``--model``."""
    out = tmp_path_factory.mktemp("run") / "default"
    proc = cli("run", "--data", str(tree), "--out", str(out), "--no-plots", "--cache-dir", str(cache))
    assert proc.returncode == 0, proc.stderr
    assert "official score" in proc.stdout and "Traceback" not in proc.stderr
    return out


def _config(run_dir: Path) -> dict:
    return json.loads((run_dir / "config.json").read_text())


def _test_clips(tree: Path, machine: str, label: str) -> list[Path]:
    return sorted((tree / machine / "test").glob(f"*_{label}_*.wav"))


def test_run_without_model_trains_and_evaluates_the_default(default_run):
    config = _config(default_run)
    assert config["model"] == DEFAULT_DETECTOR and config["status"] == "complete"
    # config.json spells out what the default resolved to (its members, for an ensemble), so a rerun from it
    # trains the same thing after the default changes
    assert config["params"] == resolved_params(DEFAULT_DETECTOR, None, 0, False)
    assert 0.0 < config["official_score"] <= 1.0
    for machine in ("fan", "valve"):
        model = Detector.load(default_run / "models" / machine)
        assert model.name == DEFAULT_DETECTOR and model.threshold_ > float("-inf")
    assert len(list((default_run / "scores").glob("anomaly_score_*.csv"))) == 4  # 2 machines x 2 sections


def test_score_cli_on_the_default_model_separates_the_tiny_anomalies(default_run, tree, tmp_path):
    """The tiny tree's anomalies add a loud 3.1 kHz tone: every one scores above every normal clip."""
    normal, anomaly = _test_clips(tree, "fan", "normal"), _test_clips(tree, "fan", "anomaly")
    output = tmp_path / "scores.csv"
    proc = cli("score", str(default_run), *map(str, normal + anomaly), "--machine", "fan", "-o", str(output))
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(output.read_text())))
    assert len(rows) == len(normal) + len(anomaly)
    score = {Path(r["file"]).name: float(r["score"]) for r in rows}
    assert max(score[p.name] for p in normal) < min(score[p.name] for p in anomaly)
    threshold = Detector.load(default_run / "models" / "fan").threshold_
    assert {float(r["threshold"]) for r in rows} == {threshold}
    assert all(int(r["decision"]) == int(float(r["score"]) > threshold) for r in rows)
    # the run's own score file holds the same numbers for the same clips
    written = {}
    for f in (default_run / "scores").glob("anomaly_score_fan_section_*_test.csv"):
        written |= {name: float(value) for name, value in csv.reader(f.open())}
    assert all(score[name] == pytest.approx(written[name], rel=1e-5) for name in score)


def test_train_without_model_then_score_a_loose_clip(tree, cache, tmp_path):
    """``asdkit train`` (the README's plant-engineer line) and ``score`` of a file without a DCASE name."""
    out = tmp_path / "models_dir"
    proc = cli("train", "--data", str(tree), "--out", str(out), "--machine", "fan", "--cache-dir", str(cache))
    assert proc.returncode == 0, proc.stderr
    assert "fan: threshold" in proc.stdout and str(out / "models" / "fan") in proc.stdout
    assert Detector.load(out / "models" / "fan").name == DEFAULT_DETECTOR
    loose = tmp_path / "incoming" / "recording.wav"
    loose.parent.mkdir()
    loose.write_bytes(_test_clips(tree, "fan", "normal")[0].read_bytes())
    scored = cli("score", str(out / "models" / "fan"), str(loose), "--cache-dir", str(cache))
    assert scored.returncode == 0, scored.stderr
    assert "recording.wav" in scored.stdout and "skipped:" not in scored.stderr


def test_the_service_scores_with_the_default_model(default_run, tree):
    from fastapi.testclient import TestClient

    from asdkit.service.app import create_app
    from asdkit.service.models import load_served_models

    normal, anomaly = _test_clips(tree, "fan", "normal")[0], _test_clips(tree, "fan", "anomaly")[0]
    offline, _ = api.score(default_run, [normal, anomaly], machine="fan")
    with TestClient(create_app(load_served_models(default_run))) as client:
        one = client.post(
            "/score", params={"model": "fan"}, files={"file": (normal.name, normal.read_bytes())}
        )
        assert one.status_code == 200, one.text
        body = one.json()
        assert body["detector"] == DEFAULT_DETECTOR and body["section"] == "00"
        assert body["score"] == pytest.approx(offline[0].score, rel=1e-5)
        assert body["decision"] == int(body["score"] > body["threshold"])
        loose = client.post(
            "/score", params={"model": "fan"}, files={"file": ("upload.wav", anomaly.read_bytes())}
        )
        assert loose.status_code == 200, loose.text  # no section: scored against every bank
        assert loose.json()["score"] > body["score"]
        files = [("files", (p.name, p.read_bytes())) for p in (normal, anomaly)]
        batch = client.post("/score/batch", params={"model": "fan"}, files=files)
    assert batch.status_code == 200 and batch.json()["n_scored"] == 2, batch.text


def test_the_watcher_scores_with_the_default_model(default_run, tree, tmp_path):
    folder = tmp_path / "incoming"
    clips = [*_test_clips(tree, "valve", "normal")[:1], *_test_clips(tree, "valve", "anomaly")[:1]]
    folder.mkdir()
    past = time.time() - 60
    for clip in clips:
        (folder / clip.name).write_bytes(clip.read_bytes())
        os.utime(folder / clip.name, (past, past))
    log = tmp_path / "log.jsonl"
    args = [
        "watch",
        str(folder),
        "--model",
        str(default_run),
        "--machine",
        "valve",
        "--once",
        "--settle",
        "0",
    ]
    proc = cli(*args, "--log", str(log))
    assert proc.returncode == 0, proc.stderr
    assert "scored 2, unreadable 0" in proc.stderr
    records = {r["file"]: r for r in map(json.loads, log.read_text().splitlines())}
    assert set(records) == {c.name for c in clips}
    normal, anomaly = (records[c.name] for c in clips)
    assert anomaly["score"] > normal["score"] and normal["model"] == "valve"
    assert normal["threshold"] == Detector.load(default_run / "models" / "valve").threshold_


def test_demo_debug_runs_the_default_and_api_demo_repeats_it(tmp_path):
    """``asdkit demo --debug`` end to end; ``asdkit.demo.demo`` into the same folder reuses the synthetic set
    and gives the same official score (the default detector is seeded)."""
    out = tmp_path / "demo"
    proc = cli("demo", "--debug", "--out", str(out), "--quiet", "--cache-dir", str(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stderr
    assert "official score" in proc.stdout and str(out / "run") in proc.stdout
    config = _config(out / "run")
    assert config["model"] == DEFAULT_DETECTOR and config["status"] == "complete" and config["debug"]
    data = out / "data-debug"
    wavs = {p: p.stat().st_mtime_ns for p in data.rglob("*.wav")}
    result = demo(out, debug=True, cache_dir=tmp_path / "cache")
    assert {p: p.stat().st_mtime_ns for p in data.rglob("*.wav")} == wavs  # the set was reused
    assert result.run_dir == out / "run" and result.config["model"] == DEFAULT_DETECTOR
    assert result.evaluation.official_score == pytest.approx(config["official_score"], abs=1e-12)


def test_load_models_reads_a_run_and_a_model_folder(default_run, tmp_path):
    models = api.load_models(default_run)
    assert sorted(models) == ["fan", "valve"]
    assert all(m.name == DEFAULT_DETECTOR for m in models.values())
    one = api.load_models(default_run / "models" / "valve")
    assert list(one) == ["valve"] and one["valve"].threshold_ == models["valve"].threshold_
    with pytest.raises(ModelError, match="no such model folder"):
        api.load_models(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="neither a model folder"):
        api.load_models(tmp_path / "empty")


def test_detectors_command_lists_every_registered_detector():
    proc = cli("detectors")
    assert proc.returncode == 0, proc.stderr
    listed = [line for line in proc.stdout.splitlines() if not line.startswith(" ")]
    assert listed[-1].startswith("trainer settings of every network detector")  # Lightning's words, once
    names = [line.split(":", 1)[0] for line in listed[:-1]]
    assert names == available_detectors()
    lines = proc.stdout.splitlines()
    params = lines[lines.index(next(x for x in lines if x.startswith(f"{DEFAULT_DETECTOR}: "))) + 1]
    assert params.strip() == str(get_detector_class(DEFAULT_DETECTOR)().get_params())


def test_recipes_command_lists_and_prints_them():
    from asdkit.runconfig import recipe_names, recipe_text

    listed = cli("recipes")
    assert listed.returncode == 0, listed.stderr
    assert [line.split(":", 1)[0] for line in listed.stdout.splitlines()] == recipe_names()
    name = recipe_names()[0]
    printed = cli("recipes", name)
    assert printed.returncode == 0 and printed.stdout == recipe_text(name)
    unknown = cli("recipes", "no_such_recipe")
    assert (
        unknown.returncode != 0 and "no_such_recipe" in unknown.stderr and "Traceback" not in unknown.stderr
    )


def test_prepare_command_puts_the_ground_truth_where_run_reads_it(tmp_path):
    from asdkit.data.ground_truth import load_ground_truth

    gt = tmp_path / "evaluator" / "ground_truth_data"
    make_tree(tmp_path / "data" / "dcase2022" / "eval_data", "eval", ground_truth=gt, year=2022)
    proc = cli("prepare", "2022", "--ground-truth", str(gt), "--to", str(tmp_path / "data"))
    assert proc.returncode == 0, proc.stderr
    dest = tmp_path / "data" / "dcase2022" / "ground_truth"
    assert str(dest) in proc.stdout + proc.stderr
    assert load_ground_truth(dest).labels == load_ground_truth(gt).labels
