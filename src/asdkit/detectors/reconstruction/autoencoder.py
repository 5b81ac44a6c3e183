"""The official DCASE2020/2021 dense autoencoder baseline: reconstruction error of stacked log-mel frames."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from asdkit.detectors.base import ClipFeatures
from asdkit.detectors.reconstruction.family import ReconstructionDetector, _item_chunks
from asdkit.detectors.registry import register
from asdkit.detectors.tags import DetectorTags
from asdkit.errors import ModelError
from asdkit.models.dense_ae import DenseAutoencoder
from asdkit.scoring.embedding import DomainBanks
from asdkit.scoring.error_mahalanobis import ERROR_SCORES, ErrorCovariance, clip_scores, fit_error_banks

#: Name prefix of the error-vector banks among the fitted arrays.
ERROR_BANKS = "error_banks"


@register
class AutoencoderDetector(ReconstructionDetector):
    """Clip score = mean squared reconstruction error over the clip's stacked-frame vectors.

    Defaults are the official baseline's (100 epochs, batch 512, Adam 1e-3, 10% of the training clips held
    out for the validation loss). ``accelerator``/``devices``/``strategy`` go to Lightning's Trainer, so
    several GPUs are ``devices=4, strategy="ddp"``. ``standardise=True`` scales each mel band by the
    training clips' statistics inside the network (errors stay in dB): the baseline's raw-dB input needs
    many epochs to learn the level, standardised input learns in a few.

    ``score``: ``mse`` (the DCASE2020/2021 baseline), ``mahalanobis`` (the DCASE2023/2024 baseline's
    Mahalanobis norm of the error vectors under their training covariance, one per section) or
    ``selective_mahalanobis`` (one covariance per section and domain, the smaller clip score counts);
    see :mod:`asdkit.scoring.error_mahalanobis`. The covariances are saved as fitted arrays
    (``error_banks.*``).
    """

    name: ClassVar[str] = "ae"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"score": ERROR_SCORES}

    def __init__(
        self,
        n_frames: int = 5,
        hidden: int = 128,
        bottleneck: int = 8,
        n_hidden: int = 4,
        standardise: bool = False,
        score: str = "mse",
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self.n_frames = n_frames
        self.hidden = hidden
        self.bottleneck = bottleneck
        self.n_hidden = n_hidden
        self.standardise = standardise
        self.score = score

    def _network(self, n_mels: int) -> nn.Module:
        return DenseAutoencoder(n_mels * self.n_frames, self.hidden, self.bottleneck, self.n_hidden, n_mels)

    def tags(self) -> DetectorTags:
        """The error-vector banks of the Mahalanobis scores are per section (and domain)."""
        return replace(super().tags(), sections="none" if self.score == "mse" else "banks")

    # -- Mahalanobis scoring of the error vectors (score != "mse") ----------------------------------------
    def _fit(self, X: ClipFeatures) -> None:
        if self.score not in ERROR_SCORES:
            raise ModelError(f"ae: score must be one of {', '.join(ERROR_SCORES)}, got {self.score!r}")
        super()._fit(X)
        if self.score == "mse":
            return
        counts = [self._count(a.shape[1]) for a in X.arrays]
        banks = fit_error_banks(
            lambda i, items: self._error_vectors(X.arrays[i], items),
            counts,
            [c.section for c in X.clips],
            [c.domain for c in X.clips],
            self.score,
        )
        self.error_layout_ = banks.layout()
        self.error_bank_arrays_ = banks.to_arrays()

    @torch.inference_mode()
    def _error_vectors(self, logmel: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Input minus reconstruction of those stacked-frame items of the clip."""
        batch = self._items(np.asarray(logmel, dtype=np.float32))[items]
        return self._errors_of(np.ascontiguousarray(batch))

    @torch.inference_mode()
    def _errors_of(self, items: np.ndarray) -> np.ndarray:
        device = self.scoring_device()
        x = torch.from_numpy(items).to(device)
        return (x - self.network_.to(device).eval()(x)).double().cpu().numpy()

    def _error_banks(self) -> DomainBanks:
        mode = "min" if self.score == "selective_mahalanobis" else "pooled"
        return DomainBanks.from_arrays(ErrorCovariance(), mode, self.error_layout_, self.error_bank_arrays_)

    def _score(self, X: ClipFeatures) -> np.ndarray:
        if self.score == "mse":
            return super()._score(X)
        banks, sections, scores = self._error_banks(), [c.section for c in X.clips], []
        for items, counts in _item_chunks(X.arrays, self._items, 8192):  # batched like the MSE path
            errors = np.split(self._errors_of(items), np.cumsum(counts)[:-1])
            done = sum(len(s) for s in scores)
            scores.append(clip_scores(banks, errors, sections[done : done + len(counts)]))
        return np.concatenate(scores)

    def _extra_state(self) -> dict[str, Any]:
        state = super()._extra_state()
        if self.score != "mse":
            state["error_banks"] = self.error_layout_
        return state

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        super()._load_extra_state(state)
        if self.score != "mse":
            self.error_layout_ = state["error_banks"]

    def _fitted_arrays(self) -> dict[str, np.ndarray]:
        if self.score == "mse":
            return {}
        return {f"{ERROR_BANKS}.{k}": a for k, a in self.error_bank_arrays_.items()}

    def _set_fitted_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        # format 1 kept these as the buffers of network_.error_banks: the same names
        prefix = f"{ERROR_BANKS}."
        self.error_bank_arrays_ = {
            k.removeprefix(prefix): a for k, a in arrays.items() if k.startswith(prefix)
        }
