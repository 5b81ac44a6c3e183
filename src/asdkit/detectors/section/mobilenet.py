"""``mobilenet_section``: the official DCASE2021/2022 MobileNetV2 section-classifier baseline."""

from __future__ import annotations

import sys
from typing import Any, ClassVar

import torch
from torch import nn

from asdkit.detectors.deep import TrainerConfig
from asdkit.detectors.registry import register
from asdkit.detectors.section.family import SectionClassifier
from asdkit.models.mobilenet_v2 import MobileNetV2

#: The baseline's floor on p and 1 - p before the logarithm.
EPSILON = sys.float_info.epsilon


@register
class MobileNetSectionDetector(SectionClassifier):
    """MobileNetV2 (width 0.5) on 64-frame snippets; clip score = mean over snippets of log((1 - p) / p).

    ``p`` is the softmax probability of the clip's own section. No proxy outliers by default (the
    baseline has none), but every option of :mod:`asdkit.detectors.section.family` applies.
    """

    name: ClassVar[str] = "mobilenet_section"
    architecture: ClassVar[tuple[str, ...]] = ("width",)
    trainer_defaults: ClassVar[TrainerConfig] = TrainerConfig(epochs=20, batch_size=32)

    def __init__(
        self, hop_frames: int = 8, width: float = 0.5, proxy_outliers: bool = False, **params: Any
    ) -> None:
        super().__init__(hop_frames=hop_frames, proxy_outliers=proxy_outliers, **params)
        self.width = width

    @classmethod
    def debug_params(cls) -> dict[str, Any]:
        return {**super().debug_params(), "width": 0.25}

    def _network(self, n_classes: int, n_mels: int) -> nn.Module:
        return MobileNetV2(n_classes, n_mels, self.width)

    def _snippet_scores(self, log_probs: torch.Tensor) -> torch.Tensor:
        p = log_probs.exp()
        return torch.log(torch.clamp(1.0 - p, min=EPSILON)) - torch.log(torch.clamp(p, min=EPSILON))
