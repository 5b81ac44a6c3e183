"""The one base of the network detectors: it owns the trainer settings and the training call.

A network family writes only its hooks (as pyod's ``base_dl.py``): ``_build_network`` (the untrained
network of the data's shape, in ``network_``), ``_training_data`` (its item streams for training and
validation), ``_loss`` (network, batch -> scalar) and ``_score`` (clip scores); ``_windows`` says how a
clip's log-mel array becomes items, ``_lr_lambda`` gives a learning-rate schedule and ``_fitted`` does what
follows training (statistics of held-out scores, a BatchNorm recalibration). Lightning is imported only
inside :meth:`DeepDetector._train`, so loading and scoring never import it.

The trainer settings are one :class:`TrainerConfig` in ``trainer``. They stay plain parameters to the user
(``AutoencoderDetector(epochs=3)``, ``--param epochs=3``, ``get_params()["epochs"]``, model.json's flat
``params``); a family sets its defaults with ``trainer_defaults``.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import IterableDataset

from asdkit.detectors.base import ClipFeatures, Detector
from asdkit.detectors.windows import Windows

log = logging.getLogger(__name__)

#: Epochs of a ``--debug`` run of every network detector.
DEBUG_EPOCHS = 2
#: TrainerConfig fields that belong to one training run, not to the model (never in ``params``).
RUN_ONLY = "run_only"


@dataclass
class TrainerConfig:
    """How a network is trained: the settings every network detector has, in one place.

    ``accelerator``/``devices``/``strategy``/``precision`` go to Lightning's Trainer (several GPUs:
    ``devices=4, strategy="ddp"``; ``precision="16-mixed"`` on a GPU, falling back to 32 bits on a CPU).
    ``log_dir`` (TensorBoard event files of this training; None: none) is set by the caller for one run
    and is not a model parameter.
    """

    epochs: int = 100
    batch_size: int = 512
    learning_rate: float = 1e-3
    seed: int = 0
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    precision: str = "32-true"
    progress: bool = False
    log_dir: Path | None = field(default=None, metadata={RUN_ONLY: True})

    @classmethod
    def settings(cls) -> tuple[str, ...]:
        """The fields that are model parameters (all but the run-only ones)."""
        return tuple(f.name for f in fields(cls) if not f.metadata.get(RUN_ONLY))

    def on_cpu(self) -> bool:
        return self.accelerator == "cpu" or not torch.cuda.is_available()


class _TrainerSetting:
    """``detector.epochs`` and the like: read and set the field of the detector's ``trainer``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: DeepDetector | None, owner: type) -> Any:
        if obj is None:
            return getattr(owner.trainer_defaults, self.name)  # type: ignore[attr-defined]
        return getattr(obj.trainer, self.name)

    def __set__(self, obj: DeepDetector, value: Any) -> None:
        setattr(obj.trainer, self.name, value)


class DeepDetector(Detector):
    """A detector that trains a torch network (``network_``, saved as weights.pt) with a TrainerConfig."""

    #: the family's trainer defaults (a registered detector may change a few)
    trainer_defaults: ClassVar[TrainerConfig] = TrainerConfig()

    #: the settings; each is also an attribute (``detector.epochs``), see the loop at the end of the module
    trainer: TrainerConfig

    def __init__(self, **trainer: Any) -> None:
        unknown = sorted(set(trainer) - set(TrainerConfig.settings()))
        if unknown:  # as Python says it for a named argument, not in TrainerConfig's words
            raise TypeError(
                f"{type(self).__name__}() got unexpected keyword argument(s) {', '.join(unknown)}"
            )
        self.trainer = replace(type(self).trainer_defaults, **trainer)

    @classmethod
    def parameters(cls) -> dict[str, inspect.Parameter]:
        params = super().parameters()
        hints = typing.get_type_hints(TrainerConfig)
        for name in TrainerConfig.settings():
            default = getattr(cls.trainer_defaults, name)
            kind = inspect.Parameter.KEYWORD_ONLY
            params.setdefault(name, inspect.Parameter(name, kind, default=default, annotation=hints[name]))
        return params

    @classmethod
    def debug_params(cls) -> dict[str, Any]:
        return {"epochs": DEBUG_EPOCHS}

    # -- the hooks a family writes ------------------------------------------------------------------------
    def _windows(self) -> Windows:
        """How a clip's log-mel array becomes the network's items (stacked frames, patches...)."""
        raise NotImplementedError

    def _training_data(self, X: ClipFeatures) -> tuple[IterableDataset, IterableDataset | None]:
        """Build ``network_`` for ``X``; return the training and validation streams (None: no validation)."""
        raise NotImplementedError

    def _loss(self, network: nn.Module, batch: Any) -> torch.Tensor:
        raise NotImplementedError

    def _lr_lambda(self) -> Any:
        """Epoch -> factor on the learning rate (None: constant)."""
        return None

    def _optimiser_groups(self, network: nn.Module, learning_rate: float) -> list[dict[str, Any]] | None:
        """The optimiser's parameter groups (layer-wise learning rates); None: every parameter at one rate."""
        return None

    def _fitted(self, X: ClipFeatures, train: IterableDataset) -> None:
        """What follows training (statistics, recalibration); nothing by default."""

    # -- shared machinery -----------------------------------------------------------------------------
    def _items(self, logmel: np.ndarray) -> np.ndarray:
        return self._windows().items(logmel)

    def _count(self, n_frames: int) -> int:
        return self._windows().count(n_frames)

    def _fit(self, X: ClipFeatures) -> None:
        train, val = self._training_data(X)
        self.history_ = self._train(self.network_, train, val)
        self._fitted(X, train)

    def _train(
        self, network: nn.Module, train: IterableDataset, val: IterableDataset | None
    ) -> list[dict[str, float]]:
        """Train ``network`` in place with this detector's loss and TrainerConfig; the per-epoch history."""
        from asdkit.detectors.training import fit_network

        return fit_network(
            network,
            self._loss,
            train,
            val,
            self._effective_trainer(),
            self._lr_lambda(),
            self._optimiser_groups,
        )

    def _effective_trainer(self) -> TrainerConfig:
        """Mixed float16 is a GPU option; on a CPU-only machine training falls back to 32 bits and says so.
        Several devices there are CPU processes, which a user who meant GPUs is told."""
        if self.accelerator == "auto" and self.trainer.on_cpu() and str(self.devices) not in ("1", "auto"):
            log.warning(
                "%s: devices=%s, but no GPU is found: training in %s CPU processes "
                "(accelerator=cpu says that is meant; devices=1 trains in one)",
                self.name,
                self.devices,
                self.devices,
            )
        if self.trainer.on_cpu() and str(self.precision).startswith("16"):
            log.warning("%s: precision=%s needs a GPU; training in 32 bits", self.name, self.precision)
            return replace(self.trainer, precision="32-true")
        return self.trainer

    def scoring_device(self) -> torch.device:
        """Score on the GPU when there is one and the detector was not pinned to the CPU."""
        return torch.device("cpu" if self.trainer.on_cpu() else "cuda")


for _field in dataclasses.fields(TrainerConfig):
    if not _field.metadata.get(RUN_ONLY):
        setattr(DeepDetector, _field.name, _TrainerSetting(_field.name))
