"""The margin classifiers' network: band scaling, a backbone, the embedding (and a spectrum branch's).

Plain torch; the ``arcface`` and ``adacos`` detectors (:mod:`asdkit.detectors.margin.family`) train it.
"""

from __future__ import annotations

import torch
from torch import nn

from asdkit.errors import ModelError
from asdkit.models.embedding_cnn import CompactCnn
from asdkit.models.scaling import BandScaler


class MarginClassifier(nn.Module):
    """Band scaling -> backbone -> embedding (beside the spectrum branch's, if any); the head is used only by
    the training loss."""

    def __init__(
        self, n_mels: int, backbone: nn.Module, head: nn.Module, spectrum_branch: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.scaler = BandScaler(n_mels)
        self.backbone = backbone
        self.head = head
        self.spectrum_branch = spectrum_branch
        if spectrum_branch is not None:
            self.spectrum_scaler = BandScaler(spectrum_branch.n_bins)

    def forward(self, snippets: torch.Tensor, spectra: torch.Tensor | None = None) -> torch.Tensor:
        """Embeddings [B, D] of log-mel snippets [B, frames, n_mels] (in dB) and their clips' spectra
        [B, n_bins] (in dB; two-branch networks only)."""
        embedding = self.backbone(self.scaler.standardise(snippets)[:, None])
        if self.spectrum_branch is None:
            return embedding
        if spectra is None:
            raise ValueError("a two-branch network needs the clips' spectra")
        spectral = self.spectrum_branch(self.spectrum_scaler.standardise(spectra))
        return torch.cat([embedding, spectral], dim=1)


#: Backbones of the margin classifiers: this module's compact CNN, or the section-classifier networks.
BACKBONES = ("compact", "rf_resnet", "mobilenet_v2")


class SectionNetEmbedding(nn.Module):
    """A section-classifier network (``embed`` on [B, frames, n_mels]) projected to ``dim`` embeddings.

    Its own classifier layer is unused; the margin head replaces it.
    """

    def __init__(self, network: nn.Module, width: int, dim: int) -> None:
        super().__init__()
        self.network = network
        self.project = nn.Linear(width, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.network.embed(x[:, 0]))


def make_backbone(kind: str, n_mels: int, dim: int, base_channels: int) -> nn.Module:
    """[B, 1, frames, n_mels] -> [B, dim] by name (see :data:`BACKBONES`)."""
    if kind == "compact":
        return CompactCnn(n_mels, dim, (base_channels, 2 * base_channels, 2 * base_channels))
    if kind == "rf_resnet":
        from asdkit.models.rf_resnet import RFResNet

        network: nn.Module = RFResNet(1, n_mels, base_channels=base_channels)
    elif kind == "mobilenet_v2":
        from asdkit.models.mobilenet_v2 import MobileNetV2

        network = MobileNetV2(1, n_mels)
    else:
        raise ModelError(f"backbone must be one of {', '.join(BACKBONES)}, got {kind!r}")
    return SectionNetEmbedding(network, int(network.embedding_size), dim)
