"""Convolutional autoencoder on overlapping log-mel patches (a DCASE2020 variant of the dense AE)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from torch import nn

from asdkit.detectors.base import ClipFeatures
from asdkit.detectors.reconstruction import ReconstructionDetector
from asdkit.detectors.registry import register
from asdkit.errors import AsdkitError
from asdkit.models.conv_ae import ConvAutoencoder


def patch_starts(n_frames: int, patch_frames: int, hop_frames: int) -> np.ndarray:
    """First frame of each patch: every ``hop_frames``, plus one flush with the clip's end (all frames count).

    A clip shorter than a patch gives one patch (its frames repeated, see :meth:`ConvAeDetector._items`).
    """
    if n_frames <= patch_frames:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, n_frames - patch_frames + 1, hop_frames)
    if starts[-1] != n_frames - patch_frames:
        starts = np.append(starts, n_frames - patch_frames)
    return starts


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

    def __init__(
        self,
        patch_frames: int = 64,
        hop_frames: int = 32,
        base_channels: int = 16,
        n_layers: int = 3,
        bottleneck: int = 64,
        epochs: int = 100,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        validation_fraction: float = 0.1,
        seed: int = 0,
        accelerator: str = "auto",
        devices: int | str = 1,
        strategy: str = "auto",
        progress: bool = False,
    ) -> None:
        self.patch_frames = patch_frames
        self.hop_frames = hop_frames
        self.base_channels = base_channels
        self.n_layers = n_layers
        self.bottleneck = bottleneck
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.accelerator = accelerator
        self.devices = devices
        self.strategy = strategy
        self.progress = progress

    def _fit(self, X: ClipFeatures) -> None:
        if self.patch_frames < 1 or self.hop_frames < 1:
            raise AsdkitError(
                f"conv_ae: patch_frames and hop_frames must be >= 1 "
                f"(got {self.patch_frames} and {self.hop_frames})"
            )
        super()._fit(X)

    def _network(self, n_mels: int) -> nn.Module:
        return ConvAutoencoder(n_mels, self.patch_frames, self.base_channels, self.n_layers, self.bottleneck)

    def _items(self, logmel: np.ndarray) -> np.ndarray:
        """Patches [n_patches, patch_frames, n_mels] (frame-major, as the reconstruction view reads them)."""
        n_frames = logmel.shape[1]
        if n_frames < self.patch_frames:
            logmel = np.pad(logmel, ((0, 0), (0, self.patch_frames - n_frames)), mode="wrap")
        windows = np.lib.stride_tricks.sliding_window_view(logmel, self.patch_frames, axis=1)
        starts = patch_starts(n_frames, self.patch_frames, self.hop_frames)
        return np.ascontiguousarray(windows[:, starts].transpose(1, 2, 0), dtype=np.float32)

    def _count(self, n_frames: int) -> int:
        return len(patch_starts(n_frames, self.patch_frames, self.hop_frames)) if n_frames > 0 else 0

    def _layout(self, n_frames: int) -> tuple[np.ndarray, int]:
        return patch_starts(n_frames, self.patch_frames, self.hop_frames), self.patch_frames
