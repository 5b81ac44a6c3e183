"""One registry of detectors: a new detector is one module with one ``@register``-ed class."""

from __future__ import annotations

from typing import TypeVar

from asdkit.errors import AsdkitError

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


def _load_builtin() -> None:
    import asdkit.detectors.autoencoder  # noqa: F401  (registers its detectors)
