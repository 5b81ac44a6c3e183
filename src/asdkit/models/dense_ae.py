"""The dense autoencoder of the official DCASE2020/2021 baselines, as a plain nn.Module."""

from __future__ import annotations

import torch
from torch import nn

from asdkit.models.scaling import BandScaler


def _block(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.ReLU())


class DenseAutoencoder(nn.Module):
    """640-128-128-128-128-8-128-128-128-128-640 with BatchNorm + ReLU, linear output (the baseline's shape).

    The layer widths are parameters so that the same network serves smaller debug runs. ``scaler`` is the
    identity unless the detector sets it from training data (the baseline itself feeds raw dB values).
    """

    def __init__(
        self,
        n_features: int = 640,
        hidden: int = 128,
        bottleneck: int = 8,
        n_hidden: int = 4,
        n_mels: int = 128,
    ) -> None:
        super().__init__()
        self.scaler = BandScaler(n_mels)
        enc = [_block(n_features, hidden)] + [_block(hidden, hidden) for _ in range(n_hidden - 1)]
        self.encoder = nn.Sequential(*enc, _block(hidden, bottleneck))
        dec = [_block(bottleneck, hidden)] + [_block(hidden, hidden) for _ in range(n_hidden - 1)]
        self.decoder = nn.Sequential(*dec, nn.Linear(hidden, n_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scaler.restore(self.decoder(self.encoder(self.scaler.standardise(x))))
