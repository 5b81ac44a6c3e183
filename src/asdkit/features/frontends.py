"""Front ends by name, registered as lhotse registers its feature extractors: a name, a config dataclass and
the torch module that turns a waveform into the clip's array.

Detectors declare the front ends they read by name (``DetectorTags.inputs``); the feature cache keeps each
front end's arrays in a folder named by its configuration (:meth:`FrontEnd.cache_key`); the fit/score
bundle (:mod:`asdkit.detectors.inputs`) loads every declared one. Adding an input is one module in
``asdkit.features`` with a ``@register_front_end`` class (and its config), plus the detectors that declare
it in their tags.

A config must be a frozen dataclass with ``sample_rate`` and ``channel`` (how the audio is read).
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch

from asdkit.errors import AsdkitError, AudioError
from asdkit.features.config import FeatureConfig

#: The front end every detector reads (its config is the model's ``feature_config_``).
LOGMEL = "logmel"


class FrontEnd(ABC):
    """One front end with its configuration; subclasses set ``name``, ``config_type`` and ``module``."""

    name: ClassVar[str] = ""
    config_type: ClassVar[type[Any]]
    #: whether computing it is worth a GPU (a pretrained encoder): then it runs on one when there is one
    accelerated: ClassVar[bool] = False

    def __init__(self, config: Any) -> None:
        if not isinstance(config, self.config_type):
            wanted, got = self.config_type.__name__, type(config).__name__
            raise TypeError(f"{self.name}: expected a {wanted}, got {got}")
        self.config = config

    @classmethod
    def from_features(cls, features: FeatureConfig, **options: Any) -> FrontEnd:
        """The front end a detector reads beside the log-mel ``features``: the audio read alike (sample
        rate, channel), ``options`` (from the detector's parameters) on top of the config's defaults."""
        names = {f.name for f in fields(cls.config_type)}
        shared = {k: getattr(features, k) for k in ("sample_rate", "channel") if k in names}
        if shared.get("channel") == "both":  # a two-channel log-mel variant: others read the near channel
            shared["channel"] = 0
        return cls(cls.config_type(**{**shared, **options}))

    @abstractmethod
    def module(self, device: str = "cpu") -> torch.nn.Module:
        """A module mapping a waveform ``[T]`` (or a batch ``[B, T]`` of equal lengths) to float32 arrays."""

    def valid_shape(self, shape: tuple[int, ...]) -> bool:
        """Whether a stored array has the layout this configuration computes (else it is recomputed)."""
        check = getattr(self.config, "valid_shape", None)
        return bool(check(shape)) if callable(check) else len(shape) == 2

    def cache_key(self) -> str:
        """The cache folder of this configuration: the front end's name and a hash of its settings."""
        blob = json.dumps({"front_end": self.name, **asdict(self.config)}, sort_keys=True).encode()
        return f"{self.name}-" + hashlib.sha1(blob).hexdigest()[:12]

    def check_wave(self, wave: np.ndarray, audio: Path) -> None:
        """Raise AudioError for a waveform this front end cannot turn into an array (e.g. too short)."""
        if wave.size == 0:
            raise AudioError(f"{audio}: no samples")

    def preferred_device(self) -> str:
        """The GPU for an ``accelerated`` front end when there is one, else the CPU."""
        return "cuda" if self.accelerated and torch.cuda.is_available() else "cpu"

    def compute(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Arrays of in-memory waveforms (already at the config's rate), one clip at a time, on
        :meth:`preferred_device`."""
        device = self.preferred_device()
        module = self.module(device)
        with torch.inference_mode():
            return [
                module(torch.from_numpy(np.asarray(w, dtype=np.float32)).to(device)).cpu().numpy()
                for w in waves
            ]


_REGISTRY: dict[str, type[FrontEnd]] = {}
F = TypeVar("F", bound=type[FrontEnd])


def register_front_end(cls: F) -> F:
    """Class decorator: make ``cls`` available by its ``name`` (and by its config's type)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no front-end name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"front end {cls.name!r} is already registered by {_REGISTRY[cls.name].__name__}")
    _REGISTRY[cls.name] = cls
    return cls


def available_front_ends() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_front_end(name: str) -> type[FrontEnd]:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise AsdkitError(f"unknown front end {name!r}; available: {', '.join(sorted(_REGISTRY))}") from None


def front_end_for(config: Any) -> FrontEnd:
    """The registered front end whose config type ``config`` is."""
    _load_builtin()
    for cls in _REGISTRY.values():
        if type(config) is cls.config_type:
            return cls(config)
    raise AsdkitError(f"no front end computes a {type(config).__name__}")


def _load_builtin() -> None:
    """Import every module of ``asdkit.features`` once, so each registers its front ends by itself."""
    import importlib
    import pkgutil

    import asdkit.features as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
