"""The interpolation DNN (IDNN, Suefusa et al., ICASSP 2020): context frames in, the centre frame out."""

from __future__ import annotations

import torch
from torch import nn

from asdkit.models.dense_ae import _block
from asdkit.models.scaling import BandScaler


class InterpolationDNN(nn.Module):
    """An encoder-decoder of the dense AE's shape (BatchNorm + ReLU): ``n_context`` frames in, one out.

    Input: the context frames of a window without its centre (4 x n_mels for 5 frames); output: the
    centre frame. Predicting a frame it does not see keeps the network from copying its input, which is
    why IDNN helps on non-stationary sounds (valve clicks) where an AE reconstructs the clicks too well.
    Inputs are standardised by ``scaler`` (set from the training data); the output is in dB.
    """

    def __init__(
        self,
        n_mels: int = 128,
        n_context: int = 4,
        hidden: int = 128,
        bottleneck: int = 8,
        n_hidden: int = 4,
    ) -> None:
        super().__init__()
        self.scaler = BandScaler(n_mels)
        enc = [_block(n_context * n_mels, hidden)] + [_block(hidden, hidden) for _ in range(n_hidden - 1)]
        self.encoder = nn.Sequential(*enc, _block(hidden, bottleneck))
        dec = [_block(bottleneck, hidden)] + [_block(hidden, hidden) for _ in range(n_hidden - 1)]
        self.decoder = nn.Sequential(*dec, nn.Linear(hidden, n_mels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scaler.restore(self.decoder(self.encoder(self.scaler.standardise(x))))
