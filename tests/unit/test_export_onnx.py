"""ONNX export: onnxruntime's scores of the one-graph scoring path match the PyTorch detector's, for every
exportable registered detector; the others are a one-line error saying why."""

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
from asdkit.detectors.registry import available_detectors, create_detector, get_detector_class
from asdkit.errors import ModelError
from asdkit.export.graph import EXPORTABLE, NOT_EXPORTABLE
from asdkit.export.onnx import export_front_end, export_onnx, onnx_scores, onnx_session, section_indices
from asdkit.features.config import FeatureConfig
from asdkit.features.logmel import compute_logmel

TOLERANCE = 1e-4  # relative, per clip
#: Log-mel parity of the ONNX STFT front end with LogMel, in dB (largest difference over every bin)
DB_TOLERANCE = 1e-3


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


@pytest.mark.parametrize(("name", "params"), [("vae", {"score": "elbo"})])
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


def _front_end_db(config: FeatureConfig, waves: list[np.ndarray], path: Path) -> list[np.ndarray]:
    path = export_front_end(config, path)
    assert "STFT" in {n.op_type for n in onnx.load(str(path)).graph.node}
    session = onnx_session(path)
    return [session.run(None, {"waveform": w[None].astype(np.float32)})[0][0].T for w in waves]


@pytest.mark.parametrize(
    "config",
    [
        FeatureConfig(),
        FeatureConfig(n_mels=64, n_fft=512, hop_length=160, win_length=400, fmin=50.0, fmax=7000.0),
    ],
)
def test_the_stft_front_end_matches_logmel(shared_data, tmp_path, config):
    """Real clips (quiet high bands included) and a near-silent one, in dB, against LogMel's float64 path."""
    folder = shared_data / "dcase2020_dev_sample" / "fan" / "test"
    waves = [load_audio(p) for p in sorted(folder.glob("*.wav"))[:3]]
    waves.append(1e-4 * np.random.default_rng(0).standard_normal(16000).astype(np.float32))
    got = _front_end_db(config, waves, tmp_path / "front.onnx")
    for g, expected in zip(got, compute_logmel(waves, config), strict=True):
        assert g.shape == expected.shape and np.abs(g - expected).max() < DB_TOLERANCE


# -- every registered detector: a graph with the same clip scores, or a one-line error saying why --------

#: Small, quick settings of the detectors that train a network (the graph does not depend on their size).
QUICK = {
    "ae": {"epochs": 1, "hidden": 32, "bottleneck": 4, "accelerator": "cpu"},
    "vae": {"epochs": 1, "hidden": 32, "accelerator": "cpu"},
    "idnn": {"epochs": 1, "hidden": 32, "accelerator": "cpu"},
}


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """Ledoit-Wolf and pinv of the Mahalanobis banks: many BLAS threads on a busy 2-core machine took 30x
    longer (74 s instead of 2.7 s to fit the default detector on 24 clips)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _tree_clips(n: int, seed: int, anomaly: bool = False) -> tuple[list[np.ndarray], list[Clip]]:
    """Clips of two sections and both domains (banks per section and domain), 1.5-2.5 s long."""
    rng = np.random.default_rng(seed)
    waves, clips = [], []
    for i in range(n):
        section, domain = i % 2, "target" if i % 4 == 3 else "source"
        kind = "imbalance" if anomaly else None
        seconds = 2.0 if i % 3 else 1.5 + rng.random()
        waves.append(synthesize_clip("fan", section, domain, kind, 1.0, rng, seconds, 16000))
        clips.append(
            Clip(path=Path(f"/c{seed}_{i}.wav"), machine="fan", section=f"0{section}", domain=domain)
        )
    return waves, clips


@pytest.fixture(scope="module")
def training() -> ClipFeatures:
    waves, clips = _tree_clips(24, 0)
    return ClipFeatures(compute_logmel(waves, FeatureConfig()), clips, FeatureConfig())


@pytest.fixture(scope="module")
def tests() -> tuple[list[np.ndarray], list[str]]:
    """Normal and anomalous clips; some with their section, one unknown (""), one of a section not trained."""
    normal, clips = _tree_clips(5, 1)
    anomalous, more = _tree_clips(3, 2, anomaly=True)
    sections = [c.section for c in clips + more]
    sections[0], sections[-1] = "", "07"
    return normal + anomalous, sections


def _assert_same_scores(detector, path: Path, tests) -> None:
    waves, sections = tests
    config = detector.feature_config_
    clips = [Clip(path=Path(f"/t{i}.wav"), machine="fan", section=s) for i, s in enumerate(sections)]
    expected = detector.anomaly_score(ClipFeatures(compute_logmel(waves, config), clips, config))
    got = onnx_scores(path, waves, sections)
    # zero-centred scores (ensembles' z-scores) are compared on their unit scale, others relatively
    np.testing.assert_allclose(got, expected, rtol=TOLERANCE, atol=TOLERANCE)
    assert np.ptp(expected) > 0  # the clips score differently: the comparison says something


def test_every_registered_detector_is_exportable_or_says_why():
    assert set(EXPORTABLE).isdisjoint(NOT_EXPORTABLE)
    assert set(available_detectors()) == set(EXPORTABLE) | set(NOT_EXPORTABLE)


@pytest.mark.parametrize("name", EXPORTABLE)
def test_exported_detectors_score_as_in_pytorch(training, tests, tmp_path, name):
    """``ensemble`` without members is the default detector (mahalanobis + patch_bank, mean)."""
    detector = create_detector(name, **QUICK.get(name, {})).fit(training)
    path = export_onnx(detector, tmp_path / f"{name}.onnx")
    _assert_same_scores(detector, path, tests)
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert float(props["threshold"]) == detector.threshold_
    inputs = [i.name for i in onnx.load(str(path)).graph.input]
    if name in ("ae", "vae", "idnn"):
        assert inputs == ["waveform"] and json.loads(props["sections"]) == []
    else:
        assert inputs == ["waveform", "section"] and json.loads(props["sections"]) == ["00", "01"]
    # a batch of equal-length clips scores as the clips one by one
    waves, sections = tests
    same = [i for i, w in enumerate(waves) if len(w) == len(waves[1])]
    feed = {"waveform": np.stack([waves[i] for i in same]).astype(np.float32)}
    if "section" in inputs:
        feed["section"] = section_indices(path, [sections[i] for i in same])
    batch = onnx_session(path).run(["score"], feed)[0]
    one_by_one = onnx_scores(path, [waves[i] for i in same], [sections[i] for i in same])
    assert len(same) >= 3 and np.allclose(batch, one_by_one, rtol=1e-6, atol=1e-9)  # float32 networks


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("knn", {"metric": "cosine", "k": 3}),
        ("knn", {"domains": "min_scaled", "quantiles": "0.1,0.5,0.9"}),
        ("knn", {"domains": "pooled", "k": 50}),  # k above the bank size
        ("mahalanobis", {"shared_covariance": False, "covariance": "empirical"}),
        ("mahalanobis", {"stats": "pooled+delta+envelope"}),
        ("mahalanobis", {"stats": "pooled+envelope", "quantiles": "0.5"}),
        ("knn", {"stats": "pooled+delta+envelope"}),
        ("knn", {"stats": "envelope+pooled", "k": 3}),
        ("gmm", {"stats": "delta+envelope", "covariance_type": "diag"}),
        ("gmm", {"covariance_type": "full"}),
        ("gmm", {"covariance_type": "tied", "n_components": 3}),
        ("gmm", {"covariance_type": "spherical", "quantiles": "0.5"}),
        ("patch_bank", {"aggregate": "top_mean", "fraction": 0.07, "bank_size": 64}),
        ("patch_bank", {"aggregate": "quantile", "fraction": 0.2, "n_frames": 5}),
        ("patch_bank", {"aggregate": "max", "domains": "pooled"}),
        ("ensemble", {"members": ["knn", "gmm"], "normalise": "rank", "weights": [1.0, 3.0]}),
        ("ensemble", {"members": [{"model": "ensemble", "params": {"members": ["knn"]}}, "mahalanobis"]}),
        ("ensemble", {"members": ["mahalanobis", "knn", "patch_bank"], "combine": "max"}),
        ("ensemble", {"members": ["knn", "gmm"], "normalise": "rank", "combine": "max"}),
        (  # the default detector with the statistics member it is about to get
            "ensemble",
            {
                "members": [
                    {"model": "mahalanobis", "params": {"stats": "pooled+delta+envelope"}},
                    {"model": "patch_bank", "params": {"aggregate": "mean"}},
                ]
            },
        ),
    ],
)
def test_detector_settings_score_as_in_pytorch(training, tests, tmp_path, name, params):
    detector = create_detector(name, **params).fit(training)
    _assert_same_scores(detector, export_onnx(detector, tmp_path / "m.onnx"), tests)


@pytest.mark.parametrize("name", sorted(NOT_EXPORTABLE))
def test_detectors_without_a_graph_are_a_one_line_error(tmp_path, name):
    detector = get_detector_class(name)()
    detector.feature_config_, detector.threshold_ = FeatureConfig(), 1.0
    with pytest.raises(ModelError) as error:
        export_onnx(detector, tmp_path / "x.onnx")
    message = str(error.value)
    exportable = ", ".join(EXPORTABLE)
    assert message == f"{name}: cannot be exported to ONNX: {NOT_EXPORTABLE[name]}; exportable: {exportable}"
    assert "\n" not in message and not (tmp_path / "x.onnx").exists()


def test_an_ensemble_with_a_member_without_a_graph_names_it(training, tmp_path):
    detector = create_detector("ensemble", members=["knn", "knn"]).fit(training)
    conv = create_detector("conv_ae")
    detector.members_[1] = conv
    with pytest.raises(
        ModelError, match=r"ensemble: cannot be exported to ONNX: member 1 \(conv_ae\): its score"
    ):
        export_onnx(detector, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_an_exported_max_ensemble_takes_the_largest_member_per_clip(training, tests, tmp_path):
    """The graph's maximum is per clip: on these clips more than one member is the largest, so matching
    PyTorch here is not matching one member's graph."""
    from asdkit.detectors.ensemble import _member_stats
    from asdkit.scoring.normalise import normalise

    detector = create_detector("ensemble", members=["mahalanobis", "knn", "patch_bank"], combine="max")
    detector.fit(training)
    path = export_onnx(detector, tmp_path / "max.onnx")
    _assert_same_scores(detector, path, tests)
    waves, sections = tests
    config = detector.feature_config_
    clips = [Clip(path=Path(f"/t{i}.wav"), machine="fan", section=s) for i, s in enumerate(sections)]
    X = ClipFeatures(compute_logmel(waves, config), clips, config)
    per_member = np.stack(
        [
            normalise("zscore", _member_stats(detector.normalisers_, i), m.anomaly_score(X))
            for i, m in enumerate(detector.members_)
        ]
    )
    assert len(set(np.argmax(per_member, axis=0).tolist())) > 1
    np.testing.assert_allclose(onnx_scores(path, waves, sections), per_member.max(axis=0), atol=TOLERANCE)
