"""MobileNetV2 (Sandler et al. 2018) on log-mel snippets: the DCASE2021/2022 baseline's network.

The baseline uses width multiplier 0.5 on 64-frame x 128-band snippets, one input channel.
"""

from __future__ import annotations

import torch
from torch import nn

from asdkit.models.scaling import BandScaler

#: (expansion t, output channels c, repeats n, first stride s) per stage, as in the paper.
STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Channel counts rounded to a multiple of ``divisor``, never more than 10% below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _conv_bn(
    n_in: int, n_out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True
) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(n_in, n_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(n_out),
    ]
    return [*layers, nn.ReLU6()] if act else layers


class InvertedResidual(nn.Module):
    """1x1 expansion, 3x3 depthwise (strided), linear 1x1 projection; residual when shapes match."""

    def __init__(self, n_in: int, n_out: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = n_in * expansion
        layers = _conv_bn(n_in, hidden, 1) if expansion != 1 else []
        layers += _conv_bn(hidden, hidden, 3, stride, groups=hidden)
        layers += _conv_bn(hidden, n_out, 1, act=False)
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and n_in == n_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2(nn.Module):
    """Snippets [B, frames, n_mels] -> section logits; ``embed`` gives the pooled last-conv embedding.

    ``width`` scales every stage's channels (rounded to multiples of 8); the last 1x1 convolution keeps
    1280 channels for widths up to 1, as in the reference network. Inputs are standardised per band by
    ``scaler`` (set from training data by the detector).
    """

    def __init__(self, n_classes: int, n_mels: int, width: float = 0.5) -> None:
        super().__init__()
        if n_classes < 1 or width <= 0:
            raise ValueError("MobileNetV2: n_classes must be >= 1 and width > 0")
        self.scaler = BandScaler(n_mels)
        channels = make_divisible(32 * width)
        layers = _conv_bn(1, channels, 3, stride=2)
        for expansion, c, repeats, stride in STAGES:
            out = make_divisible(c * width)
            for i in range(repeats):
                layers.append(InvertedResidual(channels, out, stride if i == 0 else 1, expansion))
                channels = out
        self.embedding_size = make_divisible(1280 * max(1.0, width))
        layers += _conv_bn(channels, self.embedding_size, 1)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(self.embedding_size, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.scaler.standardise(x).unsqueeze(1)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))
