"""The convolutional AE: patching (count, overlap, every frame covered) and clips shorter than a patch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asdkit.data.manifest import Clip
from asdkit.detectors.base import ClipFeatures
from asdkit.detectors.reconstruction.conv_ae import ConvAeDetector
from asdkit.detectors.windows import patch_starts
from asdkit.features.config import FeatureConfig
from asdkit.models.conv_ae import ConvAutoencoder

CONFIG = FeatureConfig(n_mels=16)
QUICK = {"epochs": 3, "batch_size": 32, "accelerator": "cpu", "seed": 0, "patch_frames": 16, "hop_frames": 8}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny networks gain nothing from threads, and lose a lot to OpenMP waits on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _clips(lengths: list[int], seed: int = 0) -> ClipFeatures:
    rng = np.random.default_rng(seed)
    profile = np.linspace(-20, -60, CONFIG.n_mels)[:, None]
    arrays = [(profile + rng.normal(0, 1.0, size=(CONFIG.n_mels, t))).astype(np.float32) for t in lengths]
    clips = [Clip(path=f"/d/{seed}_{i}.wav", machine="m", section="00") for i in range(len(arrays))]
    return ClipFeatures(arrays, clips, CONFIG)


def test_default_patching_of_a_ten_second_clip():
    starts = patch_starts(313, 64, 32)
    np.testing.assert_array_equal(starts, [0, 32, 64, 96, 128, 160, 192, 224, 249])
    assert ConvAeDetector()._count(313) == 9


@pytest.mark.parametrize("n_frames", [1, 5, 15, 16, 17, 24, 31, 40, 100])
def test_count_matches_the_patches_and_every_frame_is_covered(n_frames):
    detector = ConvAeDetector(patch_frames=16, hop_frames=8)
    logmel = np.arange(CONFIG.n_mels * n_frames, dtype=np.float32).reshape(CONFIG.n_mels, n_frames)
    items = detector._items(logmel)
    assert items.shape == (detector._count(n_frames), 16, CONFIG.n_mels)
    starts, width = detector._layout(n_frames)
    covered = np.zeros(n_frames, dtype=bool)
    for item, start in zip(items, starts, strict=True):
        stop = min(start + width, n_frames)
        np.testing.assert_array_equal(item[: stop - start], logmel[:, start:stop].T)  # frame-major patch
        covered[start:stop] = True
    assert covered.all()
    if n_frames >= 16:
        assert starts[-1] == n_frames - 16 and np.all(np.diff(starts) <= 8)


def test_a_clip_shorter_than_a_patch_is_repeated_to_one_patch():
    detector = ConvAeDetector(patch_frames=16, hop_frames=8)
    logmel = np.arange(CONFIG.n_mels * 5, dtype=np.float32).reshape(CONFIG.n_mels, 5)
    (patch,) = detector._items(logmel)
    np.testing.assert_array_equal(patch, np.tile(logmel, (1, 4))[:, :16].T)


def test_short_clips_train_and_score_and_reconstruct():
    detector = ConvAeDetector(**QUICK).fit(_clips([40] * 10))
    test = _clips([3, 10, 16, 40], seed=1)
    scores = detector.anomaly_score(test)
    assert scores.shape == (4,) and np.all(np.isfinite(scores))
    spectrogram, errors = detector.reconstruct(test.arrays[1])
    assert spectrogram.shape == (CONFIG.n_mels, 10) and errors.shape == (10,)
    assert np.all(np.isfinite(spectrogram)) and np.all(np.isfinite(errors))


def test_patch_error_is_the_mse_of_the_reconstructed_patch():
    detector = ConvAeDetector(**QUICK).fit(_clips([40] * 10))
    logmel = _clips([40], seed=2).arrays[0]
    items = torch.from_numpy(detector._items(logmel))
    with torch.inference_mode():
        expected = ((detector.network_(items) - items) ** 2).mean(dim=(1, 2)).double().numpy()
    np.testing.assert_allclose(detector.item_errors([logmel])[0], expected, rtol=1e-6)
    assert detector.anomaly_score(_clips([40], seed=2))[0] == pytest.approx(expected.mean())


@pytest.mark.parametrize(("n_mels", "frames"), [(13, 30), (128, 64), (40, 7)])
def test_network_takes_any_patch_size_and_band_count(n_mels, frames):
    network = ConvAutoencoder(n_mels, frames, base_channels=4, n_layers=3, bottleneck=8).eval()
    with torch.inference_mode():
        assert network(torch.randn(2, frames, n_mels)).shape == (2, frames, n_mels)
