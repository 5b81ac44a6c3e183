"""``mobilenet_section``: the official DCASE2021/2022 MobileNetV2 section-classifier baseline."""

from __future__ import annotations

import sys
from typing import Any, ClassVar

import torch
from torch import nn

from asdkit.detectors.registry import register
from asdkit.detectors.section import SectionClassifier
from asdkit.models.mobilenet_v2 import MobileNetV2

#: The baseline's floor on p and 1 - p before the logarithm.
EPSILON = sys.float_info.epsilon


@register
class MobileNetSectionDetector(SectionClassifier):
    """MobileNetV2 (width 0.5) on 64-frame snippets; clip score = mean over snippets of log((1 - p) / p).

    ``p`` is the softmax probability of the clip's own section. No proxy outliers by default (the
    baseline has none), but every option of :mod:`asdkit.detectors.section` applies.
    """

    name: ClassVar[str] = "mobilenet_section"
    architecture: ClassVar[tuple[str, ...]] = ("width",)
    debug_params: ClassVar[dict[str, Any]] = {"epochs": 2, "width": 0.25}

    def __init__(
        self,
        snippet_frames: int = 64,
        hop_frames: int = 8,
        width: float = 0.5,
        proxy_outliers: bool = False,
        proxy_lambda: float = 0.5,
        init_from: str | None = None,
        ccsa_weight: float = 0.0,
        margin: float = 0.5,
        mixup: float = 0.0,
        time_masks: int = 0,
        time_mask_frames: int = 8,
        freq_masks: int = 0,
        freq_mask_bands: int = 8,
        epochs: int = 20,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        rampdown_start: int = 0,
        rampdown_length: int = 0,
        seed: int = 0,
        accelerator: str = "auto",
        devices: int | str = 1,
        strategy: str = "auto",
        precision: str = "32-true",
        progress: bool = False,
    ) -> None:
        self.snippet_frames = snippet_frames
        self.hop_frames = hop_frames
        self.width = width
        self.proxy_outliers = proxy_outliers
        self.proxy_lambda = proxy_lambda
        self.init_from = init_from
        self.ccsa_weight = ccsa_weight
        self.margin = margin
        self.mixup = mixup
        self.time_masks = time_masks
        self.time_mask_frames = time_mask_frames
        self.freq_masks = freq_masks
        self.freq_mask_bands = freq_mask_bands
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.rampdown_start = rampdown_start
        self.rampdown_length = rampdown_length
        self.seed = seed
        self.accelerator = accelerator
        self.devices = devices
        self.strategy = strategy
        self.precision = precision
        self.progress = progress

    def _network(self, n_classes: int, n_mels: int) -> nn.Module:
        return MobileNetV2(n_classes, n_mels, self.width)

    def _snippet_scores(self, log_probs: torch.Tensor) -> torch.Tensor:
        p = log_probs.exp()
        return torch.log(torch.clamp(1.0 - p, min=EPSILON)) - torch.log(torch.clamp(p, min=EPSILON))
