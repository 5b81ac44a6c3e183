"""Convolutional autoencoder on overlapping log-mel patches (a DCASE2020 variant of the dense AE)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from torch import nn

from asdkit.detectors.base import ClipFeatures
from asdkit.detectors.deep import TrainerConfig
from asdkit.detectors.reconstruction.family import ReconstructionDetector
from asdkit.detectors.registry import register
from asdkit.detectors.windows import Patches
from asdkit.errors import AsdkitError
from asdkit.models.conv_ae import ConvAutoencoder


@register
class ConvAeDetector(ReconstructionDetector):
    """Convolutional AE on log-mel patches: clip score = mean squared error over the clip's patches.

    Patches are ``patch_frames`` frames x all mel bands, every ``hop_frames`` frames (overlapping), plus one
    ending at the clip's last frame so that every frame is seen. A clip shorter than one patch is repeated
    (numpy "wrap" padding) up to one patch, so it still scores: its error then averages over copies of its
    own frames. Small enough for CPU training: 3 stride-2 convolutions of 16/32/64 channels and a dense
    64-value bottleneck. ``accelerator``/``devices``/``strategy`` go to Lightning as for the AE.
    """

    name: ClassVar[str] = "conv_ae"

    standardise: ClassVar[bool] = True

    trainer_defaults: ClassVar[TrainerConfig] = TrainerConfig(batch_size=64)

    def __init__(
        self,
        patch_frames: int = 64,
        hop_frames: int = 32,
        base_channels: int = 16,
        n_layers: int = 3,
        bottleneck: int = 64,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self.patch_frames = patch_frames
        self.hop_frames = hop_frames
        self.base_channels = base_channels
        self.n_layers = n_layers
        self.bottleneck = bottleneck

    def _fit(self, X: ClipFeatures) -> None:
        if self.patch_frames < 1 or self.hop_frames < 1:
            raise AsdkitError(
                f"conv_ae: patch_frames and hop_frames must be >= 1 "
                f"(got {self.patch_frames} and {self.hop_frames})"
            )
        super()._fit(X)

    def _network(self, n_mels: int) -> nn.Module:
        return ConvAutoencoder(n_mels, self.patch_frames, self.base_channels, self.n_layers, self.bottleneck)

    def _windows(self) -> Patches:
        """Patches [n_patches, patch_frames, n_mels] (frame-major, as the reconstruction view reads them)."""
        return Patches(self.patch_frames, self.hop_frames)

    def _layout(self, n_frames: int) -> tuple[np.ndarray, int]:
        return self._windows().starts(n_frames), self.patch_frames
