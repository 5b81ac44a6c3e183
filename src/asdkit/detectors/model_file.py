"""Checks of a model.json that parses as JSON but is not a model: each names the file and the field.

``Detector.load`` runs them before building anything, and wraps what the detector itself rebuilds from the
file (its saved state, its weights) so that a wrong value never surfaces as a bare KeyError or a torch
shape error.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from pathlib import Path
from typing import Any

from asdkit.errors import ModelError

log = logging.getLogger(__name__)

#: Required top-level fields and the JSON type each must have.
REQUIRED: dict[str, tuple[type, ...]] = {
    "detector": (str,),
    "params": (dict,),
    "features": (dict,),
}
#: Optional fields and their JSON types.
OPTIONAL: dict[str, tuple[type, ...]] = {
    "state": (dict,),
    "history": (list,),
    "metadata": (dict,),
    "arrays": (list,),
    "inputs": (dict,),
    "sample_rate": (int,),
    "checksums": (dict,),
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
    for name, digest in config.get("checksums", {}).items():
        if not isinstance(digest, str) or len(digest) != 64:
            raise ModelError(f"{config_path}: field 'checksums.{name}' must be a sha256 hex digest")
    if "threshold" not in config:
        raise ModelError(f"{config_path}: field 'threshold' is missing")
    threshold = config["threshold"]
    # a refusal to decide is null (strict JSON has no +inf; read back as +inf), and says why
    if threshold is None and config.get("threshold_refused"):
        return config
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not math.isfinite(threshold):
        raise ModelError(f"{config_path}: field 'threshold' must be a finite number, got {threshold!r}")
    return config


def model_threshold(config: dict[str, Any]) -> float:
    """A checked model.json's threshold: +inf where it is null (the detector refused to decide)."""
    threshold = config["threshold"]
    return math.inf if threshold is None else float(threshold)


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


def sha256_of(path: Path) -> str:
    """The sha256 hex digest of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verified_bytes(file: Path, config: dict[str, Any], config_path: Path) -> bytes:
    """The bytes of a weights or arrays file, checked against the sha256 that model.json records for it.

    A flipped byte inside tensor data still loads as a valid file and scores differently without a word;
    the checksum turns it into an error naming the file. A model saved before checksums is read unchecked,
    which is said once per process.
    """
    data = file.read_bytes()
    checksums = config.get("checksums")
    if checksums is None:
        _note_unverified(config_path)
        return data
    expected = checksums.get(file.name)
    if expected is None:
        raise ModelError(f"{file}: model.json records no checksum for it (the file does not belong here)")
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ModelError(
            f"{file}: checksum mismatch (sha256 {actual[:16]}..., model.json records {expected[:16]}...): "
            "the file was damaged or changed after saving; retrain or restore the model folder"
        )
    return data


_unverified_noted = threading.Event()


def _note_unverified(config_path: Path) -> None:
    if not _unverified_noted.is_set():
        _unverified_noted.set()
        log.warning(
            "%s: saved without checksums (before asdkit recorded them): its weights and arrays are loaded "
            "unverified; save the model again to add them",
            config_path,
        )
