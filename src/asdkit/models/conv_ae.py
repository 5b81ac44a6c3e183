"""A small convolutional autoencoder on log-mel patches, as a plain nn.Module."""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn
from torch.nn import functional as F

from asdkit.models.scaling import BandScaler


def _down(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(n_in, n_out, 3, stride=2, padding=1), nn.BatchNorm2d(n_out), nn.ReLU())


def _up(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(n_in, n_out, 3, stride=2, padding=1, output_padding=1),
        nn.BatchNorm2d(n_out),
        nn.ReLU(),
    )


class ConvAutoencoder(nn.Module):
    """Patches [B, frames, n_mels] through stride-2 convolutions, a dense bottleneck, and back.

    ``n_layers`` convolutions halve both axes and double the channels (``base_channels``, x2, x4...);
    the patch is zero-padded (after standardising) to a multiple of 2**n_layers and the output cropped
    back, so any patch size and n_mels work. The dense ``bottleneck`` is what forces compression (a purely
    convolutional AE of this width could copy its input). Inputs are standardised by ``scaler`` and
    outputs mapped back, so errors are in dB**2 like the dense AE's.
    """

    def __init__(
        self,
        n_mels: int,
        patch_frames: int = 64,
        base_channels: int = 16,
        n_layers: int = 3,
        bottleneck: int = 64,
    ) -> None:
        super().__init__()
        self.scaler = BandScaler(n_mels)
        factor = 2**n_layers
        self.padded = (-(-patch_frames // factor) * factor, -(-n_mels // factor) * factor)
        widths = [base_channels * 2**i for i in range(n_layers)]
        self.encoder = nn.Sequential(*[_down(c_in, c_out) for c_in, c_out in pairwise([1, *widths])])
        self.inner = (widths[-1], self.padded[0] // factor, self.padded[1] // factor)
        flat = self.inner[0] * self.inner[1] * self.inner[2]
        self.to_latent = nn.Linear(flat, bottleneck)
        self.from_latent = nn.Sequential(nn.Linear(bottleneck, flat), nn.BatchNorm1d(flat), nn.ReLU())
        ups = [_up(c_in, c_out) for c_in, c_out in pairwise(widths[::-1])]
        last = nn.ConvTranspose2d(widths[0], 1, 3, stride=2, padding=1, output_padding=1)
        self.decoder = nn.Sequential(*ups, last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames, n_mels = x.shape[-2:]
        z = self.scaler.standardise(x).unsqueeze(1)
        z = F.pad(z, (0, self.padded[1] - n_mels, 0, self.padded[0] - frames))
        h = self.from_latent(self.to_latent(self.encoder(z).flatten(1)))
        out = self.decoder(h.reshape(-1, *self.inner))[:, 0, :frames, :n_mels]
        return self.scaler.restore(out)
