"""Checksums of weights.pt and arrays.npz in model.json (issue 27, item 3): a damaged file is a one-line
error naming it instead of a different score; a model saved before checksums still loads, said once."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from asdkit.data.manifest import Clip
from asdkit.detectors import model_file
from asdkit.detectors.base import ARRAYS_NAME, CONFIG_NAME, WEIGHTS_NAME, ClipFeatures, Detector
from asdkit.detectors.registry import create_detector
from asdkit.errors import ModelError
from asdkit.features.config import FeatureConfig

CONFIG = FeatureConfig(n_mels=16)
QUICK_AE = {"epochs": 1, "batch_size": 64, "accelerator": "cpu"}


def _features(n: int, seed: int) -> ClipFeatures:
    rng = np.random.default_rng(seed)
    arrays = [
        (np.linspace(-20, -60, CONFIG.n_mels)[:, None] + rng.normal(0, 1.0, (CONFIG.n_mels, 48))).astype(
            np.float32
        )
        for _ in range(n)
    ]
    clips = [Clip(path=f"/d/m/{i}.wav", machine="m", section="00", domain="source") for i in range(n)]
    return ClipFeatures(arrays, clips, CONFIG)


@pytest.fixture(scope="module")
def saved_ae(tmp_path_factory: pytest.TempPathFactory) -> Path:
    detector = create_detector("ae", **QUICK_AE).fit(_features(40, 0))  # type: ignore[attr-defined]
    return detector.save(tmp_path_factory.mktemp("ae") / "model")


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _flip_middle(file: Path, n: int = 16) -> None:
    """Flip ``n`` bytes in the middle of the file: inside tensor or array data, not the archive's headers."""
    data = bytearray(file.read_bytes())
    middle = len(data) // 2
    for i in range(middle, middle + n):
        data[i] ^= 0x5A
    file.write_bytes(bytes(data))


def test_model_json_records_checksums_and_sample_rate(saved_ae: Path) -> None:
    config = json.loads((saved_ae / CONFIG_NAME).read_text())
    assert config["sample_rate"] == 16000 == config["features"]["sample_rate"]
    assert config["checksums"] == {WEIGHTS_NAME: model_file.sha256_of(saved_ae / WEIGHTS_NAME)}


def test_flipped_bytes_in_weights_are_an_error_naming_the_file(saved_ae: Path, tmp_path: Path) -> None:
    test = _features(6, 1)
    good = Detector.load(saved_ae).anomaly_score(test)
    damaged = _copy(saved_ae, tmp_path / "damaged")
    _flip_middle(damaged / WEIGHTS_NAME)
    with pytest.raises(ModelError, match="checksum mismatch") as info:
        Detector.load(damaged)
    message = str(info.value)
    assert str(damaged / WEIGHTS_NAME) in message and "\n" not in message
    # the reproduction: without the check the damaged file loads and scores differently
    config = json.loads((damaged / CONFIG_NAME).read_text())
    del config["checksums"]
    (damaged / CONFIG_NAME).write_text(json.dumps(config))
    assert not np.allclose(Detector.load(damaged).anomaly_score(test), good)


def test_a_damaged_member_of_an_ensemble_is_named(tmp_path: Path) -> None:
    detector = create_detector("ensemble", members=["knn", "gmm"]).fit(_features(30, 2))  # type: ignore[attr-defined]
    path = detector.save(tmp_path / "ens")
    member_arrays = sorted(path.rglob(ARRAYS_NAME))
    assert member_arrays
    _flip_middle(member_arrays[0])
    with pytest.raises(ModelError, match="checksum mismatch") as info:
        Detector.load(path)
    assert str(member_arrays[0]) in str(info.value)


def test_a_model_saved_before_checksums_loads_and_says_so_once(
    saved_ae: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _copy(saved_ae, tmp_path / "old")
    config = json.loads((old / CONFIG_NAME).read_text())
    del config["checksums"], config["sample_rate"]
    (old / CONFIG_NAME).write_text(json.dumps(config))
    monkeypatch.setattr(model_file, "_unverified_noted", model_file.threading.Event())
    test = _features(4, 3)
    with caplog.at_level(logging.WARNING, logger="asdkit.detectors.model_file"):
        scores = [Detector.load(old).anomaly_score(test) for _ in range(3)]
    np.testing.assert_array_equal(scores[0], Detector.load(saved_ae).anomaly_score(test))
    notes = [r.getMessage() for r in caplog.records if "without checksums" in r.getMessage()]
    assert len(notes) == 1 and str(old / CONFIG_NAME) in notes[0]


def test_a_file_without_a_recorded_checksum_is_refused(saved_ae: Path, tmp_path: Path) -> None:
    odd = _copy(saved_ae, tmp_path / "odd")
    np.savez(odd / ARRAYS_NAME, bank=np.zeros(3))  # a file model.json does not list
    with pytest.raises(ModelError, match="records no checksum") as info:
        Detector.load(odd)
    assert str(odd / ARRAYS_NAME) in str(info.value)


def test_a_malformed_checksum_field_is_named(saved_ae: Path, tmp_path: Path) -> None:
    bad = _copy(saved_ae, tmp_path / "bad")
    config = json.loads((bad / CONFIG_NAME).read_text())
    config["checksums"][WEIGHTS_NAME] = "abc"
    (bad / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(ModelError, match=r"checksums\.weights\.pt"):
        Detector.load(bad)


def test_resume_trains_a_damaged_kept_model_again_naming_the_file(
    saved_ae: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from asdkit.rundir import kept_model

    kept = _copy(saved_ae, tmp_path / "run" / "models" / "fan")
    assert kept_model(tmp_path / "run", "fan") is not None
    _flip_middle(kept / WEIGHTS_NAME)
    with caplog.at_level(logging.WARNING, logger="asdkit.rundir"):
        assert kept_model(tmp_path / "run", "fan") is None
    assert "checksum mismatch" in caplog.text and str(kept / WEIGHTS_NAME) in caplog.text
