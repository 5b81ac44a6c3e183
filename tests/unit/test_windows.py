"""The shared pieces: windows (stacked frames, patches), the section index and the band statistics."""

from __future__ import annotations

import numpy as np
import pytest

from asdkit.detectors.sections import SectionIndex
from asdkit.detectors.windows import Patches, StackedFrames, patch_starts, patches
from asdkit.errors import DataError
from asdkit.features.logmel import stack_frames
from asdkit.models.scaling import BandScaler, band_statistics

RNG = np.random.default_rng(0)


def _logmel(n_frames: int, n_mels: int = 6) -> np.ndarray:
    return RNG.normal(size=(n_mels, n_frames)).astype(np.float32)


def _reference_patches(logmel: np.ndarray, frames: int, hop: int) -> np.ndarray:
    """Windows by hand: every hop, one flush with the end, a short clip tiled up to one window."""
    n = logmel.shape[1]
    if n <= frames:
        return np.tile(logmel, (1, -(-frames // n)))[:, :frames].T[None]
    starts = list(range(0, n - frames + 1, hop))
    if starts[-1] != n - frames:
        starts.append(n - frames)
    return np.stack([logmel[:, s : s + frames].T for s in starts])


@pytest.mark.parametrize("n_frames", [1, 5, 15, 16, 17, 24, 40, 100])
@pytest.mark.parametrize(("frames", "hop"), [(16, 8), (16, 16), (8, 3)])
def test_patches_match_a_hand_cut_reference_and_their_count(n_frames, frames, hop):
    logmel = _logmel(n_frames)
    windows = Patches(frames, hop)
    expected = _reference_patches(logmel, frames, hop)
    np.testing.assert_array_equal(windows.items(logmel), expected)
    np.testing.assert_array_equal(patches(logmel, frames, hop), expected)
    assert windows.count(n_frames) == len(expected) == len(patch_starts(n_frames, frames, hop))
    assert windows.items(logmel).dtype == np.float32


def test_patches_of_a_ten_second_clip_start_every_hop_and_end_flush():
    np.testing.assert_array_equal(Patches(64, 32).starts(313), [0, 32, 64, 96, 128, 160, 192, 224, 249])


@pytest.mark.parametrize("n_frames", [5, 6, 50])
def test_stacked_frames_are_stack_frames_with_their_count(n_frames):
    logmel = _logmel(n_frames)
    items = StackedFrames(5).items(logmel)
    np.testing.assert_array_equal(items, stack_frames(logmel, 5))
    assert StackedFrames(5).count(n_frames) == len(items) == n_frames - 4


def test_section_index_maps_sections_in_the_saved_order():
    index = SectionIndex(["00", "01", "02"])
    assert len(index) == 3
    assert index.of(["02", "00", "02"], "made") == [2, 0, 2]


def test_an_unknown_section_is_one_data_error_naming_the_detector_and_the_known_sections():
    index = SectionIndex(["00", "01"])
    with pytest.raises(DataError) as info:
        index.of(["00", "07", "09"], "resnet_section")
    assert str(info.value) == (
        "resnet_section: section(s) 07, 09 not in the training data (the model knows sections 00, 01)"
    )
    with pytest.raises(DataError, match=r"made: the section of some clips is unknown .*--section"):
        index.of(["00", ""], "made")


def test_band_statistics_equal_those_of_all_frames_at_once():
    arrays = [_logmel(7) * 3 + 5, _logmel(20) - 2]
    frames = np.concatenate(arrays, axis=1).astype(np.float64)
    mean, std = band_statistics(arrays)
    np.testing.assert_allclose(mean, frames.mean(axis=1))
    np.testing.assert_allclose(std, np.sqrt(((frames - frames.mean(axis=1)[:, None]) ** 2).mean()))
    assert std.shape == ()
    _, per_band = band_statistics(arrays, per_band=True)
    np.testing.assert_allclose(per_band, frames.std(axis=1))


def test_band_statistics_floor_a_constant_band_and_refuse_no_frames():
    arrays = [np.vstack([np.full((1, 10), 4.0), _logmel(10, 1)])]
    _, std = band_statistics(arrays, per_band=True)
    assert std[0] == 1e-3 and std[1] > 0.1
    with pytest.raises(ValueError, match="no frames"):
        band_statistics([np.zeros((3, 0))])


def test_a_band_scaler_set_from_the_statistics_standardises_the_frames():
    import torch

    arrays = [_logmel(30) * 4 + 10]
    mean, std = band_statistics(arrays)
    scaler = BandScaler(6)
    scaler.set(torch.from_numpy(mean), torch.from_numpy(std))
    z = scaler.standardise(torch.from_numpy(stack_frames(arrays[0], 1)).double())
    assert float(z.mean()) == pytest.approx(0.0, abs=1e-6) and float(z.std(unbiased=False)) == pytest.approx(
        1.0
    )
