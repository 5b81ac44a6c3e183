"""A receptive-field-regularised ResNet (after Koutini et al., EUSIPCO 2019) on log-mel snippets.

Koutini et al. show that CNNs on spectrograms generalise better when their receptive field is limited: a
ResNet whose convolutions are 3x3 while the receptive field still fits a budget and 1x1 once it is used up.
Here the budget is given per axis (``rho_t`` frames, ``rho_f`` mel bands), so a kernel can be 3x1, 1x3,
3x3 or 1x1; the budgets are in input units (the paper's rho is an index into its own table of sizes).
"""

from __future__ import annotations

import torch
from torch import nn

from asdkit.models.scaling import BandScaler


def _bn_conv(n_in: int, n_out: int, kernel: tuple[int, int]) -> nn.Sequential:
    padding = (kernel[0] // 2, kernel[1] // 2)
    return nn.Sequential(nn.Conv2d(n_in, n_out, kernel, padding=padding, bias=False), nn.BatchNorm2d(n_out))


class _Block(nn.Module):
    """Two convolutions with a residual connection (1x1 projection when the width changes)."""

    def __init__(self, n_in: int, n_out: int, k1: tuple[int, int], k2: tuple[int, int]) -> None:
        super().__init__()
        self.conv1 = _bn_conv(n_in, n_out, k1)
        self.conv2 = _bn_conv(n_out, n_out, k2)
        self.shortcut = nn.Identity() if n_in == n_out else _bn_conv(n_in, n_out, (1, 1))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.relu(self.conv1(x))) + self.shortcut(x))


class _ReceptiveField:
    """Tracks the receptive field and stride ("jump") along one axis while layers are stacked."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.size = 1
        self.jump = 1

    def add(self, kernel: int, stride: int = 1) -> int:
        self.size += (kernel - 1) * self.jump
        self.jump *= stride
        return kernel

    def budgeted_kernel(self) -> int:
        """3 while a 3-kernel keeps the receptive field within the budget, else 1."""
        return self.add(3 if self.size + 2 * self.jump <= self.budget else 1)


class RFResNet(nn.Module):
    """Snippets [B, frames, n_mels] -> section logits; ``embed`` gives the pooled penultimate embedding.

    A 5x5 stride-2 stem, then ``n_stages`` stages of ``blocks_per_stage`` residual blocks with
    ``base_channels`` x 1, 2, 4... channels, each stage after the first opening with 2x2 max pooling. Each
    convolution's kernel is 3 or 1 per axis by the receptive-field budget (``receptive_field`` holds the
    result, in frames and bands). Inputs are standardised per mel band by ``scaler`` (set from training
    data by the detector). The embedding is the global average of the last stage (``embedding_size``).
    """

    def __init__(
        self,
        n_classes: int,
        n_mels: int,
        base_channels: int = 32,
        n_stages: int = 3,
        blocks_per_stage: int = 2,
        rho_t: int = 64,
        rho_f: int = 64,
    ) -> None:
        super().__init__()
        if n_classes < 1 or n_stages < 1 or blocks_per_stage < 1 or base_channels < 1:
            raise ValueError("RFResNet: n_classes, n_stages, blocks_per_stage and base_channels must be >= 1")
        self.scaler = BandScaler(n_mels)
        rf_t, rf_f = _ReceptiveField(rho_t), _ReceptiveField(rho_f)
        for rf in (rf_t, rf_f):
            rf.add(5, 2)
        layers: list[nn.Module] = [
            nn.Conv2d(1, base_channels, 5, stride=2, padding=2, bias=False),
            nn.BatchNorm2d(base_channels),
            nn.ReLU(),
        ]
        self.kernels: list[tuple[int, int]] = []
        width = base_channels
        for stage in range(n_stages):
            if stage > 0:
                for rf in (rf_t, rf_f):
                    rf.add(2, 2)
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            out = base_channels * 2**stage
            for _ in range(blocks_per_stage):
                k1 = (rf_t.budgeted_kernel(), rf_f.budgeted_kernel())
                k2 = (rf_t.budgeted_kernel(), rf_f.budgeted_kernel())
                self.kernels += [k1, k2]
                layers.append(_Block(width, out, k1, k2))
                width = out
        self.features = nn.Sequential(*layers)
        self.receptive_field = (rf_t.size, rf_f.size)
        self.embedding_size = width
        self.classifier = nn.Linear(width, n_classes)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's activations [B, C, frames', bands'] (what the receptive field refers to)."""
        return self.features(self.scaler.standardise(x).unsqueeze(1))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_map(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))
