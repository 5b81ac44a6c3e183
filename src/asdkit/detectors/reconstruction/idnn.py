"""Interpolation DNN (Suefusa et al. 2020): predict each window's centre frame from the frames around it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from asdkit.detectors.base import ClipFeatures
from asdkit.detectors.params import ParamConflict
from asdkit.detectors.reconstruction.family import ReconstructionDetector
from asdkit.detectors.registry import register
from asdkit.errors import AsdkitError
from asdkit.models.idnn import InterpolationDNN

#: the window an IDNN predicts the centre of
N_FRAMES_RULE = "n_frames must be odd and at least 3 (a centre and context)"


def _has_centre(n_frames: int) -> bool:
    return n_frames >= 3 and n_frames % 2 == 1


@register
class IdnnDetector(ReconstructionDetector):
    """Interpolation DNN: clip score = mean squared error of the predicted centre frames.

    Items are the AE's stacked windows of ``n_frames`` (odd) frames; the network sees the window without
    its centre frame and predicts it, so the error is on the centre frame only. Known to help on
    non-stationary machines (valves), whose transients an AE learns to copy. Same training defaults as the
    AE; the frames of a clip's first and last ``n_frames // 2`` positions are context only.
    """

    name: ClassVar[str] = "idnn"
    standardise: ClassVar[bool] = True

    def __init__(
        self, n_frames: int = 5, hidden: int = 128, bottleneck: int = 8, n_hidden: int = 4, **params: Any
    ) -> None:
        super().__init__(**params)
        self.n_frames = n_frames
        self.hidden = hidden
        self.bottleneck = bottleneck
        self.n_hidden = n_hidden

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> None:
        if not _has_centre(params["n_frames"]):
            raise ParamConflict("n_frames", params["n_frames"], N_FRAMES_RULE)

    def _fit(self, X: ClipFeatures) -> None:
        if not _has_centre(self.n_frames):
            raise AsdkitError(f"idnn: {N_FRAMES_RULE}, got {self.n_frames}")
        super()._fit(X)

    def _network(self, n_mels: int) -> nn.Module:
        return InterpolationDNN(n_mels, self.n_frames - 1, self.hidden, self.bottleneck, self.n_hidden)

    def _inputs_targets(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Context frames (flattened, in order, centre left out) and the centre frame."""
        frames = batch.reshape(batch.shape[0], self.n_frames, -1)  # shape[0] traces as dynamic (ONNX)
        centre = self.n_frames // 2
        context = torch.cat([frames[:, :centre], frames[:, centre + 1 :]], dim=1)
        return context.flatten(1), frames[:, centre]

    def _layout(self, n_frames: int) -> tuple[np.ndarray, int]:
        return np.arange(self._count(n_frames)) + self.n_frames // 2, 1
