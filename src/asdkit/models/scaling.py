"""Input standardisation for networks on log-mel values, kept inside the network (buffers, saved).

:func:`band_statistics` is the one place the statistics are computed (per-band means, and one pooled or
per-band standard deviation about them), for every network and the frame-statistics embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


class BandScaler(nn.Module):
    """Standardises log-mel values with fixed per-band means and one overall scale (buffers, saved).

    Works on anything whose last axis holds whole frames, frame-major (stacked vectors, patches): the
    networks learn faster on standardised inputs, while their outputs and errors stay in dB.
    """

    offset: torch.Tensor
    scale: torch.Tensor

    def __init__(self, n_mels: int) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.register_buffer("offset", torch.zeros(n_mels))
        self.register_buffer("scale", torch.ones(()))

    def set(self, offset: torch.Tensor, scale: torch.Tensor | float) -> None:
        self.offset.copy_(torch.as_tensor(offset))
        self.scale.copy_(torch.as_tensor(scale))

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.unflatten(-1, (-1, self.n_mels)) - self.offset) / self.scale).flatten(-2)

    def restore(self, x: torch.Tensor) -> torch.Tensor:
        return (x.unflatten(-1, (-1, self.n_mels)) * self.scale + self.offset).flatten(-2)


def band_statistics(
    arrays: Sequence[np.ndarray], per_band: bool = False, floor: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean of the clips' frames ([n_bands, frames] arrays) and their standard deviation about it.

    ``per_band``: one deviation per band; else one over all bands (a 0-d array), as :class:`BandScaler`
    holds. Deviations below ``floor`` are raised to it. Two passes, one clip in memory at a time (memmaps).
    """
    count = sum(a.shape[1] for a in arrays)
    if count == 0:
        raise ValueError("no frames to standardise with")
    mean = sum(np.asarray(a, dtype=np.float64).sum(axis=1) for a in arrays) / count
    squares = sum(((np.asarray(a, dtype=np.float64) - mean[:, None]) ** 2).sum(axis=1) for a in arrays)
    std = np.sqrt(squares / count) if per_band else np.sqrt(np.asarray(squares).sum() / (count * len(mean)))
    return np.asarray(mean, dtype=np.float64), np.asarray(np.maximum(std, floor), dtype=np.float64)
