"""Streaming training items from cached log-mel arrays, so training memory does not grow with the data set."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset

#: Turns one clip's log-mel array [n_mels, frames] into its training items [n_items, ...].
ItemsFn = Callable[[np.ndarray], np.ndarray]
#: How many items a clip of that many frames gives (known without reading the clip).
CountFn = Callable[[int], int]


#: One batch before it becomes tensors: items, their labels (empty without), their side arrays (or None).
_Raw = tuple[np.ndarray, np.ndarray, np.ndarray | None]


def _joined(first: _Raw, second: _Raw) -> _Raw:
    side = None if first[2] is None or second[2] is None else np.concatenate([first[2], second[2]])
    return np.concatenate([first[0], second[0]]), np.concatenate([first[1], second[1]]), side


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ItemStream(IterableDataset):
    """Yields float32 batches of items (stacked frame vectors, patches...) cut from cached clips.

    Clips are read ``clips_per_chunk`` at a time (memmaps, so only that chunk is in memory), their items
    shuffled within the chunk, and cut into batches. Each pass reshuffles with a new, seeded order, so runs
    repeat. Under DDP every rank reads its own share of clips and yields the same number of batches.
    With ``labels`` (one int per clip, e.g. its section) each batch is ``(items, item_labels)`` instead,
    the labels travelling with their items through the shuffle. With ``side`` (one array per clip, e.g. its
    spectrum) each item also carries its clip's side array: ``(items, side_items[, item_labels])``.
    """

    def __init__(
        self,
        arrays: Sequence[np.ndarray],
        items: ItemsFn,
        count: CountFn,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        clips_per_chunk: int = 64,
        labels: Sequence[int] | None = None,
        side: Sequence[np.ndarray] | None = None,
    ) -> None:
        super().__init__()
        if labels is not None and len(labels) != len(arrays):
            raise ValueError(f"{len(labels)} labels for {len(arrays)} clips")
        if side is not None and len(side) != len(arrays):
            raise ValueError(f"{len(side)} side arrays for {len(arrays)} clips")
        self.arrays = arrays
        self.items = items
        self.count = count
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.clips_per_chunk = clips_per_chunk
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.side = side
        self._passes = 0

    def _items_per_clip(self) -> np.ndarray:
        return np.array([max(self.count(a.shape[-1]), 0) for a in self.arrays], dtype=np.int64)

    def __len__(self) -> int:
        _, world = _rank_and_world()
        return self._batches_per_rank(world)

    def _batches_per_rank(self, world: int) -> int:
        counts = self._items_per_clip()
        per_rank = [int(counts[np.arange(r, len(counts), world)].sum()) for r in range(world)]
        return min(self._batch_count(n) for n in per_rank)

    def _batch_count(self, n_items: int) -> int:
        """Batches of ``n_items``: a lone last item joins the batch before it (see :meth:`__iter__`)."""
        full, rest = divmod(n_items, self.batch_size)
        return full + int(rest > 1 or (rest == 1 and full == 0))

    def __iter__(self) -> Iterator[torch.Tensor | tuple[torch.Tensor, ...]]:
        """Batches of ``batch_size`` items; a last batch of one item is dealt into the one before it.

        A BatchNorm layer cannot train on a single item (torch raises "Expected more than 1 value per
        channel" where its input has one position, e.g. a dense AE, or MobileNetV2 on 16 bands x 32 frames),
        and one item count in ``batch_size`` leaves a remainder of one.
        """
        rank, world = _rank_and_world()
        rng = np.random.default_rng([self.seed, self._passes])
        self._passes += 1
        order = rng.permutation(len(self.arrays)) if self.shuffle else np.arange(len(self.arrays))
        mine = [i for i in order if i % world == rank]
        remaining = self._batches_per_rank(world)
        held: _Raw | None = None
        for raw in self._raw_batches(mine, rng):
            if held is not None and len(raw[0]) == 1 and self.batch_size > 1:
                raw = _joined(held, raw)
            elif held is not None:
                if remaining == 0:
                    return
                remaining -= 1
                yield self._batch(*held)
            held = raw
        if held is not None and remaining > 0:
            yield self._batch(*held)

    def _raw_batches(self, mine: list[int], rng: np.random.Generator) -> Iterator[_Raw]:
        """The clips ``mine`` cut into batches of items (numpy arrays), read a chunk of clips at a time."""
        carry: np.ndarray | None = None
        carry_labels = np.zeros(0, dtype=np.int64)
        carry_side: np.ndarray | None = None
        for start in range(0, len(mine), self.clips_per_chunk):
            used = [
                i
                for i in mine[start : start + self.clips_per_chunk]
                if self.count(self.arrays[i].shape[-1]) > 0
            ]
            chunk = [self.items(np.asarray(self.arrays[i], dtype=np.float32)) for i in used]
            if not chunk:
                continue
            batchable = np.concatenate(chunk)
            sizes = [len(c) for c in chunk]
            labels = np.zeros(0, dtype=np.int64)
            if self.labels is not None:
                labels = np.repeat(self.labels[used], sizes)
            side = None
            if self.side is not None:
                side = np.repeat(
                    np.stack([np.asarray(self.side[i], dtype=np.float32) for i in used]), sizes, 0
                )
            if self.shuffle:
                perm = rng.permutation(len(batchable))
                batchable = batchable[perm]
                labels = labels[perm] if self.labels is not None else labels
                side = side[perm] if side is not None else None
            if carry is not None and len(carry):
                batchable = np.concatenate([carry, batchable])
                labels = np.concatenate([carry_labels, labels])
                side = np.concatenate([carry_side, side]) if side is not None else None
            n_full = len(batchable) // self.batch_size * self.batch_size
            for s in range(0, n_full, self.batch_size):
                part = slice(s, s + self.batch_size)
                yield batchable[part], labels[part], None if side is None else side[part]
            carry, carry_labels = batchable[n_full:], labels[n_full:]
            carry_side = side[n_full:] if side is not None else None
        if carry is not None and len(carry):
            yield carry, carry_labels, carry_side

    def _batch(
        self, items: np.ndarray, labels: np.ndarray, side: np.ndarray | None
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        parts = [torch.from_numpy(np.ascontiguousarray(items))]
        if side is not None:
            parts.append(torch.from_numpy(np.ascontiguousarray(side)))
        if self.labels is not None:
            parts.append(torch.from_numpy(np.ascontiguousarray(labels)))
        return parts[0] if len(parts) == 1 else tuple(parts)
