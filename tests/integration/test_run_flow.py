"""A run flows one way: plots, report and tracking get the run in memory; the loader rebuilds the same run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from asdkit import api
from asdkit.data.manifest import Manifest
from asdkit.data.synthetic import SyntheticSpec, generate
from asdkit.reports.html import write_report
from asdkit.run_result import RunResult, load_run
from asdkit.tracking import TrackingOptions, local_store_uri

pytest.importorskip("mlflow", reason="MLflow is the optional 'tracking' extra (installed by .[dev])")
from mlflow.tracking import MlflowClient

# Three sections: the jackknife interval needs three, so the evaluation compared below carries one.
SPEC = dataclasses.replace(SyntheticSpec.tiny(machines=("fan",)), sections=3)


def _no_reading_back(*args: object, **kwargs: object) -> None:
    raise AssertionError("the run read back a file it had in memory")


@pytest.fixture(scope="module")
def run_in_memory(tmp_path_factory) -> RunResult:
    """A tracked run with plots and a report, made while every reader of the run's files raises."""
    root = tmp_path_factory.mktemp("flow")
    data = generate(root / "data", layout="dcase2022", spec=SPEC)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.setattr(Manifest, "from_csv", _no_reading_back)
        patch.setattr("asdkit.reports.submission._read_score_file", _no_reading_back)
        patch.setattr("asdkit.reports.submission._read_decision_file", _no_reading_back)
        patch.setattr("asdkit.detectors.base.read_model_config", _no_reading_back)
        patch.setattr("asdkit.run_result.read_config", _no_reading_back)
        result = api.run(
            data,
            root / "runs" / "flow",
            model="ae",
            params={"accelerator": "cpu", "epochs": 2},
            debug=True,
            cache_dir=root / "cache",
            tracking=TrackingOptions(mlflow=True),
        )
        assert isinstance(result, RunResult)
        write_report(result)
    return result


def test_plots_report_and_tracking_come_from_the_run_in_memory(run_in_memory):
    run_dir = run_in_memory.run_dir
    ev = run_in_memory.evaluation
    assert ev is not None
    stems = {p.stem for p in (run_dir / "plots").glob("*.png")}
    assert stems == {"loss_fan"} | {f"{k}_fan_section_0{s}" for k in ("scores", "roc") for s in range(3)}
    html = (run_dir / "report.html").read_text()
    assert f'data-value="{ev.official_score!r}"' in html
    client = MlflowClient(tracking_uri=local_store_uri(run_dir.parent))
    (tracked,) = client.search_runs([client.get_experiment_by_name("asdkit").experiment_id])
    assert tracked.data.metrics["official_score"] == pytest.approx(ev.official_score)
    assert tracked.data.metrics["fan/threshold"] == pytest.approx(run_in_memory.thresholds["fan"])
    assert len(client.get_metric_history(tracked.info.run_id, "fan/train_loss")) == 2


def test_the_loader_rebuilds_the_run_from_its_folder(run_in_memory):
    loaded = load_run(run_in_memory.run_dir)
    assert loaded.config == run_in_memory.config
    assert list(loaded.manifest) == list(run_in_memory.manifest)
    assert loaded.scheme == run_in_memory.scheme == "dcase2022"
    assert loaded.scored.keys() == run_in_memory.scored.keys() == {"fan"}
    again, first = loaded.scored["fan"], run_in_memory.scored["fan"]
    assert again.clips == first.clips and len(first.clips) > 0
    np.testing.assert_array_equal(again.scores, first.scores)
    np.testing.assert_array_equal(again.decisions, first.decisions)
    assert loaded.thresholds == run_in_memory.thresholds
    assert loaded.histories == run_in_memory.histories and len(loaded.histories["fan"]) == 2
    assert loaded.skipped == run_in_memory.skipped and loaded.skip_counts == run_in_memory.skip_counts
    assert loaded.truncated == run_in_memory.truncated
    assert loaded.evaluation == run_in_memory.evaluation
    assert loaded.evaluation.jackknife is not None


def test_the_loader_names_a_scored_clip_the_manifest_lacks(run_in_memory, tmp_path):
    import shutil

    from asdkit.errors import DataError

    copy = shutil.copytree(run_in_memory.run_dir, tmp_path / "copy")
    score_file = next((copy / "scores").glob("anomaly_score_*.csv"))
    score_file.write_text(score_file.read_text() + "section_00_stranger.wav,0.5\n")
    with pytest.raises(DataError, match=r"section_00_stranger\.wav is not a test clip"):
        load_run(copy)
