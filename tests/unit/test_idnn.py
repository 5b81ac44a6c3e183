"""The interpolation DNN: the network never sees the centre frame, and it is the centre frame it rebuilds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asdkit.data.manifest import Clip
from asdkit.detectors.base import ClipFeatures
from asdkit.detectors.reconstruction.idnn import IdnnDetector
from asdkit.errors import AsdkitError
from asdkit.features.config import FeatureConfig
from asdkit.features.logmel import stack_frames

CONFIG = FeatureConfig(n_mels=16)
QUICK = {"epochs": 3, "batch_size": 128, "accelerator": "cpu", "seed": 0, "hidden": 32}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny networks gain nothing from threads, and lose a lot to OpenMP waits on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _clips(n: int, seed: int, frames: int = 30) -> ClipFeatures:
    rng = np.random.default_rng(seed)
    profile = np.linspace(-20, -60, CONFIG.n_mels)[:, None]
    arrays = [
        (profile + rng.normal(0, 1.0, size=(CONFIG.n_mels, frames))).astype(np.float32) for _ in range(n)
    ]
    clips = [Clip(path=f"/d/{seed}_{i}.wav", machine="m", section="00") for i in range(n)]
    return ClipFeatures(arrays, clips, CONFIG)


@pytest.fixture(scope="module")
def fitted() -> IdnnDetector:
    return IdnnDetector(**QUICK).fit(_clips(12, 0))


def test_input_is_the_context_without_the_centre_and_target_is_the_centre():
    detector = IdnnDetector()
    logmel = np.random.default_rng(0).normal(size=(CONFIG.n_mels, 12)).astype(np.float32)
    batch = torch.from_numpy(detector._items(logmel))
    inputs, targets = detector._inputs_targets(batch)
    assert inputs.shape == (8, 4 * CONFIG.n_mels) and targets.shape == (8, CONFIG.n_mels)
    for t in range(8):  # window t holds frames t..t+4; its centre is frame t+2
        np.testing.assert_array_equal(targets[t].numpy(), logmel[:, t + 2])
        context = np.concatenate([logmel[:, t + j] for j in (0, 1, 3, 4)])
        np.testing.assert_array_equal(inputs[t].numpy(), context)


def test_changing_only_the_centre_frames_does_not_change_the_network_input():
    detector = IdnnDetector()
    batch = torch.from_numpy(
        stack_frames(np.random.default_rng(1).normal(size=(CONFIG.n_mels, 9)), 5)
    ).float()
    changed = batch.clone().reshape(len(batch), 5, -1)
    changed[:, 2] += 100.0
    changed = changed.reshape(batch.shape)
    (a, ta), (b, tb) = detector._inputs_targets(batch), detector._inputs_targets(changed)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(tb, ta + 100.0)


def test_network_maps_context_to_one_frame(fitted):
    assert fitted.network_.encoder[0][0].in_features == 4 * CONFIG.n_mels
    assert fitted.network_.decoder[-1].out_features == CONFIG.n_mels


def test_error_is_the_mse_of_the_predicted_centre_frame(fitted):
    logmel = _clips(1, 3).arrays[0]
    batch = torch.from_numpy(fitted._items(logmel))
    inputs, centres = fitted._inputs_targets(batch)
    with torch.inference_mode():
        predicted = fitted.network_(inputs)
    expected = ((predicted - centres) ** 2).mean(dim=1).double().numpy()
    np.testing.assert_allclose(fitted.item_errors([logmel])[0], expected, rtol=1e-6)


def test_reconstruction_is_the_predicted_centre_frames(fitted):
    logmel = _clips(1, 4).arrays[0]
    spectrogram, errors = fitted.reconstruct(logmel)
    inputs, _ = fitted._inputs_targets(torch.from_numpy(fitted._items(logmel)))
    with torch.inference_mode():
        predicted = fitted.network_(inputs).double().numpy()
    np.testing.assert_allclose(spectrogram[:, 2:-2], predicted.T, rtol=1e-6)
    assert np.isnan(spectrogram[:, [0, 1, -2, -1]]).all() and np.isnan(errors[[0, 1, -2, -1]]).all()
    score = fitted.anomaly_score(_clips(1, 4))[0]
    assert np.nanmean(errors) == pytest.approx(score, rel=1e-6)  # one item per frame: the line averages to it


def test_an_even_window_is_an_error():
    with pytest.raises(AsdkitError, match="odd"):
        IdnnDetector(n_frames=4, **QUICK).fit(_clips(3, 0))
