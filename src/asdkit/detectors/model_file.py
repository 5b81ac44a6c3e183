"""Checks of a model.json that parses as JSON but is not a model: each names the file and the field.

``Detector.load`` runs them before building anything, and wraps what the detector itself rebuilds from the
file (its saved state, its weights) so that a wrong value never surfaces as a bare KeyError or a torch
shape error.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from asdkit.errors import ModelError

#: Required top-level fields and the JSON type each must have.
REQUIRED: dict[str, tuple[type, ...]] = {
    "detector": (str,),
    "params": (dict,),
    "features": (dict,),
    "threshold": (int, float),
}
#: Optional fields and their JSON types.
OPTIONAL: dict[str, tuple[type, ...]] = {
    "state": (dict,),
    "history": (list,),
    "metadata": (dict,),
    "arrays": (list,),
}


def check_model_config(config: Any, config_path: Path) -> dict[str, Any]:
    """``config`` if its fields have the types a model needs; else a ModelError naming the first wrong one."""
    if not isinstance(config, dict):
        raise ModelError(f"{config_path}: expected a JSON object, got {_kind(config)}")
    for name, types in REQUIRED.items():
        if name not in config:
            raise ModelError(f"{config_path}: field {name!r} is missing")
        _check_type(config, name, types, config_path)
    for name, types in OPTIONAL.items():
        if name in config:
            _check_type(config, name, types, config_path)
    threshold = config["threshold"]
    refused = bool(config.get("threshold_refused"))  # a refusal to decide is +inf, and says why
    if isinstance(threshold, bool) or not (math.isfinite(threshold) or (refused and threshold == math.inf)):
        raise ModelError(f"{config_path}: field 'threshold' must be a finite number, got {threshold!r}")
    return config


def _check_type(config: dict[str, Any], name: str, types: tuple[type, ...], config_path: Path) -> None:
    value = config[name]
    if not isinstance(value, types) or isinstance(value, bool):
        wanted = " or ".join(_JSON_NAMES[t] for t in types)
        raise ModelError(f"{config_path}: field {name!r} must be {wanted}, got {_kind(value)} {value!r:.40}")


_JSON_NAMES = {str: "a string", dict: "an object", list: "a list", int: "a number", float: "a number"}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {str: "a string", dict: "an object", list: "a list", bool: "a boolean"}.get(
        type(value), "a number"
    )


def load_failure(config_path: Path, what: str, exc: BaseException) -> ModelError:
    """A ModelError for state or weights in the model folder that do not fit what model.json describes."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, KeyError):
        detail = f"field {detail} is missing"
    return ModelError(f"{config_path}: {what} does not fit this model ({detail[:300]})")
