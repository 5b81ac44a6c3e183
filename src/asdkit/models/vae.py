"""A dense variational autoencoder on stacked log-mel frames, as a plain nn.Module."""

from __future__ import annotations

import torch
from torch import nn

from asdkit.models.dense_ae import _block
from asdkit.models.scaling import BandScaler


class VariationalAutoencoder(nn.Module):
    """The dense AE's shape (BatchNorm + ReLU blocks) around a Gaussian latent of ``latent`` dimensions.

    Inputs are standardised by ``scaler`` (set from the training data), outputs are in dB again.
    ``forward`` decodes the posterior mean, so the module used as a plain function (scoring, the
    reconstruction view) is deterministic; training samples through :meth:`sample`.
    """

    def __init__(
        self, n_mels: int = 128, n_frames: int = 5, hidden: int = 128, latent: int = 8, n_hidden: int = 4
    ) -> None:
        super().__init__()
        n_features = n_mels * n_frames
        self.scaler = BandScaler(n_mels)
        enc = [_block(n_features, hidden)] + [_block(hidden, hidden) for _ in range(n_hidden - 1)]
        self.encoder = nn.Sequential(*enc)
        self.mean = nn.Linear(hidden, latent)
        self.log_var = nn.Linear(hidden, latent)
        dec = [_block(latent, hidden)] + [_block(hidden, hidden) for _ in range(n_hidden - 1)]
        self.decoder = nn.Sequential(*dec, nn.Linear(hidden, n_features))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(self.scaler.standardise(x))
        # Clamped so that an untrained or KL-free encoder cannot overflow exp() (variances in [e-20, e10]).
        return self.mean(h), self.log_var(h).clamp(-20.0, 10.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.scaler.restore(self.decoder(z))

    def sample(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reparameterised pass: (reconstruction of z = mean + std * eps, mean, log-variance)."""
        mean, log_var = self.encode(x)
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        return self.decode(z), mean, log_var

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x)[0])


def kl_divergence(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per item, a mean over latent dimensions (so it does not grow with ``latent``)."""
    return 0.5 * (mean**2 + log_var.exp() - 1.0 - log_var).mean(dim=1)
