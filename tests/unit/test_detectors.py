"""Every registered detector: fit, score, save/load round trip, and an AUC floor on separable data."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from asdkit.data.manifest import Clip
from asdkit.detectors.base import ARRAYS_NAME, CONFIG_NAME, WEIGHTS_NAME, ClipFeatures, Detector
from asdkit.detectors.registry import available_detectors, create_detector, get_detector_class
from asdkit.errors import AsdkitError, ModelError
from asdkit.features.config import FeatureConfig

CONFIG = FeatureConfig(n_mels=16)


def _features(
    n: int, anomalous: bool, rng: np.random.Generator, frames: int = 40, machine: str = "m"
) -> ClipFeatures:
    """Normal clips: a fixed spectral profile plus noise, and a tone band that tells the 2 sections apart;
    anomalies add a strong extra band. Another machine type (the section classifiers' proxy outliers) has
    the same profile with its own strong band at a random place."""
    profile = np.linspace(-20, -60, CONFIG.n_mels)[:, None]
    arrays, clips = [], []
    for i in range(n):
        section = i % 2
        x = profile + rng.normal(0, 1.0, size=(CONFIG.n_mels, frames))
        if machine == "m":
            x[10 + 2 * section] += 8.0
        else:
            band = rng.integers(0, CONFIG.n_mels - 2)
            x[band : band + 3] += 15.0
        if anomalous:
            x[4:7] += 15.0
        arrays.append(x.astype(np.float32))
        name = f"/data/{machine}/{'a' if anomalous else 'n'}{i}.wav"
        clips.append(Clip(path=name, machine=machine, section=f"0{section}"))
    return ClipFeatures(arrays, clips, CONFIG)


#: Enough training for the separable case, still quick on 2 CPU cores; applied where a detector has the knob.
#: The AE's optional input scaling is on: raw dB input needs far more steps than a unit test gives it to learn
#: the level (test_autoencoder.py checks that the raw-input baseline does learn it, given the steps).
QUICK = {"epochs": 30, "batch_size": 128, "accelerator": "cpu", "seed": 0, "standardise": True}
#: Section classifiers without proxy outliers: this set's anomalies keep their section's band, so a classifier
#: that knows only the sections has no reason to flag them (``python benchmarks/bench_section_learning.py
#: --data toy``, seeds 0-3: resnet_section without proxies recognises every unseen normal clip's section and
#: scores AUC 0.50, 0.50, 1.00, 0.50; mobilenet_section, 30 steps on 23 snippets, recognises 0.50-0.70 of them
#: and scores 0.78, 0.41, 0.53, 0.54). They still fit, score, save and threshold like every other detector
#: here; test_section_classifiers.py shows mobilenet_section learning on data it should separate.
SECTIONS_ONLY = {"mobilenet_section"}
#: Upper bounds on network sizes (the separable case needs no wide layers), applied where a detector has them.
SIZE_CAPS = {"hidden": 128, "n_blocks": 2}


#: The detectors these log-mel fixtures can fit: those that read the audio itself (an encoder being
#: fine-tuned, ``finetune``) are fitted on waveforms, with the same checks, in test_finetune.py.
LOGMEL_FED = [n for n in available_detectors() if "waveform" not in create_detector(n).tags().inputs]


def _small(name: str, **overrides: object) -> Detector:
    """A quick detector."""
    cls = get_detector_class(name)
    known = cls().get_params()
    params = {k: v for k, v in (QUICK | overrides).items() if k in known}
    params |= {k: min(cap, known[k]) for k, cap in SIZE_CAPS.items() if k in known}
    return create_detector(name, **params)  # type: ignore[return-value]


def _with_proxy(X: ClipFeatures) -> ClipFeatures:
    """Training clips with another machine type's clips as the fit bundle's proxies (as api.train builds
    it); detectors whose tags ask for no ``machines`` proxies ignore them."""
    return replace(X, proxy=_features(30, False, np.random.default_rng(1), machine="other"))


@pytest.fixture(scope="module")
def data() -> tuple[ClipFeatures, ClipFeatures, np.ndarray]:
    rng = np.random.default_rng(0)
    train = _with_proxy(_features(30, False, rng))
    normal, anomalous = _features(10, False, rng), _features(10, True, rng)
    test = ClipFeatures(
        list(normal.arrays) + list(anomalous.arrays), list(normal.clips) + list(anomalous.clips), CONFIG
    )
    return train, test, np.array([0] * 10 + [1] * 10)


@pytest.fixture(scope="module", params=LOGMEL_FED)
def fitted(request, data) -> Detector:
    train, _, _ = data
    return _small(request.param).fit(train)


@pytest.mark.parametrize("name", LOGMEL_FED)
def test_fit_returns_self_and_sets_learned_state(name, data):
    train, _, _ = data
    detector = _small(name)
    assert not hasattr(detector, "threshold_")
    assert detector.fit(train) is detector
    assert np.isfinite(detector.threshold_)
    assert detector.feature_config_ == CONFIG


def test_scores_one_finite_float_per_clip_and_separates(fitted, data):
    _, test, labels = data
    scores = fitted.anomaly_score(test)
    assert scores.shape == (len(test),) and scores.dtype == np.float64
    assert np.all(np.isfinite(scores))
    if fitted.name in SECTIONS_ONLY:
        return  # its finite scores are checked above; these anomalies are not its to catch
    assert roc_auc_score(labels, scores) >= 0.9


def test_predict_uses_threshold(fitted, data):
    _, test, _ = data
    scores = fitted.anomaly_score(test)
    np.testing.assert_array_equal(fitted.predict(test), (scores > fitted.threshold_).astype(int))


#: Flagged fraction of 200 unseen normal clips, seeds 0-9, ``python benchmarks/bench_threshold_seeds.py
#: --seeds 0-9 --detectors patch_bank knn mahalanobis``: patch_bank 0.091 +- 0.040 (min 0.035),
#: knn 0.099 +- 0.023, mahalanobis 0.099 +- 0.024. One seed can fall to 3.5%, so the one-seed band of every
#: detector is [1%, 30%] (over 2 std below and 5 above the widest); the mean over seeds is held tighter below.
ONE_SEED_BAND = (0.01, 0.30)
#: The mean of 5 seeds: std at most 0.040 / sqrt(5) = 0.018, so 0.10 +- 3 std, rounded out.
MEAN_OF_SEEDS_BAND = (0.045, 0.16)


def _flagged(name: str, seed: int, unseen_seed: int) -> float:
    train = _with_proxy(_features(100, False, np.random.default_rng(seed)))
    unseen = _features(200, False, np.random.default_rng(unseen_seed))
    return float(_small(name, epochs=10, seed=seed).fit(train).predict(unseen).mean())


@pytest.mark.parametrize("name", LOGMEL_FED)
def test_threshold_flags_a_few_unseen_normal_clips(name):
    """The threshold is fitted to scores of clips the model did not fit, so on unseen normal clips drawn like
    the training ones it flags about the intended tenth (fitted to in-sample scores, it flagged up to 90%)."""
    flagged = _flagged(name, 0, 7)
    low, high = ONE_SEED_BAND
    assert low <= flagged <= high, f"{name} flags {flagged:.1%} of unseen normal clips"


@pytest.mark.parametrize("name", ["knn", "mahalanobis", "patch_bank"])
def test_threshold_flags_about_a_tenth_on_average_over_seeds(name):
    """Over seeds 0-4 (unseen clips drawn anew each time) the mean flagged fraction is near the intended 10%:
    a threshold biased by a few points would leave the band that one seed's noise needs."""
    values = [_flagged(name, seed, 10_000 + seed) for seed in range(5)]
    low, high = MEAN_OF_SEEDS_BAND
    assert low <= np.mean(values) <= high, f"{name}: {np.round(values, 3)}"
    assert max(values) <= ONE_SEED_BAND[1]


def test_save_load_round_trip_gives_identical_scores(fitted, data, tmp_path):
    _, test, _ = data
    path = fitted.save(tmp_path / "model", metadata={"machine": "m"})
    config = json.loads((path / CONFIG_NAME).read_text())
    assert config["detector"] == fitted.name
    assert config["threshold"] == fitted.threshold_
    assert config["features"]["n_mels"] == CONFIG.n_mels
    assert config["versions"]["torch"]
    loaded = Detector.load(path)
    assert type(loaded) is type(fitted)
    assert loaded.get_params() == fitted.get_params()
    assert loaded.threshold_ == fitted.threshold_
    np.testing.assert_array_equal(loaded.anomaly_score(test), fitted.anomaly_score(test))


@pytest.mark.parametrize("name", LOGMEL_FED)
def test_fit_is_repeatable_with_the_same_seed(name, data):
    train, test, _ = data
    a = _small(name).fit(train).anomaly_score(test)
    b = _small(name).fit(train).anomaly_score(test)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_unfitted_detector_refuses_to_score(data):
    _, test, _ = data
    with pytest.raises(ModelError, match="not fitted"):
        _small(available_detectors()[0]).anomaly_score(test)


def test_scoring_features_of_another_configuration_is_refused(fitted, data):
    _, test, _ = data
    other = ClipFeatures(test.arrays, test.clips, FeatureConfig(n_mels=16, hop_length=256))
    with pytest.raises(ValueError, match="another configuration"):
        fitted.anomaly_score(other)


def test_unknown_detector_and_parameter_are_clear_errors():
    with pytest.raises(AsdkitError, match="unknown detector 'nope'"):
        create_detector("nope")
    with pytest.raises(AsdkitError, match="bad parameters"):
        create_detector("ae", no_such_param=1)


def test_loading_a_broken_model_folder_names_the_problem(fitted, tmp_path):
    with pytest.raises(ModelError, match="not a model folder"):
        Detector.load(tmp_path)
    path = fitted.save(tmp_path / "model")
    saved = [name for name in (WEIGHTS_NAME, ARRAYS_NAME) if (path / name).is_file()]
    assert saved, "a fitted model saves its network or its fitted arrays"
    config_text = (path / CONFIG_NAME).read_text()
    unchecked = {k: v for k, v in json.loads(config_text).items() if k != "checksums"}  # an older save
    for name in saved:
        good = (path / name).read_bytes()
        (path / name).write_bytes(b"garbage")
        with pytest.raises(ModelError, match=f"{name}: checksum mismatch"):
            Detector.load(path)
        (path / CONFIG_NAME).write_text(json.dumps(unchecked))
        with pytest.raises(ModelError, match=f"{name}: cannot be loaded"):
            Detector.load(path)
        (path / CONFIG_NAME).write_text(config_text)
        (path / name).unlink()
        with pytest.raises(ModelError, match=f"{name}: missing"):
            Detector.load(path)
        (path / name).write_bytes(good)
    (path / CONFIG_NAME).write_text("{not json")
    with pytest.raises(ModelError, match="unreadable"):
        Detector.load(path)


def test_weights_file_holds_only_tensors(fitted, tmp_path):
    import torch

    path = fitted.save(tmp_path / "model")
    assert (path / WEIGHTS_NAME).is_file() == hasattr(fitted, "network_")
    if (path / WEIGHTS_NAME).is_file():
        state = torch.load(path / WEIGHTS_NAME, weights_only=True)
        assert all(isinstance(v, torch.Tensor) for v in state.values())
    if (path / ARRAYS_NAME).is_file():
        with np.load(path / ARRAYS_NAME, allow_pickle=False) as arrays:
            assert all(arrays[k].dtype.kind in "biuf" for k in arrays.files)
