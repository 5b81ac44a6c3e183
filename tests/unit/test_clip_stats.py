"""The ``stats`` parameter of the statistics detectors: groups of clip statistics beside the pooled frames."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from asdkit.data.manifest import Clip
from asdkit.detectors.banks.clip_stats import (
    TONAL_BANDS,
    TONAL_FFT,
    delta_std,
    envelope_statistics,
    group_weights,
    parse_stats,
    tonal_prominence,
)
from asdkit.detectors.banks.embedding import (
    GmmDetector,
    KMeansDetector,
    KnnDetector,
    MahalanobisDetector,
    frame_statistics,
)
from asdkit.detectors.base import ClipFeatures, Detector, InputArrays
from asdkit.detectors.params import validate_params
from asdkit.errors import ModelError
from asdkit.features.config import FeatureConfig
from asdkit.features.spectrum import SpectrumConfig

N_MELS = 16
CONFIG = FeatureConfig(n_mels=N_MELS)
TONAL_SPECTRUM = SpectrumConfig(CONFIG.sample_rate, n_fft=TONAL_FFT, channel=CONFIG.channel)
PROFILE = np.linspace(-20, -60, N_MELS)
ENVELOPE_DIM = 12


def _features(n: int, rng: np.random.Generator, *, clicks: bool = False, tone: bool = False) -> ClipFeatures:
    """Steady noise clips; ``clicks``: a few frames 20 dB louder in every band (a valve's transient), which
    hardly moves the per-band means; ``tone``: a narrow spectral peak the log-mel does not show."""
    arrays, spectra, clips = [], [], []
    for i in range(n):
        x = PROFILE[:, None] + rng.normal(0, 1.0, size=(N_MELS, 200))
        if clicks:
            x[:, rng.choice(200, 3, replace=False)] += 20.0
        arrays.append(x.astype(np.float32))
        s = np.linspace(-40, -80, TONAL_SPECTRUM.n_bins) + rng.normal(0, 1.0, TONAL_SPECTRUM.n_bins)
        if tone:
            s[700] += 25.0
        spectra.append(s[None].astype(np.float32))
        label = int(clicks or tone)
        clips.append(Clip(path=f"/m/{label}{i}.wav", machine="m", section="00", domain="source", label=label))
    return ClipFeatures(arrays, clips, CONFIG, {"spectrum": InputArrays(TONAL_SPECTRUM, spectra)})


def _join(*parts: ClipFeatures) -> ClipFeatures:
    spectra = [a for p in parts for a in p.inputs["spectrum"].arrays]
    return ClipFeatures(
        [a for p in parts for a in p.arrays],
        [c for p in parts for c in p.clips],
        CONFIG,
        {"spectrum": InputArrays(TONAL_SPECTRUM, spectra)},
    )


@pytest.fixture(scope="module")
def data() -> tuple[ClipFeatures, ClipFeatures, ClipFeatures]:
    rng = np.random.default_rng(0)
    train = _features(24, rng)
    normal, clicks, tones = _features(10, rng), _features(10, rng, clicks=True), _features(10, rng, tone=True)
    return train, _join(normal, clicks), _join(normal, tones)


def test_stats_are_groups_joined_by_plus_and_a_bad_one_is_a_one_line_model_error():
    assert parse_stats("pooled") == ["pooled"]
    assert parse_stats("pooled+delta+envelope+tonal") == ["pooled", "delta", "envelope", "tonal"]
    for bad in ("mean_std", "pooled,delta", "", "pooled+"):
        with pytest.raises(ModelError, match="stats: groups joined by") as caught:
            parse_stats(bad)
        assert "\n" not in str(caught.value)
    with pytest.raises(ModelError, match="at most once"):
        parse_stats("delta+delta")


def test_a_bad_stats_value_fails_fitting_with_a_one_line_model_error(data):
    train, _, _ = data
    with pytest.raises(ModelError, match="stats: groups joined by '\\+' among pooled") as caught:
        MahalanobisDetector(stats="max").fit(train)
    assert "\n" not in str(caught.value)
    assert validate_params("mahalanobis", {"stats": "pooled+delta"}) == {"stats": "pooled+delta"}


def test_group_statistics_are_what_they_say():
    x = np.array([[0.0, 2.0, 0.0, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    np.testing.assert_allclose(delta_std(x), [2.0, 0.0])  # differences +2, -2, +2, -2
    np.testing.assert_allclose(delta_std(x[:, :1]), [0.0, 0.0])
    # two bands at -10 dB each: the frame's total power is -7 dB (10 log10 0.2); steady, so no modulation
    steady = envelope_statistics(np.full((2, 64), -10.0), frame_rate=31.25)
    assert steady.shape == (ENVELOPE_DIM,)
    np.testing.assert_allclose(steady[:5], 10 * np.log10(0.2))
    np.testing.assert_allclose(steady[5:7], 0.0, atol=1e-12)
    np.testing.assert_allclose(steady[7:], -6.0)  # the power floor
    # a 4 Hz loudness cycle puts its power into the 4-8 Hz modulation band
    t = np.arange(256) / 32.0
    cycling = envelope_statistics(-10 + 6 * np.sin(2 * np.pi * 4.0 * t)[None, :], frame_rate=32.0)
    assert np.argmax(cycling[7:]) == 3
    spectrum = np.zeros(2049)
    spectrum[700] = 12.0
    prominence = tonal_prominence(spectrum)
    assert prominence.shape == (TONAL_BANDS,)
    assert prominence[700 * TONAL_BANDS // 2049] == pytest.approx(12.0) and prominence.sum() == 12.0


def test_each_group_weighs_as_much_as_the_first():
    weights = group_weights([256, 128, 12])
    sums = [np.sum(weights[:256] ** 2), np.sum(weights[256:384] ** 2), np.sum(weights[384:] ** 2)]
    np.testing.assert_allclose(sums, 256.0)
    np.testing.assert_array_equal(group_weights([32]), np.ones(32))


@pytest.mark.parametrize("cls", [KnnDetector, KMeansDetector, MahalanobisDetector, GmmDetector])
@pytest.mark.parametrize(
    ("stats", "dim"),
    [
        ("pooled", 2 * N_MELS),
        ("pooled+delta", 3 * N_MELS),
        ("pooled+envelope", 2 * N_MELS + ENVELOPE_DIM),
        ("delta+tonal", N_MELS + TONAL_BANDS),
        ("pooled+delta+envelope+tonal", 3 * N_MELS + ENVELOPE_DIM + TONAL_BANDS),
    ],
)
def test_embedding_shapes_and_save_load_round_trip(data, tmp_path, cls, stats, dim):
    train, test, _ = data
    detector = cls(stats=stats).fit(train)
    assert detector.embed(test).shape == (len(test), dim)
    assert ("spectrum" in detector.tags().inputs) == ("tonal" in stats)
    path = detector.save(tmp_path / "model")
    assert json.loads((path / "model.json").read_text())["params"]["stats"] == stats
    loaded = Detector.load(path)
    assert loaded.stats == stats
    np.testing.assert_allclose(loaded.anomaly_score(test), detector.anomaly_score(test), rtol=1e-10)


def test_tonal_reads_a_4096_point_clip_spectrum():
    detector = MahalanobisDetector(stats="pooled+tonal")
    assert detector.input_configs(CONFIG) == {"spectrum": TONAL_SPECTRUM}
    assert MahalanobisDetector().input_configs(CONFIG) == {}


def test_tonal_without_the_spectrum_is_a_model_error(data):
    train, _, _ = data
    bare = ClipFeatures(train.arrays, train.clips, CONFIG)
    with pytest.raises(ModelError, match="spectrum"):
        MahalanobisDetector(stats="pooled+tonal").fit(bare)


def test_the_default_is_todays_mean_and_std(data):
    train, test, _ = data
    detector = MahalanobisDetector().fit(train)
    assert detector.stats == "pooled"
    raw = np.stack([frame_statistics(a) for a in test.arrays])
    expected = (raw - detector.standard_["center"]) / detector.standard_["scale"]
    np.testing.assert_array_equal(detector.embed(test), expected)


def test_a_model_saved_before_stats_loads_as_pooled(data, tmp_path):
    train, test, _ = data
    detector = MahalanobisDetector().fit(train)
    path = detector.save(tmp_path / "old")
    config = json.loads((path / "model.json").read_text())
    del config["params"]["stats"]
    (path / "model.json").write_text(json.dumps(config))
    loaded = Detector.load(path)
    assert loaded.stats == "pooled"
    np.testing.assert_array_equal(loaded.anomaly_score(test), detector.anomaly_score(test))


def test_the_groups_see_what_mean_and_std_miss(data):
    """Rare loud clicks and a narrow tone: the groups made for them separate the anomalies better than
    per-band mean and std alone."""
    train, clicks, tones = data
    labels = np.array([c.label for c in clicks.clips])

    def auc(stats: str, test: ClipFeatures) -> float:
        return float(roc_auc_score(labels, MahalanobisDetector(stats=stats).fit(train).anomaly_score(test)))

    assert auc("pooled+envelope", clicks) == 1.0
    assert auc("pooled+tonal", tones) == 1.0
    assert auc("pooled", tones) < 0.8


def test_every_group_but_tonal_exports_to_onnx():
    from asdkit.export.graph import not_exportable_reason

    assert not_exportable_reason(MahalanobisDetector()) is None
    assert not_exportable_reason(MahalanobisDetector(stats="pooled+delta+envelope")) is None
    reason = not_exportable_reason(KnnDetector(stats="pooled+delta+tonal"))
    assert reason == "stats=pooled+delta+tonal: the graph has no clip spectrum for the tonal group"
    assert "pooling=gem" in str(not_exportable_reason(KnnDetector(pooling="gem")))


def test_the_benchmark_bootstrap_is_paired_and_exact_at_the_ends():
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_clip_stats.py"
    spec = importlib.util.spec_from_file_location("_bench_clip_stats", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    normal, anomalous = np.array([0.0, 1.0, 2.0]), np.array([1.5, 3.0])
    boot = module.bootstrap_auc(normal, anomalous, resamples=500)
    assert boot.shape == (500,) and boot.min() < boot.max() == 1.0  # resampling moves it; all in order is 1
    assert abs(boot.mean() - 5 / 6) < 0.05  # the AUC of the clips themselves: 5 of 6 pairs in order
    np.testing.assert_array_equal(module.bootstrap_auc(normal * 2, anomalous * 2, resamples=500), boot)
    np.testing.assert_array_equal(module.bootstrap_auc(normal, normal + 10, resamples=50), np.ones(50))
