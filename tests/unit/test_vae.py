"""The VAE: presets and their conflicts, deterministic scoring, and the ELBO score option."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asdkit.data.manifest import Clip
from asdkit.detectors.base import ClipFeatures
from asdkit.detectors.reconstruction.vae import (
    AE_LIKE_PRESET,
    DEFAULT_PRESET,
    PRESETS,
    VaeDetector,
    VaeParameterError,
)
from asdkit.errors import AsdkitError
from asdkit.features.config import FeatureConfig

CONFIG = FeatureConfig(n_mels=16)
QUICK = {"epochs": 3, "batch_size": 128, "accelerator": "cpu", "seed": 0, "hidden": 32}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny networks gain nothing from threads, and lose a lot to OpenMP waits on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _clips(n: int, seed: int, anomalous: bool = False) -> ClipFeatures:
    rng = np.random.default_rng(seed)
    profile = np.linspace(-20, -60, CONFIG.n_mels)[:, None]
    arrays = []
    for _ in range(n):
        x = profile + rng.normal(0, 1.0, size=(CONFIG.n_mels, 30))
        if anomalous:
            x[4:7] += 15.0
        arrays.append(x.astype(np.float32))
    return ClipFeatures(
        arrays, [Clip(path=f"/d/{seed}_{i}.wav", machine="m", section="00") for i in range(n)], CONFIG
    )


@pytest.fixture(scope="module")
def train() -> ClipFeatures:
    return _clips(12, 0)


@pytest.fixture(scope="module")
def test() -> ClipFeatures:
    normal, anomalous = _clips(4, 1), _clips(4, 2, anomalous=True)
    return ClipFeatures([*normal.arrays, *anomalous.arrays], [*normal.clips, *anomalous.clips], CONFIG)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_each_preset_sets_both_weights(preset):
    assert VaeDetector(preset=preset).weights() == PRESETS[preset]


def test_five_presets_and_which_one_is_the_plain_ae():
    assert len(PRESETS) == 5
    assert PRESETS[AE_LIKE_PRESET][1] == 0.0 and PRESETS[AE_LIKE_PRESET][0] > 0


def test_weights_without_preset_default_to_the_default_preset():
    assert VaeDetector().weights() == PRESETS[DEFAULT_PRESET]
    assert VaeDetector(kl_weight=0.5).weights() == (PRESETS[DEFAULT_PRESET][0], 0.5)
    assert VaeDetector(recon_weight=2.0, kl_weight=0.0).weights() == (2.0, 0.0)


def test_an_explicit_weight_equal_to_the_presets_is_accepted():
    assert VaeDetector(preset="1:1", kl_weight=1.0).weights() == (1.0, 1.0)


def test_an_explicit_weight_that_contradicts_the_preset_is_an_error(train):
    detector = VaeDetector(preset="1:0", kl_weight=0.5, **QUICK)
    with pytest.raises(VaeParameterError, match=r"preset '1:0' sets kl_weight=0 but kl_weight=0.5"):
        detector.weights()
    with pytest.raises(AsdkitError, match="kl_weight"):  # also stops fit, before any training
        detector.fit(train)
    assert not hasattr(detector, "network_")
    assert issubclass(VaeParameterError, ValueError)


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"preset": "2:3"}, "unknown preset '2:3'"),
        ({"kl_weight": -1.0}, "kl_weight must be >= 0"),
        ({"recon_weight": 0.0, "kl_weight": 0.0}, "both 0"),
    ],
)
def test_bad_weights_are_clear_errors(params, needle):
    with pytest.raises(VaeParameterError, match=needle):
        VaeDetector(**params).weights()


def test_kl_free_preset_scores_deterministically_on_the_posterior_mean(train, test, tmp_path):
    detector = VaeDetector(preset=AE_LIKE_PRESET, **QUICK).fit(train)
    assert (detector.recon_weight_, detector.kl_weight_) == (1.0, 0.0)
    first = detector.anomaly_score(test)
    np.testing.assert_array_equal(detector.anomaly_score(test), first)
    batch = torch.from_numpy(np.concatenate([detector._items(a) for a in test.arrays]))
    with torch.inference_mode():
        mean, _ = detector.network_.encode(batch)
        np.testing.assert_array_equal(
            detector.network_(batch).numpy(), detector.network_.decode(mean).numpy()
        )
    loaded = VaeDetector.load(detector.save(tmp_path / "m"))
    assert (loaded.recon_weight_, loaded.kl_weight_) == (1.0, 0.0)
    np.testing.assert_array_equal(loaded.anomaly_score(test), first)


def test_elbo_score_is_never_below_the_reconstruction_score(train, test):
    detector = VaeDetector(preset="1:1", **QUICK).fit(train)
    recon = detector.anomaly_score(test)
    elbo = detector.set_params(score="elbo").anomaly_score(test)
    assert np.all(elbo >= recon) and np.any(elbo > recon)
    np.testing.assert_array_equal(detector.anomaly_score(test), elbo)  # deterministic too


def test_unknown_score_is_an_error(train, test):
    with pytest.raises(VaeParameterError, match="score must be one of recon, elbo"):
        VaeDetector(score="likelihood", **QUICK).fit(train)
