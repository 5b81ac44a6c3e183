"""ONNX export: onnxruntime's scores of the one-graph scoring path match the PyTorch detector's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from asdkit.data.audio import load_audio
from asdkit.data.manifest import Clip
from asdkit.data.synthetic import synthesize_clip
from asdkit.detectors.base import ClipFeatures
from asdkit.detectors.reconstruction.autoencoder import AutoencoderDetector
from asdkit.detectors.registry import create_detector
from asdkit.errors import ModelError
from asdkit.export.onnx import export_onnx, onnx_scores
from asdkit.features.config import FeatureConfig
from asdkit.features.logmel import compute_logmel

TOLERANCE = 1e-4  # relative, per clip


def _features(waves: list[np.ndarray], config: FeatureConfig) -> ClipFeatures:
    clips = [Clip(path=Path(f"/clip_{i}.wav"), machine="m", section="00") for i in range(len(waves))]
    return ClipFeatures(compute_logmel(waves, config), clips, config)


def _trained_ae(waves: list[np.ndarray], config: FeatureConfig, **params: object) -> AutoencoderDetector:
    """A briefly trained AE: reconstructs well, so its scores are small and sensitive to front-end drift."""
    detector = AutoencoderDetector(
        hidden=64, bottleneck=8, n_hidden=2, epochs=2, batch_size=256, accelerator="cpu", **params
    )
    return detector.fit(_features(waves, config))


def _relative_difference(detector: AutoencoderDetector, waves: list[np.ndarray], path: Path) -> np.ndarray:
    expected = detector.anomaly_score(_features(waves, detector.feature_config_))
    return np.abs(onnx_scores(path, waves) - expected) / np.abs(expected)


def _synthetic(machine: str, n: int, seed: int, anomaly: bool = False, seconds: float = 2.0) -> list:
    rng = np.random.default_rng(seed)
    kind = "imbalance" if anomaly else None
    return [synthesize_clip(machine, 0, "source", kind, 1.0, rng, seconds, 16000) for _ in range(n)]


def test_real_clips_score_alike_in_onnxruntime_and_pytorch(shared_data, tmp_path):
    folder = shared_data / "dcase2020_dev_sample" / "fan" / "test"
    normal = [load_audio(p) for p in sorted(folder.glob("normal_*.wav"))[:6]]
    tests = [load_audio(p) for p in sorted(folder.glob("*.wav"))[::3]]
    detector = _trained_ae(normal, FeatureConfig(), standardise=True)
    path = export_onnx(detector, tmp_path / "fan.onnx")
    assert len(tests) >= 5 and _relative_difference(detector, tests, path).max() < TOLERANCE


@pytest.mark.parametrize("standardise", [False, True])
def test_synthetic_clips_score_alike_in_onnxruntime_and_pytorch(tmp_path, standardise):
    detector = _trained_ae(_synthetic("pump", 6, 0), FeatureConfig(), standardise=standardise)
    path = export_onnx(detector, tmp_path / "pump.onnx")
    tests = _synthetic("pump", 2, 1) + _synthetic("pump", 2, 2, anomaly=True, seconds=3.3)
    assert _relative_difference(detector, tests, path).max() < TOLERANCE


@pytest.mark.parametrize(("name", "params"), [("vae", {}), ("vae", {"score": "elbo"}), ("idnn", {})])
def test_other_stacked_frame_detectors_export_too(tmp_path, name, params):
    detector = create_detector(name, epochs=2, hidden=64, accelerator="cpu", **params)
    detector.fit(_features(_synthetic("valve", 4, 5), FeatureConfig()))
    path = export_onnx(detector, tmp_path / f"{name}.onnx")
    tests = _synthetic("valve", 2, 6) + _synthetic("valve", 1, 7, seconds=3.1)
    assert _relative_difference(detector, tests, path).max() < TOLERANCE


def test_other_feature_settings_batches_and_metadata(tmp_path):
    config = FeatureConfig(n_mels=64, n_fft=512, hop_length=256, top_db=80.0, power=1.0)
    detector = _trained_ae(_synthetic("fan", 4, 3), config)
    path = export_onnx(detector, tmp_path / "fan.onnx", metadata={"machine": "fan"})
    tests = _synthetic("fan", 3, 4)
    assert _relative_difference(detector, tests, path).max() < TOLERANCE

    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = session.run(["score"], {"waveform": np.stack(tests).astype(np.float32)})[0]
    np.testing.assert_allclose(batch, onnx_scores(path, tests), rtol=1e-6)
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert float(props["threshold"]) == detector.threshold_ and props["machine"] == "fan"
    assert json.loads(props["features"])["n_mels"] == 64 and props["sample_rate"] == "16000"


def test_detectors_without_an_export_are_a_one_line_error(tmp_path):
    conv = create_detector("conv_ae")
    conv.feature_config_, conv.threshold_ = FeatureConfig(), 1.0
    with pytest.raises(ModelError, match="conv_ae: ONNX export supports ae, vae, idnn only"):
        export_onnx(conv, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
