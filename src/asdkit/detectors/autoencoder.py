"""The official DCASE2020/2021 dense autoencoder baseline: reconstruction error of stacked log-mel frames."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from torch import nn

from asdkit.detectors.reconstruction import ReconstructionDetector
from asdkit.detectors.registry import register
from asdkit.features.logmel import stack_frames
from asdkit.models.dense_ae import DenseAutoencoder


@register
class AutoencoderDetector(ReconstructionDetector):
    """Clip score = mean squared reconstruction error over the clip's stacked-frame vectors.

    Defaults are the official baseline's (100 epochs, batch 512, Adam 1e-3, 10% of the training clips held
    out for the validation loss). ``accelerator``/``devices``/``strategy`` go to Lightning's Trainer, so
    several GPUs are ``devices=4, strategy="ddp"``. ``standardise=True`` scales each mel band by the
    training clips' statistics inside the network (errors stay in dB): the baseline's raw-dB input needs
    many epochs to learn the level, standardised input learns in a few.
    """

    name: ClassVar[str] = "ae"

    def __init__(
        self,
        n_frames: int = 5,
        hidden: int = 128,
        bottleneck: int = 8,
        n_hidden: int = 4,
        standardise: bool = False,
        epochs: int = 100,
        batch_size: int = 512,
        learning_rate: float = 1e-3,
        validation_fraction: float = 0.1,
        seed: int = 0,
        accelerator: str = "auto",
        devices: int | str = 1,
        strategy: str = "auto",
        progress: bool = False,
    ) -> None:
        self.n_frames = n_frames
        self.hidden = hidden
        self.bottleneck = bottleneck
        self.n_hidden = n_hidden
        self.standardise = standardise
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.accelerator = accelerator
        self.devices = devices
        self.strategy = strategy
        self.progress = progress

    def _network(self, n_mels: int) -> nn.Module:
        return DenseAutoencoder(n_mels * self.n_frames, self.hidden, self.bottleneck, self.n_hidden, n_mels)

    def _items(self, logmel: np.ndarray) -> np.ndarray:
        return stack_frames(logmel, self.n_frames)

    def _count(self, n_frames: int) -> int:
        return n_frames - self.n_frames + 1
