"""One registry of detectors: a new detector is one module in this package (or a family folder) with one
``@register``-ed class."""

from __future__ import annotations

from typing import TypeVar

from asdkit.errors import AsdkitError

#: The detector of `asdkit run`/`train`/`demo` without ``--model``: best on average over the measured data
#: sets, nearly seed-free, seconds to train (README, "The default detector"); ``ensemble`` without members
#: is :data:`asdkit.detectors.ensemble.DEFAULT_MEMBERS` (weighted by ``DEFAULT_WEIGHTS`` if several).
DEFAULT_DETECTOR = "ensemble"

_REGISTRY: dict[str, type] = {}
D = TypeVar("D", bound=type)


def register(cls: D) -> D:
    name = getattr(cls, "name", "")
    if not name:
        raise ValueError(f"{cls.__name__} has no registry name")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"detector name {name!r} is already registered by {_REGISTRY[name].__name__}")
    _REGISTRY[name] = cls
    return cls


def available_detectors() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_detector_class(name: str) -> type:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise AsdkitError(f"unknown detector {name!r}; available: {', '.join(sorted(_REGISTRY))}") from None


def create_detector(name: str, **params: object) -> object:
    cls = get_detector_class(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise AsdkitError(f"detector {name!r}: bad parameters ({exc})") from None


#: Modules that hold no detector; ``training`` imports Lightning, which the scoring path must not load.
_NOT_DETECTORS = {"training"}


def _load_builtin() -> None:
    """Import every module of ``asdkit.detectors`` and its family folders once, so each registers its classes
    by itself."""
    import importlib
    import pkgutil

    import asdkit.detectors as package

    for module in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
        if module.name.rsplit(".", 1)[-1] not in _NOT_DETECTORS:
            importlib.import_module(module.name)
