"""``resnet_section``: the CP-JKU DCASE2021 section classifier (receptive-field-regularised ResNet)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from asdkit.detectors.registry import register
from asdkit.detectors.section import SectionClassifier
from asdkit.models.rf_resnet import RFResNet


@register
class ResNetSectionDetector(SectionClassifier):
    """Classifies a machine type's sections; clip score = -mean over snippets of log p(own section).

    Proxy outliers (other machine types pushed to a uniform prediction, ``proxy_lambda``) are on by
    default, as in CP-JKU's system. Fine-tune a trained model with CCSA by ``init_from=RUN_OR_MODEL``,
    ``ccsa_weight=1``, a small ``learning_rate`` and few ``epochs``. See :mod:`asdkit.detectors.section`.
    """

    name: ClassVar[str] = "resnet_section"
    architecture: ClassVar[tuple[str, ...]] = (
        "base_channels",
        "n_stages",
        "blocks_per_stage",
        "rho_t",
        "rho_f",
    )
    debug_params: ClassVar[dict[str, Any]] = {
        "epochs": 2,
        "base_channels": 8,
        "n_stages": 2,
        "blocks_per_stage": 1,
    }

    def __init__(
        self,
        snippet_frames: int = 64,
        hop_frames: int = 32,
        base_channels: int = 32,
        n_stages: int = 3,
        blocks_per_stage: int = 2,
        rho_t: int = 64,
        rho_f: int = 64,
        proxy_outliers: bool = True,
        proxy_lambda: float = 0.5,
        init_from: str | None = None,
        ccsa_weight: float = 0.0,
        margin: float = 0.5,
        mixup: float = 0.0,
        time_masks: int = 0,
        time_mask_frames: int = 8,
        freq_masks: int = 0,
        freq_mask_bands: int = 8,
        epochs: int = 30,
        batch_size: int = 64,
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
        self.base_channels = base_channels
        self.n_stages = n_stages
        self.blocks_per_stage = blocks_per_stage
        self.rho_t = rho_t
        self.rho_f = rho_f
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
