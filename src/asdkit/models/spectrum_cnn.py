"""The spectrum branch of two-branch embedding networks: 1-D convolutions along frequency of a clip spectrum.

A spectrum has no time axis, and where a peak sits matters (a bearing's tone at 120 Hz is not one at
1.2 kHz), so unlike the log-mel backbones this network keeps position: a wide strided convolution first
(a 256-bin kernel, stride 64, finds local peak patterns and shrinks 8193 bins to 125 positions),
then small convolutions with max-pooling, then a dense layer over all positions.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(n_in: int, n_out: int, kernel: int, stride: int = 1, padding: int = 0) -> list[nn.Module]:
    conv = nn.Conv1d(n_in, n_out, kernel, stride=stride, padding=padding, bias=False)
    return [conv, nn.BatchNorm1d(n_out), nn.ReLU()]


class SpectrumCnn(nn.Module):
    """``[B, n_bins]`` (standardised dB spectra) -> ``[B, embedding_dim]``."""

    def __init__(
        self, n_bins: int, embedding_dim: int = 128, channels: int = 64, first_kernel: int = 256
    ) -> None:
        super().__init__()
        if n_bins < 16:
            raise ValueError(f"a spectrum of {n_bins} bins is too short for the spectrum branch (>= 16)")
        # About 125 positions after the first layer whatever the length (the kernel is capped for long ones).
        kernel = min(first_kernel, max(4, n_bins // 32))
        layers = _block(1, channels, kernel, stride=max(1, kernel // 4))
        for _ in range(2):
            layers += [*_block(channels, channels, 3, padding=1), nn.MaxPool1d(2, ceil_mode=True)]
        self.convs = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.convs.eval()(torch.zeros(1, 1, n_bins)).numel()
        self.convs.train()
        self.project = nn.Sequential(nn.Linear(flat, embedding_dim), nn.BatchNorm1d(embedding_dim))
        self.embedding_dim = embedding_dim
        self.n_bins = n_bins

    def forward(self, spectra: torch.Tensor) -> torch.Tensor:
        return self.project(self.convs(spectra[:, None]).flatten(1))
