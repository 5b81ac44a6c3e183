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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import IterableDataset

from asdkit.detectors.base import ClipFeatures, Detector
from asdkit.detectors.params import DEVICES, ParamConflict, RegistryWords
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


def lightning_accelerators() -> tuple[str, ...]:
    """The Trainer's own ``auto`` and ``gpu`` and the installed Lightning's registered accelerators."""
    from lightning.pytorch.accelerators import AcceleratorRegistry

    return ("auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators()))


def usable_accelerator(word: str) -> str:
    """``word`` when this machine has such a device (``gpu``: CUDA or Apple's MPS, as Lightning picks);
    Lightning itself would refuse a missing one only at fit time, after the features were computed."""
    from lightning.pytorch.accelerators import AcceleratorRegistry

    if word == "auto" or any(_available(n) for n in (("cuda", "mps") if word == "gpu" else (word,))):
        return word
    usable = [n for n in sorted(AcceleratorRegistry.available_accelerators()) if _available(n)]
    raise ValueError(f"accelerator: this machine has no {word} device, only {', '.join(usable)} (or auto)")


def _available(name: str) -> bool:
    from lightning.pytorch.accelerators import AcceleratorRegistry

    return name in AcceleratorRegistry and bool(AcceleratorRegistry[name]["accelerator"].is_available())


def _device_kind(accelerator: str) -> str:
    """The accelerator Lightning trains on for ``accelerator`` here (``auto``: a TPU, Apple's MPS or CUDA
    when present, else the CPU; ``gpu``: MPS or CUDA)."""
    if accelerator not in ("auto", "gpu"):
        return accelerator
    kinds = ("tpu", "mps", "cuda") if accelerator == "auto" else ("mps", "cuda")
    return next((kind for kind in kinds if _available(kind)), "cpu" if accelerator == "auto" else "cuda")


def devices_problem(accelerator: str, devices: int | str) -> str:
    """Empty when this machine has the ``devices`` of ``accelerator`` Lightning's Trainer would ask for, else
    what it has. On the CPU ``devices`` counts processes (any number); -1 (all) and device indices are
    words of device kinds (GPUs), and a count or an index there must be present."""
    from lightning.pytorch.accelerators import AcceleratorRegistry

    wanted = parse_devices(devices) if isinstance(devices, str) else [devices]
    if isinstance(wanted, str):  # auto
        return ""
    indices = isinstance(devices, str) and "," in devices
    kind = _device_kind(accelerator)
    where = f"accelerator={accelerator}" + (f" (here: {kind})" if kind != accelerator else "")
    if kind == "cpu":
        if indices or wanted == [-1]:
            return f"{where}: devices counts CPU processes (a number >= 1); -1 (all) and indices are for GPUs"
        return ""
    present = int(AcceleratorRegistry[kind]["accelerator"].auto_device_count())
    if indices and max(wanted) >= present:
        return f"{where}: device index {max(wanted)} is not here; this machine has {present} {kind} device(s)"
    if not indices and wanted[0] > present:
        return f"{where}: this machine has {present} {kind} device(s), fewer than {wanted[0]}"
    return ""


def lightning_strategies() -> tuple[str, ...]:
    """``auto`` and the installed Lightning's registered strategies (``ddp``, ``ddp_spawn``, ``fsdp``...)."""
    from lightning.pytorch.strategies import StrategyRegistry

    return ("auto", *StrategyRegistry.available_strategies())


#: Lightning's documented precision words (Trainer ``precision=``), used when its private list moved.
DOCUMENTED_PRECISIONS: tuple[str, ...] = (
    "transformer-engine",
    "transformer-engine-float16",
    "16-true",
    "16-mixed",
    "bf16-true",
    "bf16-mixed",
    "32-true",
    "64-true",
    "64",
    "32",
    "16",
    "bf16",
)


def lightning_precisions() -> tuple[str, ...]:
    """The precision words the installed Lightning's Trainer takes, its short aliases (``16``) last.

    Lightning keeps them in private names; a release that moves them falls back to the words its
    documentation lists, so validation never breaks on an upgrade."""
    try:
        from lightning.fabric.connector import _PRECISION_INPUT_STR, _PRECISION_INPUT_STR_ALIAS
    except ImportError:
        return DOCUMENTED_PRECISIONS
    return (*typing.get_args(_PRECISION_INPUT_STR), *typing.get_args(_PRECISION_INPUT_STR_ALIAS))


def parse_devices(text: str) -> list[int] | str:
    """``devices`` given as text, read as Lightning reads it: ``auto``, a count (``"2"``; ``"-1"``: all) or
    device indices (``"0,1"``)."""
    if text.strip() == "auto":
        return "auto"
    try:
        wanted = [int(part) for part in text.split(",") if part] if "," in text else [int(text)]
    except ValueError:
        raise ValueError(
            f"devices: expected auto, a number of devices or device indices such as 0,1, got {text!r}"
        ) from None
    if "," in text and (not wanted or min(wanted) < 0 or len(set(wanted)) < len(wanted)):
        raise ValueError(f"devices: device indices are distinct numbers >= 0, got {text!r}")
    if "," not in text and not DEVICES.holds(wanted[0]):
        raise ValueError(f"devices: a number of devices is {DEVICES.describe()} (all), got {text!r}")
    return wanted


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
    #: Lightning's words, read from the installed Lightning only when one of them is given, so that a
    #: wrong one ends the run before any data is read (Lightning itself would name it at fit time)
    choices: ClassVar[dict[str, RegistryWords]] = {
        "accelerator": RegistryWords(lightning_accelerators),
        "strategy": RegistryWords(lightning_strategies),
        "precision": RegistryWords(lightning_precisions),
    }
    parsers: ClassVar[dict[str, Callable[[str], object]]] = {
        "devices": parse_devices,
        "accelerator": usable_accelerator,
    }

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
    def check_params(cls, params: Mapping[str, Any]) -> None:
        """More devices than this machine has (Lightning would say so after the features were computed).
        One device is always there, so Lightning is imported only for another number."""
        devices = params["devices"]
        if devices not in (1, "1", "auto"):
            problem = devices_problem(params["accelerator"], devices)
            if problem:
                raise ParamConflict("devices", devices, problem)

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
