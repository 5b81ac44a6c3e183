"""Experiment tracking: a tiny tracked run read back through MLflow's own client; TensorBoard; no MLflow."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asdkit import api
from asdkit.data.synthetic import SyntheticSpec, generate
from asdkit.detectors.base import Detector
from asdkit.run_result import load_run
from asdkit.tracking import STORE_FILE, TrackingOptions, local_store_uri, log_run, metric_key

pytest.importorskip("mlflow", reason="MLflow is the optional 'tracking' extra (installed by .[dev])")
from mlflow.tracking import MlflowClient

# Three sections: an interval needs at least three (asdkit.metrics.jackknife.MIN_SECTIONS).
SPEC = dataclasses.replace(SyntheticSpec.tiny(machines=("fan",)), sections=3)
QUICK = {"accelerator": "cpu", "epochs": 3}


@pytest.fixture(autouse=True)
def _no_telemetry(monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> api.RunResult:
    root = tmp_path_factory.mktemp("tracked")
    data = generate(root / "data", layout="dcase2022", spec=SPEC)
    return api.run(
        data,
        root / "runs" / "ae-tiny",
        model="ae",
        params=QUICK,
        debug=True,
        cache_dir=root / "cache",
        command_line="asdkit run --data data --out runs/ae-tiny",
        tracking=TrackingOptions(mlflow=True, tensorboard=True),
    )


def _only_run(root: Path) -> object:
    client = MlflowClient(tracking_uri=local_store_uri(root))
    experiment = client.get_experiment_by_name("asdkit")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    return client, runs[0]


def test_run_is_logged_with_params_curves_results_and_artifacts(tracked):
    root = tracked.run_dir.parent
    assert (root / STORE_FILE).is_file()  # the store sits beside the run directory
    client, run = _only_run(root)
    assert run.info.run_name == "ae-tiny" and run.info.status == "FINISHED"
    assert run.data.params["model"] == "ae"
    assert run.data.params["params.epochs"] == "3"
    assert run.data.params["features.n_mels"] == "128"
    assert run.data.params["machines"] == "fan"
    assert run.data.tags["asdkit.command_line"] == "asdkit run --data data --out runs/ae-tiny"
    config = json.loads((tracked.run_dir / "config.json").read_text())
    if config["environment"]["git_commit"]:
        assert run.data.tags["mlflow.source.git.commit"] == config["environment"]["git_commit"]

    history = json.loads((tracked.run_dir / "models" / "fan" / "model.json").read_text())["history"]
    assert len(history) == 3
    assert Detector.load(tracked.run_dir / "models" / "fan").training_history() == history
    losses = client.get_metric_history(run.info.run_id, "fan/train_loss")
    assert [m.step for m in losses] == [0, 1, 2]
    assert [m.value for m in losses] == pytest.approx([row["train_loss"] for row in history])
    rates = client.get_metric_history(run.info.run_id, "fan/lr")
    assert [m.value for m in rates] == pytest.approx([1e-3] * 3)

    ev = tracked.evaluation
    metrics = run.data.metrics
    assert metrics["official_score"] == pytest.approx(ev.official_score)
    assert metrics["official_score_ci_low"] == pytest.approx(ev.jackknife.low)
    row = ev.machine("fan").rows[1]
    assert metrics["fan/section_01/AUC_target"] == pytest.approx(row["AUC (target)"])
    assert metrics["fan/hmean/pAUC"] == pytest.approx(ev.machine("fan").hmean["pAUC"])
    assert metrics["all/hmean/AUC_source"] == pytest.approx(ev.overall_hmean["AUC (source)"])
    assert metrics["time/train_seconds"] > 0

    top = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "result.csv", "manifest.csv", "scores", "plots", "models"} <= top
    models = {f.path for f in client.list_artifacts(run.info.run_id, "models/fan")}
    assert {"models/fan/model.json", "models/fan/weights.pt"} <= models
    plots = {f.path for f in client.list_artifacts(run.info.run_id, "plots")}
    assert "plots/roc_fan_section_00.png" in plots


def test_tensorboard_curves_are_written_per_machine(tracked):
    events = list((tracked.run_dir / "tensorboard" / "fan").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(events[0].parent)).Reload().Tags()["scalars"]
    assert "train_loss" in tags and any(t.startswith("lr") for t in tags)


def test_tensorboard_with_a_detector_without_a_network_says_no_curves_are_written(tracked, tmp_path):
    data = Path(load_run(tracked.run_dir).config["data"])
    out = tmp_path / "knn"
    proc = _cli(
        "run", "--data", str(data), "--out", str(out), "--model", "knn", "--tensorboard",
        "--debug", "--no-plots", "--no-track", "--cache-dir", str(tmp_path / "cache"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    said = [line for line in proc.stderr.splitlines() if "--tensorboard" in line]
    assert len(said) == 1 and said[0].startswith("warning:") and "knn trains no network" in said[0]
    assert not (out / "tensorboard").exists()


def test_logging_a_directory_again_adds_a_second_run(tracked, tmp_path):
    root = tracked.run_dir.parent
    copy = shutil.copytree(tracked.run_dir, tmp_path / "copy")
    options = TrackingOptions(mlflow=True, uri=local_store_uri(root), experiment="again")
    first, second = log_run(copy, options), log_run(copy, options)
    assert first is not None and second is not None and first != second
    client = MlflowClient(tracking_uri=local_store_uri(root))
    experiment = client.get_experiment_by_name("again")
    assert len(client.search_runs([experiment.experiment_id])) == 2
    # a local store keeps its artifacts beside the database, wherever the command ran
    assert Path(experiment.artifact_location.removeprefix("file://")) == (root / "mlartifacts").resolve()


def test_tracking_is_on_by_default_unless_the_environment_says_off(monkeypatch):
    monkeypatch.delenv("ASDKIT_TRACKING", raising=False)
    assert TrackingOptions().mlflow
    for off in ("off", "0", "False", "no"):
        monkeypatch.setenv("ASDKIT_TRACKING", off)
        assert not TrackingOptions().mlflow
    monkeypatch.setenv("ASDKIT_TRACKING", "on")
    assert TrackingOptions().mlflow


def test_no_track_writes_no_store(tracked, tmp_path):
    copy = shutil.copytree(tracked.run_dir, tmp_path / "copy")
    assert log_run(copy, TrackingOptions(mlflow=False)) is None
    assert not (tmp_path / STORE_FILE).exists()


def test_without_mlflow_the_run_says_how_to_enable_tracking(tracked, tmp_path, monkeypatch):
    copy = shutil.copytree(tracked.run_dir, tmp_path / "copy")
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    monkeypatch.setitem(sys.modules, "mlflow.exceptions", None)
    said: list[str] = []
    assert log_run(copy, TrackingOptions(mlflow=True), progress=said.append) is None
    assert len(said) == 1 and "pip install 'asdkit[tracking]'" in said[0]
    assert not (tmp_path / STORE_FILE).exists()


def test_unreachable_server_is_a_warning_not_a_failure(tracked, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    copy = shutil.copytree(tracked.run_dir, tmp_path / "copy")
    assert log_run(copy, TrackingOptions(mlflow=True, uri="http://127.0.0.1:9")) is None
    assert any("experiment tracking failed" in r.getMessage() for r in caplog.records)


def test_train_alone_is_tracked_from_its_model_files(tracked, tmp_path):
    root = tracked.run_dir.parent
    data = Path(load_run(tracked.run_dir).config["data"])
    options = TrackingOptions(mlflow=True, uri=local_store_uri(root), experiment="train")
    api.train(
        data,
        tmp_path / "model",
        model="ae",
        params=QUICK,
        debug=True,
        cache_dir=tmp_path / "cache",
        tracking=options,
    )
    client = MlflowClient(tracking_uri=local_store_uri(root))
    (run,) = client.search_runs([client.get_experiment_by_name("train").experiment_id])
    assert run.info.run_name == "model"
    assert run.data.params["model"] == "ae" and run.data.params["params.epochs"] == "3"
    assert len(client.get_metric_history(run.info.run_id, "fan/train_loss")) == 3
    assert "fan/threshold" in run.data.metrics and "official_score" not in run.data.metrics


def test_each_seed_is_tracked_beside_the_seeds_folder(tracked, tmp_path):
    """``--seeds`` writes OUT/seed_<n>/; their runs go to OUT's parent's store, with the runs beside OUT,
    so that ``asdkit dashboard`` of that folder shows them (not to a store hidden inside OUT)."""
    data = Path(load_run(tracked.run_dir).config["data"])
    root = tmp_path / "runs"
    api.run(
        data,
        root / "knn",
        model="knn",
        seeds=[0, 1],
        debug=True,
        plots=False,
        cache_dir=tmp_path / "cache",
        tracking=TrackingOptions(mlflow=True),
    )
    assert not (root / "knn" / STORE_FILE).exists()
    client = MlflowClient(tracking_uri=local_store_uri(root))
    runs = client.search_runs([client.get_experiment_by_name("asdkit").experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["seed_0", "seed_1"]


def test_metric_names_are_mlflow_safe():
    assert metric_key("fan", "section_00", "AUC (source)") == "fan/section_00/AUC_source"
    assert metric_key("all", "hmean", "F1 score (target)") == "all/hmean/F1_score_target"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asdkit", *args], capture_output=True, text=True, timeout=120
    )


def test_dashboard_runs_mlflow_ui_on_the_store_bound_to_localhost(tracked):
    root = tracked.run_dir.parent
    proc = _cli("dashboard", str(root), "--port", "5077", "--print")
    assert proc.returncode == 0, proc.stderr
    command = proc.stdout.split()
    assert command[1:4] == ["-m", "mlflow", "ui"]
    assert command[command.index("--backend-store-uri") + 1] == local_store_uri(root)
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--port") + 1] == "5077"


def test_dashboard_without_a_store_is_a_one_line_error(tmp_path):
    proc = _cli("dashboard", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and STORE_FILE in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
