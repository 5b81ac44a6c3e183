from __future__ import annotations

import numpy as np
import pytest
import torch

from asdkit.detectors import frames as frames_module
from asdkit.detectors.frames import ItemStream
from asdkit.features.logmel import stack_frames


def FrameStream(arrays, n_frames, batch_size, **kwargs):
    return ItemStream(
        arrays, lambda a: stack_frames(a, n_frames), lambda t: t - n_frames + 1, batch_size, **kwargs
    )


def _arrays(lengths: list[int], n_mels: int = 4) -> list[np.ndarray]:
    return [
        np.full((n_mels, t), i, dtype=np.float32) + np.arange(t, dtype=np.float32) / 1000
        for i, t in enumerate(lengths)
    ]


def test_every_vector_appears_exactly_once_per_pass():
    arrays = _arrays([10, 7, 12, 5])
    stream = FrameStream(arrays, n_frames=3, batch_size=4, clips_per_chunk=2, seed=1)
    batches = list(stream)
    vectors = torch.cat(batches).numpy()
    assert len(vectors) == sum(t - 2 for t in [10, 7, 12, 5])
    assert all(len(b) == 4 for b in batches[:-1])
    expected = np.concatenate(
        [np.stack([a[:, t : t + 3].T.reshape(-1) for t in range(a.shape[1] - 2)]) for a in arrays]
    )
    as_set = lambda m: sorted(map(tuple, np.round(m, 4)))  # noqa: E731
    assert as_set(vectors) == as_set(expected)


def test_passes_are_shuffled_differently_but_repeat_across_instances():
    arrays = _arrays([20, 20, 20])
    a, b = FrameStream(arrays, 2, 8, seed=3), FrameStream(arrays, 2, 8, seed=3)
    first_a, second_a = torch.cat(list(a)), torch.cat(list(a))
    first_b = torch.cat(list(b))
    assert torch.equal(first_a, first_b)
    assert not torch.equal(first_a, second_a)


def test_no_shuffle_keeps_clip_order():
    arrays = _arrays([6, 6])
    vectors = torch.cat(list(FrameStream(arrays, 2, 3, shuffle=False))).numpy()
    assert np.all(vectors[:5, 0] < 1) and np.all(vectors[5:, 0] >= 1)


def test_ranks_get_disjoint_clips_and_equal_batch_counts(monkeypatch):
    arrays = _arrays([30, 10, 25, 12, 40])
    seen = []
    for rank in (0, 1):
        monkeypatch.setattr(frames_module, "_rank_and_world", lambda r=rank: (r, 2))
        stream = FrameStream(arrays, 1, 8, seed=0)
        batches = list(stream)
        assert len(batches) == len(stream)
        seen.append({int(v) for b in batches for v in b[:, 0].floor().tolist()})
    assert not seen[0] & seen[1]


def test_clips_shorter_than_the_context_are_skipped():
    arrays = _arrays([2, 8])
    vectors = torch.cat(list(FrameStream(arrays, 5, 100)))
    assert len(vectors) == 4


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_len_matches_iteration(batch_size):
    stream = FrameStream(_arrays([13, 9, 21]), 3, batch_size)
    assert len(list(stream)) == len(stream)


@pytest.mark.parametrize(
    ("lengths", "batch_size", "sizes"),
    [([9, 6], 5, [5, 6]), ([9, 6], 10, [11]), ([9, 6], 4, [4, 4, 3]), ([3], 4, [1]), ([4, 3], 1, [1, 1, 1])],
)
def test_a_lone_last_item_joins_the_batch_before_it(lengths, batch_size, sizes):
    """A BatchNorm layer cannot train on one item: a remainder of one rides with the batch before it, with its
    label and side array, and no item is lost."""
    arrays = _arrays(lengths)
    side = [np.full(2, 10.0 * i, dtype=np.float32) for i in range(len(lengths))]
    stream = FrameStream(arrays, 3, batch_size, clips_per_chunk=1, labels=range(len(lengths)), side=side)
    batches = list(stream)
    assert [len(items) for items, _, _ in batches] == sizes
    assert len(stream) == len(sizes)
    items = torch.cat([b[0] for b in batches])
    clip_of_item = items[:, 0].floor().long()
    assert torch.equal(torch.cat([b[2] for b in batches]), clip_of_item)
    assert torch.equal(torch.cat([b[1] for b in batches])[:, 0], 10.0 * clip_of_item.float())
    assert len(items) == sum(t - 2 for t in lengths) == len({tuple(v) for v in items.tolist()})


def test_side_arrays_and_labels_travel_with_their_clips_items():
    """Each item carries its own clip's side array (e.g. the clip spectrum) and label through the shuffle."""
    arrays = [np.full((2, 3 + i), float(i), dtype=np.float32) for i in range(6)]
    side = [np.full(5, 10.0 * i, dtype=np.float32) for i in range(6)]
    stream = ItemStream(
        arrays,
        lambda a: a.T.copy(),  # one item per frame, holding the clip's index
        lambda t: t,
        batch_size=4,
        seed=3,
        clips_per_chunk=2,
        labels=list(range(6)),
        side=side,
    )
    seen = 0
    for items, side_items, labels in stream:
        clip_of_item = items[:, 0].long()
        assert torch.equal(labels, clip_of_item)
        assert torch.equal(side_items, 10.0 * clip_of_item[:, None].float().expand(-1, 5))
        seen += len(items)
    assert seen == sum(a.shape[1] for a in arrays)
    with pytest.raises(ValueError, match="2 side arrays for 6 clips"):
        ItemStream(arrays, lambda a: a.T, lambda t: t, 4, side=side[:2])
