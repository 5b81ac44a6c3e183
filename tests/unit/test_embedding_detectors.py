"""Embedding detectors: frame statistics, memory banks per domain, margin classifiers and ensembles."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from asdkit.data.manifest import Clip
from asdkit.detectors.banks.embedding import (
    KnnDetector,
    MahalanobisDetector,
    frame_statistics,
    parse_quantiles,
)
from asdkit.detectors.base import ClipFeatures, Detector, InputArrays
from asdkit.detectors.ensemble import EnsembleDetector
from asdkit.detectors.margin.family import AdaCosDetector, ArcFaceDetector, class_key
from asdkit.detectors.windows import patches
from asdkit.errors import ModelError
from asdkit.features.config import FeatureConfig
from asdkit.features.spectrum import SpectrumConfig
from asdkit.models.embedding_cnn import CompactCnn
from asdkit.models.margin_heads import ArcFace, SubClusterAdaCos
from asdkit.models.spectrum_cnn import SpectrumCnn

CONFIG = FeatureConfig(n_mels=16)
SOURCE_PROFILE = np.linspace(-20, -60, 16)
TARGET_PROFILE = SOURCE_PROFILE[::-1].copy()  # the target domain sounds very different


def _clips(
    n: int,
    profile: np.ndarray,
    rng: np.random.Generator,
    *,
    domain: str = "source",
    section: str = "00",
    anomalous: bool = False,
    machine: str = "m",
    attrs: dict[str, str] | None = None,
    frames: int = 40,
    boost: float = 15.0,
) -> ClipFeatures:
    arrays = []
    for _ in range(n):
        x = profile[:, None] + rng.normal(0, 1.0, size=(16, frames))
        if anomalous:
            x[4:7] += boost
        arrays.append(x.astype(np.float32))
    clips = [
        Clip(
            path=f"/{machine}/{section}{domain}{int(anomalous)}{i}.wav",
            machine=machine,
            section=section,
            domain=domain,
            label=int(anomalous),
            attributes=dict(attrs or {}),
        )
        for i in range(n)
    ]
    return ClipFeatures(arrays, clips, CONFIG)


def _join(*parts: ClipFeatures) -> ClipFeatures:
    return ClipFeatures([a for p in parts for a in p.arrays], [c for p in parts for c in p.clips], CONFIG)


@pytest.fixture(scope="module")
def shifted() -> tuple[ClipFeatures, ClipFeatures, np.ndarray]:
    """Many source and few target training clips; test: normal target clips and anomalies of both domains."""
    rng = np.random.default_rng(0)
    train = _join(_clips(30, SOURCE_PROFILE, rng), _clips(4, TARGET_PROFILE, rng, domain="target"))
    test = _join(
        _clips(10, TARGET_PROFILE, rng, domain="target"),
        _clips(5, SOURCE_PROFILE, rng, anomalous=True),
        _clips(5, TARGET_PROFILE, rng, domain="target", anomalous=True),
    )
    return train, test, np.array([0] * 10 + [1] * 10)


def test_frame_statistics_are_per_band_mean_std_and_quantiles():
    x = np.array([[1.0, 3.0], [0.0, 10.0]])
    np.testing.assert_allclose(frame_statistics(x), [2, 5, 1, 5])
    np.testing.assert_allclose(frame_statistics(x, [0.0, 1.0]), [2, 5, 1, 5, 1, 0, 3, 10])
    assert parse_quantiles("0.1, 0.9") == [0.1, 0.9] and parse_quantiles("") == []
    with pytest.raises(ModelError, match="quantiles"):
        parse_quantiles("median")
    with pytest.raises(ModelError, match="between 0 and 1"):
        parse_quantiles("50")


@pytest.mark.parametrize("detector", [KnnDetector(), MahalanobisDetector()])
def test_min_over_domains_keeps_target_normals_low(shifted, detector):
    train, test, labels = shifted
    assert roc_auc_score(labels, detector.fit(train).anomaly_score(test)) == 1.0


def test_a_pooled_bank_is_worse_on_the_target_domain_than_min_over_domains(shifted):
    train, _, labels = shifted
    rng = np.random.default_rng(5)
    test = _join(
        _clips(10, TARGET_PROFILE, rng, domain="target"),
        _clips(5, SOURCE_PROFILE, rng, anomalous=True, boost=3.0),
        _clips(5, TARGET_PROFILE, rng, domain="target", anomalous=True, boost=3.0),
    )
    # k=5 > the 4 target training clips: a pooled bank reaches into the far source clips
    pooled = KnnDetector(k=5, domains="pooled").fit(train).anomaly_score(test)
    selective = KnnDetector(k=5).fit(train).anomaly_score(test)
    assert roc_auc_score(labels, pooled) < roc_auc_score(labels, selective)


def test_knn_training_scores_leave_each_clip_out(shifted):
    train, _, _ = shifted
    knn = KnnDetector().fit(train)
    own = knn._training_scores(train)
    assert np.all(own > 0)  # with itself in its bank every distance would be 0
    assert knn.predict(train).mean() <= 0.3


def test_bad_detector_options_fail_before_training(shifted):
    train, _, _ = shifted
    with pytest.raises(ModelError, match="metric"):
        KnnDetector(metric="hamming").fit(train)
    with pytest.raises(ModelError, match="domains"):
        KnnDetector(domains="max").fit(train)
    with pytest.raises(ModelError, match="labels"):
        ArcFaceDetector(labels="machine", epochs=1, accelerator="cpu").fit(train)


# -- margin classifiers -----------------------------------------------------------------------------------
def test_backbone_maps_snippets_to_embeddings():
    net = CompactCnn(n_mels=16, embedding_dim=12, channels=(4, 8, 8)).eval()
    assert net(torch.randn(3, 1, 64, 16)).shape == (3, 12)
    assert patches(np.zeros((16, 100), dtype=np.float32), 64, 32).shape == (3, 64, 16)  # 0, 32, 36
    assert patches(np.zeros((16, 10), dtype=np.float32), 64, 32).shape == (1, 64, 16)


def test_arcface_adds_the_margin_to_the_true_class_only():
    head = ArcFace(embedding_dim=2, n_classes=2, scale=10.0, margin=0.5)
    with torch.no_grad():
        head.centres.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    emb = torch.tensor([[0.5, math.sqrt(3) / 2]])  # 60 degrees from class 0's centre, 30 from class 1's
    logits = head.logits(emb, torch.tensor([0]))
    expected = torch.tensor([[10 * math.cos(math.pi / 3 + 0.5), 10 * math.sqrt(3) / 2]])
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)


def test_adacos_class_probability_sums_its_subclusters():
    head = SubClusterAdaCos(embedding_dim=2, n_classes=2, n_subclusters=2).eval()
    with torch.no_grad():
        head.centres.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]))
        head.scale.fill_(1.0)
    emb = torch.tensor([[1.0, 0.0]])
    # cosines to the four centres: 1, 0 (class 0); -1, 0 (class 1)
    p0 = (math.e + 1) / (math.e + 1 + math.exp(-1) + 1)
    loss = head.loss(emb, torch.tensor([0]), torch.tensor([0]), 1.0)
    torch.testing.assert_close(loss, torch.tensor(-math.log(p0)), atol=1e-6, rtol=0)


def test_adacos_scale_adapts_during_training():
    torch.manual_seed(0)
    head = SubClusterAdaCos(embedding_dim=8, n_classes=3, n_subclusters=4).train()
    before = float(head.scale)
    head.loss(torch.randn(16, 8), torch.randint(0, 3, (16,)), torch.randint(0, 3, (16,)), 0.7)
    assert float(head.scale) != before and math.isfinite(float(head.scale)) and float(head.scale) >= 1


def test_class_keys_use_attributes_when_asked():
    clip = Clip(path="/a.wav", machine="fan", section="01", attributes={"v": "2", "a": "x"})
    assert class_key(clip, "section") == ("fan", "01")
    assert class_key(clip, "attributes") == ("fan", "01", "a=x", "v=2")


QUICK_NET = dict(epochs=3, batch_size=32, base_channels=4, embedding_dim=16, accelerator="cpu")


def _sections_data(rng: np.random.Generator) -> tuple[ClipFeatures, ClipFeatures]:
    profiles = {"00": SOURCE_PROFILE, "01": TARGET_PROFILE}
    train = _join(*(_clips(8, p, rng, section=s, attrs={"speed": s}) for s, p in profiles.items()))
    proxy = _clips(8, np.full(16, -40.0), rng, machine="other", section="00")
    return train, proxy


def test_classifier_classes_come_from_sections_attributes_and_proxy_machines():
    train, proxy = _sections_data(np.random.default_rng(1))
    arc = ArcFaceDetector(labels="section", **QUICK_NET).fit(train)
    assert arc.classes_ == [("m", "00"), ("m", "01")]
    ada = AdaCosDetector(mixup=0.2, **QUICK_NET)
    assert ada.tags().wants_machines and ada.tags().sections == "banks"
    ada.fit(replace(train, proxy=proxy))
    assert ada.classes_ == [("m", "00", "speed=00"), ("m", "01", "speed=01"), ("other", "00")]
    assert [k for k, _ in ada._banks().keys] == ["00", "01"]  # proxy clips are never memory banks
    assert ada.history_[-1]["train_loss"] < ada.history_[0]["train_loss"]


def test_classifier_save_load_keeps_classes_and_scores(tmp_path):
    train, _ = _sections_data(np.random.default_rng(2))
    arc = ArcFaceDetector(**QUICK_NET).fit(train)
    loaded = Detector.load(arc.save(tmp_path / "arc"))
    assert loaded.classes_ == arc.classes_
    np.testing.assert_array_equal(loaded.anomaly_score(train), arc.anomaly_score(train))


# -- ensembles --------------------------------------------------------------------------------------------
def test_an_ensemble_of_identical_detectors_equals_the_detector(shifted):
    train, test, labels = shifted
    single = KnnDetector().fit(train)
    ensemble = EnsembleDetector(members=["knn", {"model": "knn", "params": {}}]).fit(train)
    raw = single.anomaly_score(test)
    own = single._training_scores(train)
    np.testing.assert_allclose(ensemble.anomaly_score(test), (raw - own.mean()) / own.std(), rtol=1e-12)
    ranked = EnsembleDetector(members=["knn", "knn"], normalise="rank").fit(train)
    assert roc_auc_score(labels, ranked.anomaly_score(test)) == roc_auc_score(labels, raw)


def test_ensemble_reuses_saved_models_and_loads_without_them(shifted, tmp_path):
    train, test, _ = shifted
    knn_dir = KnnDetector().fit(train).save(tmp_path / "knn")
    ensemble = EnsembleDetector(members=[str(knn_dir), "mahalanobis"], weights=[3, 1]).fit(train)
    path = ensemble.save(tmp_path / "ensemble")
    for p in knn_dir.iterdir():
        p.unlink()
    loaded = Detector.load(path)
    assert [m.name for m in loaded.members_] == ["knn", "mahalanobis"]
    np.testing.assert_array_equal(loaded.anomaly_score(test), ensemble.anomaly_score(test))
    assert loaded.threshold_ == ensemble.threshold_


def test_bad_ensembles_are_clear_errors(shifted):
    train, _, _ = shifted
    with pytest.raises(ModelError, match="no members"):
        EnsembleDetector(members=[]).fit(train)
    with pytest.raises(ModelError, match="weights"):
        EnsembleDetector(members=["knn"], weights=[1, 2]).fit(train)
    with pytest.raises(ModelError, match="a member is"):
        EnsembleDetector(members=[{"model": "knn", "path": "x"}]).fit(train)


@pytest.mark.parametrize("backbone", ["rf_resnet", "mobilenet_v2"])
def test_section_classifier_networks_plug_in_as_backbones(backbone, tmp_path):
    from asdkit.models.margin_classifier import make_backbone

    net = make_backbone(backbone, n_mels=16, dim=12, base_channels=8).eval()
    assert net(torch.randn(3, 1, 64, 16)).shape == (3, 12)
    train, _ = _sections_data(np.random.default_rng(3))
    arc = ArcFaceDetector(**{**QUICK_NET, "backbone": backbone, "epochs": 1, "base_channels": 8}).fit(train)
    loaded = Detector.load(arc.save(tmp_path / "arc"))
    np.testing.assert_allclose(loaded.anomaly_score(train), arc.anomaly_score(train), rtol=1e-6)


def test_unknown_backbone_is_a_clear_error():
    train, _ = _sections_data(np.random.default_rng(3))
    with pytest.raises(ModelError, match="backbone must be one of compact, rf_resnet, mobilenet_v2"):
        ArcFaceDetector(**{**QUICK_NET, "backbone": "vgg"}).fit(train)


# -- two branches: clip spectrum + log-mel ------------------------------------------------------------------
SPECTRUM_FFT = 256  # 129 bins: small and quick
SPECTRUM = SpectrumConfig(CONFIG.sample_rate, n_fft=SPECTRUM_FFT, channel=CONFIG.channel)


def _with_spectra(X: ClipFeatures, rng: np.random.Generator, tone_bins: dict[str, int]) -> ClipFeatures:
    """Spectra: a sloping noise floor, a tone whose bin tells the section, and for anomalous clips a second
    narrow tone; the log-mel arrays stay as they are."""
    spectra = []
    for clip in X.clips:
        s = np.linspace(-40, -80, SPECTRUM.n_bins) + rng.normal(0, 1.0, SPECTRUM.n_bins)
        s[tone_bins[clip.section]] += 30
        if clip.label == 1:
            s[90:92] += 25
        spectra.append(s[None].astype(np.float32))
    return ClipFeatures(X.arrays, X.clips, X.config, {"spectrum": InputArrays(SPECTRUM, spectra)})


def test_spectrum_branch_maps_spectra_of_any_length_to_embeddings():
    for n_bins in (16, 129, 8193):
        net = SpectrumCnn(n_bins, embedding_dim=12).eval()
        assert net(torch.randn(2, n_bins)).shape == (2, 12)
    with pytest.raises(ValueError, match="too short"):
        SpectrumCnn(8)


def test_the_spectrum_branch_finds_anomalies_that_only_the_spectrum_shows(tmp_path):
    """Normal and anomalous clips share one log-mel distribution and differ by a narrow tone in the
    spectrum: the log-mel-only classifier cannot tell them apart; the two-branch one can."""
    rng = np.random.default_rng(4)
    profiles = {"00": SOURCE_PROFILE, "01": TARGET_PROFILE}
    tones = {"00": 30, "01": 60}
    train = _with_spectra(_join(*(_clips(12, p, rng, section=s) for s, p in profiles.items())), rng, tones)
    test = _join(
        *(_clips(8, p, rng, section=s) for s, p in profiles.items()),
        *(_clips(8, p, rng, section=s, anomalous=True, boost=0.0) for s, p in profiles.items()),
    )
    labels = np.array([c.label for c in test.clips])
    test = _with_spectra(test, rng, tones)
    quick = {**QUICK_NET, "epochs": 4, "spectrum_fft": SPECTRUM_FFT}
    two = ArcFaceDetector(inputs="spectrum+logmel", **quick)
    assert two.tags().inputs == ("logmel", "spectrum") and two.input_configs(CONFIG) == {"spectrum": SPECTRUM}
    two.fit(train)
    mel_only = ArcFaceDetector(**quick).fit(train)
    assert mel_only.tags().inputs == ("logmel",) and mel_only.input_configs(CONFIG) == {}
    assert roc_auc_score(labels, two.anomaly_score(test)) >= 0.9
    assert roc_auc_score(labels, mel_only.anomaly_score(test)) <= 0.75
    assert two._banks().score(two.embed(test), ["00"] * len(test)).shape == (len(test),)
    assert two.embed(test).shape == (len(test), 2 * quick["embedding_dim"])
    loaded = Detector.load(two.save(tmp_path / "two"))
    np.testing.assert_allclose(loaded.anomaly_score(test), two.anomaly_score(test), rtol=1e-6)


def test_a_two_branch_model_without_spectra_is_a_clear_error():
    rng = np.random.default_rng(5)
    train = _with_spectra(_clips(10, SOURCE_PROFILE, rng), rng, {"00": 30})
    quick = {**QUICK_NET, "epochs": 1, "spectrum_fft": SPECTRUM_FFT}
    ada = AdaCosDetector(inputs="spectrum+logmel", n_subclusters=2, **quick).fit(train)
    bare = ClipFeatures(train.arrays, train.clips, CONFIG)
    with pytest.raises(ModelError, match="reads input 'spectrum' beside the log-mel"):
        ada.anomaly_score(bare)
    with pytest.raises(ModelError, match="reads input 'spectrum' beside the log-mel"):
        AdaCosDetector(inputs="spectrum+logmel", n_subclusters=2, **quick).fit(bare)
    with pytest.raises(ModelError, match="inputs must be one of logmel, spectrum\\+logmel"):
        ArcFaceDetector(inputs="wave", **QUICK_NET).fit(bare)
    with pytest.raises(ModelError, match="n_fft must be >= 16"):
        ArcFaceDetector(inputs="spectrum+logmel", spectrum_fft=4, **QUICK_NET).fit(train)


def test_an_ensemble_asks_for_its_members_spectrum():
    two = {"model": "arcface", "params": {"inputs": "spectrum+logmel", "spectrum_fft": SPECTRUM_FFT}}
    assert EnsembleDetector(members=["knn", two]).input_configs(CONFIG) == {"spectrum": SPECTRUM}
    assert EnsembleDetector(members=["knn", two]).tags().inputs == ("logmel", "spectrum")
    assert EnsembleDetector(members=["knn"]).input_configs(CONFIG) == {}
    other = {"model": "adacos", "params": {"inputs": "spectrum+logmel", "spectrum_fft": 512}}
    with pytest.raises(ModelError, match="input 'spectrum' with different settings"):
        EnsembleDetector(members=[two, other]).input_configs(CONFIG)


def test_an_ensemble_named_by_plain_strings_still_asks_for_proxy_machines():
    assert EnsembleDetector(members=["knn", "arcface"]).tags().wants_machines
    assert not EnsembleDetector(members=["knn", {"model": "mahalanobis"}]).tags().wants_machines
