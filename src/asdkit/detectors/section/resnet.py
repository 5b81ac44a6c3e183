"""``resnet_section``: the CP-JKU DCASE2021 section classifier (receptive-field-regularised ResNet)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from asdkit.detectors.deep import TrainerConfig
from asdkit.detectors.registry import register
from asdkit.detectors.section.family import SectionClassifier
from asdkit.models.rf_resnet import RFResNet


@register
class ResNetSectionDetector(SectionClassifier):
    """Classifies a machine type's sections; clip score = -mean over snippets of log p(own section).

    Proxy outliers (other machine types pushed to a uniform prediction, ``proxy_lambda``) are on by
    default, as in CP-JKU's system. Fine-tune a trained model with CCSA by ``init_from=RUN_OR_MODEL``,
    ``ccsa_weight=1``, a small ``learning_rate`` and few ``epochs``.
    See :mod:`asdkit.detectors.section.family`.
    """

    name: ClassVar[str] = "resnet_section"
    architecture: ClassVar[tuple[str, ...]] = (
        "base_channels",
        "n_stages",
        "blocks_per_stage",
        "rho_t",
        "rho_f",
    )
    trainer_defaults: ClassVar[TrainerConfig] = TrainerConfig(epochs=30, batch_size=64)

    def __init__(
        self,
        base_channels: int = 32,
        n_stages: int = 3,
        blocks_per_stage: int = 2,
        rho_t: int = 64,
        rho_f: int = 64,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self.base_channels = base_channels
        self.n_stages = n_stages
        self.blocks_per_stage = blocks_per_stage
        self.rho_t = rho_t
        self.rho_f = rho_f

    @classmethod
    def debug_params(cls) -> dict[str, Any]:
        return {**super().debug_params(), "base_channels": 8, "n_stages": 2, "blocks_per_stage": 1}

    def _network(self, n_classes: int, n_mels: int) -> nn.Module:
        return RFResNet(
            n_classes,
            n_mels,
            self.base_channels,
            self.n_stages,
            self.blocks_per_stage,
            self.rho_t,
            self.rho_f,
        )

    def _snippet_scores(self, log_probs: torch.Tensor) -> torch.Tensor:
        return -log_probs
