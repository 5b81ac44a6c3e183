"""Input standardisation for networks on log-mel values, kept inside the network (buffers, saved)."""

from __future__ import annotations

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
