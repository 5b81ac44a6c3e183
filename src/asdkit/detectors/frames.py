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
        return min(-(-n // self.batch_size) for n in per_rank)

    def __iter__(self) -> Iterator[torch.Tensor | tuple[torch.Tensor, ...]]:
        rank, world = _rank_and_world()
        rng = np.random.default_rng([self.seed, self._passes])
        self._passes += 1
        order = rng.permutation(len(self.arrays)) if self.shuffle else np.arange(len(self.arrays))
        mine = [i for i in order if i % world == rank]
        remaining = self._batches_per_rank(world)
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
                if remaining == 0:
                    return
                remaining -= 1
                part = slice(s, s + self.batch_size)
                yield self._batch(batchable[part], labels[part], None if side is None else side[part])
            carry, carry_labels = batchable[n_full:], labels[n_full:]
            carry_side = side[n_full:] if side is not None else None
        if carry is not None and len(carry) and remaining > 0:
            yield self._batch(carry, carry_labels, carry_side)

    def _batch(
        self, items: np.ndarray, labels: np.ndarray, side: np.ndarray | None
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        parts = [torch.from_numpy(np.ascontiguousarray(items))]
        if side is not None:
            parts.append(torch.from_numpy(np.ascontiguousarray(side)))
        if self.labels is not None:
            parts.append(torch.from_numpy(np.ascontiguousarray(labels)))
        return parts[0] if len(parts) == 1 else tuple(parts)
