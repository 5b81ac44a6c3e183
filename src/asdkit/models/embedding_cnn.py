"""A compact CNN that maps log-mel snippets to embeddings: the default backbone of the margin classifiers.

A backbone is any nn.Module mapping a batch of log-mel snippets [B, 1, T, F] to embeddings [B, D] (with
``embedding_dim = D``); other backbones plug in the same way.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn


def _block(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(n_in, n_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(n_out),
        nn.ReLU(),
        nn.Conv2d(n_out, n_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(n_out),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class CompactCnn(nn.Module):
    """Conv blocks (two 3x3 convolutions + BN + ReLU, 2x2 max-pool) -> mean over time -> linear -> D.

    The first convolution strides 2 along frequency so that 128-band input stays cheap on a CPU. Time is
    averaged out (machine sounds are mostly stationary over a snippet); the frequency layout is kept up
    to the last layer, since anomalies often live in particular bands.
    """

    def __init__(
        self, n_mels: int = 128, embedding_dim: int = 128, channels: tuple[int, ...] = (16, 32, 64)
    ) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.stem = nn.Sequential(
            nn.Conv2d(1, channels[0], (3, 3), stride=(1, 2), padding=1, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(),
        )
        widths = [channels[0], *channels]
        self.blocks = nn.Sequential(*(_block(a, b) for a, b in itertools.pairwise(widths)))
        n_freq = -(-n_mels // 2)
        for _ in channels:
            n_freq //= 2
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels[-1] * max(n_freq, 1), embedding_dim),
            nn.BatchNorm1d(embedding_dim),
        )
        self.n_freq = max(n_freq, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.stem(x))  # [B, C, T', F']
        h = nn.functional.adaptive_avg_pool2d(h, (1, self.n_freq))
        return self.head(h)
