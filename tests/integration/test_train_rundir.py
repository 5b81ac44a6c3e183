"""``train`` keeps its folder as ``run`` does: one writer, a status that is the truth, refusal and resume.

And config.json spells out what the default detector is made of, so a rerun from it trains the same thing.
"""

from __future__ import annotations

import json
import logging

import pytest

from asdkit import api, pipeline
from asdkit.detectors.registry import DEFAULT_DETECTOR
from asdkit.runconfig import load_run_config
from asdkit.rundir import (
    CONFIG_FILE,
    INTERRUPTED,
    LOCK_NAME,
    MODEL_FILE,
    RunDirError,
    RunLock,
    model_dir,
    warn_if_incomplete,
)
from tests.helpers.cli import asdkit_cli
from tests.helpers.trees import make_tree


@pytest.fixture()
def tree(tmp_path):
    return make_tree(tmp_path / "data", "dcase2022", n_train=4)


def _status(out):
    return json.loads((out / CONFIG_FILE).read_text())["status"]


def test_a_rerun_of_train_is_refused_unless_overwrite(tmp_path, tree):
    out = tmp_path / "models"
    api.train(tree, out, model="knn", cache_dir=tmp_path / "cache")
    assert _status(out) == "complete" and not (out / LOCK_NAME).exists()
    first = (model_dir(out, "fan") / MODEL_FILE).stat().st_mtime_ns
    with pytest.raises(RunDirError, match=r"already holds a run \(status: complete\).*--overwrite"):
        api.train(tree, out, model="knn", params={"k": 2}, cache_dir=tmp_path / "cache")
    assert (model_dir(out, "fan") / MODEL_FILE).stat().st_mtime_ns == first  # nothing replaced
    api.train(tree, out, model="knn", params={"k": 2}, cache_dir=tmp_path / "cache", overwrite=True)
    assert json.loads((out / CONFIG_FILE).read_text())["params"]["k"] == 2


def test_a_second_train_into_a_folder_in_use_fails(tmp_path, tree):
    out = tmp_path / "models"
    out.mkdir()
    held = RunLock.acquire(out)  # another asdkit train is writing it
    try:
        with pytest.raises(RunDirError, match="in use by another asdkit run"):
            api.train(tree, out, model="knn", cache_dir=tmp_path / "cache")
        done = asdkit_cli("train", "--data", str(tree), "--out", str(out), "--model", "knn", "--no-track")
    finally:
        held.release()
    assert done.returncode == 2 and "in use by another asdkit run" in done.stderr
    assert sorted(p.name for p in out.iterdir()) == []


def test_an_interrupted_train_is_marked_served_with_a_warning_and_resumed(
    tmp_path, tree, monkeypatch, caplog
):
    out = tmp_path / "models"
    plain = pipeline.fit_stage

    def killed_at_valve(plan, manifest, machine, *args, **kwargs):
        if machine == "valve":
            raise KeyboardInterrupt
        return plain(plan, manifest, machine, *args, **kwargs)

    monkeypatch.setattr(pipeline, "fit_stage", killed_at_valve)
    with pytest.raises(KeyboardInterrupt):
        api.train(tree, out, model="knn", cache_dir=tmp_path / "cache")
    assert _status(out) == INTERRUPTED and not (out / LOCK_NAME).exists()
    fan_model = (model_dir(out, "fan") / MODEL_FILE).stat().st_mtime_ns

    wav = next((tree / "fan" / "test").glob("*.wav"))
    with caplog.at_level(logging.WARNING):
        scored, _ = api.score(out, [wav], cache_dir=tmp_path / "cache")
    assert scored and "not complete (status: interrupted)" in caplog.text
    assert warn_if_incomplete(out, "serving the models of") == INTERRUPTED  # what `asdkit serve` calls

    monkeypatch.setattr(pipeline, "fit_stage", plain)
    with pytest.raises(RunDirError, match="--resume"):
        api.train(tree, out, model="knn", cache_dir=tmp_path / "cache")
    with pytest.raises(RunDirError, match="different configuration"):
        api.train(tree, out, model="knn", params={"k": 3}, cache_dir=tmp_path / "cache", resume=True)
    detectors = api.train(tree, out, model="knn", cache_dir=tmp_path / "cache", resume=True)
    assert sorted(detectors) == ["fan", "valve"] and _status(out) == "complete"
    assert (model_dir(out, "fan") / MODEL_FILE).stat().st_mtime_ns == fan_model  # kept, not trained again
    assert (model_dir(out, "valve") / MODEL_FILE).is_file()


def test_config_records_the_default_detectors_members_in_full(tmp_path, monkeypatch):
    from asdkit.detectors import ensemble

    params = pipeline.resolved_params(DEFAULT_DETECTOR, None, seed=3, debug=False)
    members = params["members"]
    assert [m["model"] for m in members] == [m["model"] for m in ensemble.DEFAULT_MEMBERS]
    for member in members:
        full = api.make_detector(member["model"]).get_params()
        assert set(member["params"]) == set(full) - {"seed", "progress"}  # seed: the ensemble's
    assert members[0]["params"]["stats"] == "pooled+delta+envelope"  # the default's own setting
    assert params["weights"] is None and ensemble.DEFAULT_WEIGHTS is None  # one member: nothing to weigh

    # a rerun from config.json trains these members even after the default changed
    record = {"status": "complete", "environment": {}, "model": DEFAULT_DETECTOR, "params": params}
    (tmp_path / CONFIG_FILE).write_text(json.dumps(record))
    rerun = load_run_config(tmp_path / CONFIG_FILE)
    monkeypatch.setattr(ensemble, "DEFAULT_MEMBERS", ({"model": "knn"}, {"model": "gmm"}))
    monkeypatch.setattr(ensemble, "DEFAULT_WEIGHTS", (3.0, 1.0))
    again = pipeline.resolved_params(DEFAULT_DETECTOR, rerun.params, seed=3, debug=False)
    assert again["members"] == members and again["weights"] is None
    detector = api.make_detector(DEFAULT_DETECTOR, again, seed=3)
    planned = detector._planned_members()
    assert [m.name for m in planned] == ["mahalanobis"] and planned[0].stats == "pooled+delta+envelope"
