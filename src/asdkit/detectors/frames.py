"""Streaming frame batches from cached log-mel arrays, so training memory does not grow with the data set."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset

from asdkit.features.logmel import stack_frames


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class FrameStream(IterableDataset):
    """Yields float32 batches of stacked frame vectors ([batch, n_mels * n_frames]).

    Clips are read ``clips_per_chunk`` at a time (memmaps, so only that chunk is in memory), their frames
    shuffled within the chunk, and cut into batches. Each pass reshuffles with a new, seeded order, so runs
    repeat. Under DDP every rank reads its own share of clips and yields the same number of batches.
    """

    def __init__(
        self,
        arrays: Sequence[np.ndarray],
        n_frames: int,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        clips_per_chunk: int = 64,
    ) -> None:
        super().__init__()
        self.arrays = arrays
        self.n_frames = n_frames
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.clips_per_chunk = clips_per_chunk
        self._passes = 0

    def _vectors_per_clip(self) -> np.ndarray:
        return np.array([max(a.shape[-1] - self.n_frames + 1, 0) for a in self.arrays])

    def __len__(self) -> int:
        _, world = _rank_and_world()
        return self._batches_per_rank(world)

    def _batches_per_rank(self, world: int) -> int:
        counts = self._vectors_per_clip()
        per_rank = [int(counts[np.arange(r, len(counts), world)].sum()) for r in range(world)]
        return min(-(-n // self.batch_size) for n in per_rank)

    def __iter__(self) -> Iterator[torch.Tensor]:
        rank, world = _rank_and_world()
        rng = np.random.default_rng([self.seed, self._passes])
        self._passes += 1
        order = rng.permutation(len(self.arrays)) if self.shuffle else np.arange(len(self.arrays))
        mine = [i for i in order if i % world == rank]
        remaining = self._batches_per_rank(world)
        carry = np.zeros((0, 0), dtype=np.float32)
        for start in range(0, len(mine), self.clips_per_chunk):
            chunk = [
                stack_frames(np.asarray(self.arrays[i], dtype=np.float32), self.n_frames)
                for i in mine[start : start + self.clips_per_chunk]
                if self.arrays[i].shape[-1] >= self.n_frames
            ]
            if not chunk:
                continue
            vectors = np.concatenate(chunk)
            if self.shuffle:
                vectors = vectors[rng.permutation(len(vectors))]
            if carry.size:
                vectors = np.concatenate([carry, vectors])
            n_full = len(vectors) // self.batch_size * self.batch_size
            for s in range(0, n_full, self.batch_size):
                if remaining == 0:
                    return
                remaining -= 1
                yield torch.from_numpy(np.ascontiguousarray(vectors[s : s + self.batch_size]))
            carry = vectors[n_full:]
        if carry.size and remaining > 0:
            yield torch.from_numpy(np.ascontiguousarray(carry))
