"""Persistence of fitted arrays: arrays.npz beside the network's weights.pt, ensembles as sub-models, and
models saved in format 1 (fitted arrays as buffers in weights.pt) still loading."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from asdkit.data.manifest import Clip
from asdkit.detectors.base import ARRAYS_NAME, CONFIG_NAME, WEIGHTS_NAME, ClipFeatures, Detector
from asdkit.detectors.registry import create_detector
from asdkit.errors import ModelError
from asdkit.features.config import FeatureConfig

CONFIG = FeatureConfig(n_mels=16)
#: Detectors without a network: everything they learn is numpy arrays.
ARRAY_ONLY = {
    "knn": {},
    "mahalanobis": {},
    "gmm": {},
    "patch_bank": {"bank_size": 64},
    "ensemble": {"members": ["knn", "gmm"]},
}


def _features(n: int, rng: np.random.Generator) -> ClipFeatures:
    arrays, clips = [], []
    for i in range(n):
        x = np.linspace(-20, -60, CONFIG.n_mels)[:, None] + rng.normal(0, 1.0, (CONFIG.n_mels, 48))
        x[2 + 3 * (i % 2)] += 8.0
        arrays.append(x.astype(np.float32))
        domain = "target" if i % 5 == 0 else "source"
        clips.append(Clip(path=f"/d/m/{i}.wav", machine="m", section=f"0{i % 2}", domain=domain))
    return ClipFeatures(arrays, clips, CONFIG)


@pytest.fixture(scope="module")
def data() -> tuple[ClipFeatures, ClipFeatures]:
    rng = np.random.default_rng(0)
    return _features(30, rng), _features(8, rng)


@pytest.mark.parametrize("name", sorted(ARRAY_ONLY))
def test_fitted_arrays_round_trip_without_posing_as_a_network(name, data, tmp_path):
    train, test = data
    detector = create_detector(name, **ARRAY_ONLY[name]).fit(train)  # type: ignore[attr-defined]
    path = detector.save(tmp_path / name)
    assert not (path / WEIGHTS_NAME).exists() and not hasattr(detector, "network_")
    with np.load(path / ARRAYS_NAME, allow_pickle=False) as arrays:
        assert arrays.files and all(arrays[k].dtype.kind == "f" for k in arrays.files)
    loaded = Detector.load(path)
    np.testing.assert_array_equal(loaded.anomaly_score(test), detector.anomaly_score(test))
    assert loaded.threshold_ == detector.threshold_


def test_an_ensemble_saves_each_member_as_a_model_of_its_own(data, tmp_path):
    train, test = data
    members = ["knn", {"model": "ae", "params": {"epochs": 1, "accelerator": "cpu", "score": "mahalanobis"}}]
    ensemble = create_detector("ensemble", members=members).fit(train)  # type: ignore[attr-defined]
    path = ensemble.save(tmp_path / "ens")
    ae = Detector.load(path / "members" / "m1")  # a member folder is a model folder
    assert ae.name == "ae" and (path / "members" / "m1" / WEIGHTS_NAME).is_file()
    np.testing.assert_allclose(ae.anomaly_score(test), ensemble.members_[1].anomaly_score(test), rtol=1e-6)
    np.testing.assert_allclose(
        Detector.load(path).anomaly_score(test), ensemble.anomaly_score(test), rtol=1e-6
    )
    ensemble.members_ = ensemble.members_[:1]  # saved again into the same folder: no stale member left
    ensemble.save(path)
    assert sorted(p.name for p in (path / "members").iterdir()) == ["m0"]


# -- format 1, written by hand as asdkit wrote it before fitted arrays had a file of their own ---------
def _format1_statistics_state(state: dict, arrays: dict[str, np.ndarray]) -> dict:
    """Format 1 kept the statistics' shapes where format 2 keeps the number of mel bands."""
    shapes = {
        k.removeprefix("embedder."): list(a.shape) for k, a in arrays.items() if k.startswith("embedder.")
    }
    return {**state, "embedder": {"shapes": shapes}}


def _read(folder: Path) -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(folder / ARRAYS_NAME, allow_pickle=False) as arrays:
        return json.loads((folder / CONFIG_NAME).read_text()), {k: arrays[k] for k in arrays.files}


def _write_format1(folder: Path, config: dict, tensors: dict[str, np.ndarray]) -> None:
    (folder / ARRAYS_NAME).unlink()
    shutil.rmtree(folder / "members", ignore_errors=True)
    torch.save(
        {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in tensors.items()},
        folder / WEIGHTS_NAME,
    )
    # format 2 lists the arrays it saved; checksums and sample_rate came later still
    old = {k: v for k, v in config.items() if k not in ("arrays", "checksums", "sample_rate")}
    (folder / CONFIG_NAME).write_text(json.dumps({**old, "format_version": 1}))


def test_a_knn_model_saved_in_format_1_loads_and_scores_alike(data, tmp_path):
    train, test = data
    knn = create_detector("knn").fit(train)  # type: ignore[attr-defined]
    path = knn.save(tmp_path / "knn")
    config, arrays = _read(path)
    _write_format1(path, {**config, "state": _format1_statistics_state(config["state"], arrays)}, arrays)
    loaded = Detector.load(path)
    np.testing.assert_array_equal(loaded.anomaly_score(test), knn.anomaly_score(test))


def test_a_mahalanobis_model_saved_before_shared_covariance_loads_as_fitted(data, tmp_path):
    """The default became shared_covariance=True; a file without the parameter was fitted with own
    covariances, so it must say so after loading (and score exactly as it did)."""
    train, test = data
    own = create_detector("mahalanobis", shared_covariance=False).fit(train)  # type: ignore[attr-defined]
    path = own.save(tmp_path / "m")
    config = json.loads((path / CONFIG_NAME).read_text())
    del config["params"]["shared_covariance"]
    (path / CONFIG_NAME).write_text(json.dumps(config))
    loaded = Detector.load(path)
    assert loaded.get_params()["shared_covariance"] is False
    assert create_detector("mahalanobis").get_params()["shared_covariance"] is True  # type: ignore[attr-defined]
    np.testing.assert_array_equal(loaded.anomaly_score(test), own.anomaly_score(test))


def test_an_ensemble_saved_in_format_1_loads_with_its_members(data, tmp_path):
    """Format 1: every member's model.json fields in the ensemble's state, every array in one weights.pt
    (``normalisation.*`` and ``m<i>.<member's name>``)."""
    train, test = data
    ensemble = create_detector("ensemble", members=["knn", "mahalanobis"]).fit(train)  # type: ignore[attr-defined]
    path = ensemble.save(tmp_path / "ens")
    config, tensors = _read(path)
    shapes = {k.removeprefix("normalisation."): list(a.shape) for k, a in tensors.items()}
    members = []
    for i in range(2):
        member_config, member_arrays = _read(path / "members" / f"m{i}")
        state = _format1_statistics_state(member_config["state"], member_arrays)
        fields = ("detector", "params", "features", "threshold")
        members.append({**{k: member_config[k] for k in fields}, "state": state})
        tensors |= {f"m{i}.{k}": a for k, a in member_arrays.items()}
    state = {
        "members": members,
        "normalisation_shapes": shapes,
        "train_scores": config["state"]["train_scores"],
    }
    _write_format1(path, {**config, "state": state}, tensors)
    loaded = Detector.load(path)
    assert [m.name for m in loaded.members_] == ["knn", "mahalanobis"]  # type: ignore[attr-defined]
    np.testing.assert_allclose(loaded.anomaly_score(test), ensemble.anomaly_score(test), rtol=1e-12)


def test_a_model_of_a_newer_format_is_a_one_line_error_naming_it(data, tmp_path):
    path = create_detector("knn").fit(data[0]).save(tmp_path / "knn")  # type: ignore[attr-defined]
    config = json.loads((path / CONFIG_NAME).read_text())
    (path / CONFIG_NAME).write_text(json.dumps({**config, "format_version": 3}))
    with pytest.raises(ModelError, match="written by a newer asdkit \\(format 3\\)"):
        Detector.load(path)


@pytest.mark.parametrize("recorded", [True, False], ids=["weights recorded", "saved before weights were"])
def test_a_default_ensemble_saved_before_the_default_weights_keeps_its_equal_weights(
    recorded, data, tmp_path, monkeypatch
):
    """A model of the old default (members and weights not given, equal weights) scores, and exports, as it
    was trained after DEFAULT_WEIGHTS changed: its own fitted weights, never the new default's."""
    from asdkit.detectors import ensemble as ens
    from asdkit.export.graph import EnsembleHead

    train, test = data
    pair = ({"model": "mahalanobis"}, {"model": "patch_bank", "params": {"aggregate": "mean"}})
    monkeypatch.setattr(ens, "DEFAULT_MEMBERS", pair)
    monkeypatch.setattr(ens, "DEFAULT_WEIGHTS", None)
    old = create_detector("ensemble", members=None).fit(train)  # type: ignore[attr-defined]
    path = old.save(tmp_path / "old")
    if not recorded:
        config = json.loads((path / CONFIG_NAME).read_text())
        del config["state"]["member_weights"]
        (path / CONFIG_NAME).write_text(json.dumps(config))
    monkeypatch.setattr(ens, "DEFAULT_WEIGHTS", (2.0, 1.0))
    loaded = Detector.load(path)
    np.testing.assert_allclose(loaded.anomaly_score(test), old.anomaly_score(test), rtol=1e-12)
    assert EnsembleHead(loaded, ["00", "01"]).weights == [0.5, 0.5]
