"""Checkpoint paths that pass the check before any work (a file, or a folder with config.json, there to be
read; nothing is loaded), for tests that validate every detector's parameters."""

from __future__ import annotations

from pathlib import Path

from asdkit.detectors.registry import get_detector_class
from asdkit.features.frontends import get_front_end
from asdkit.models.encoders import available_encoders, get_encoder_class


def readable_checkpoints(root: Path) -> dict[str, str]:
    """Per registered encoder, a path under ``root`` its checkpoint check accepts."""
    (root / "weights.pt").write_bytes(b"0")
    (root / "folder").mkdir(exist_ok=True)
    (root / "folder" / "config.json").write_text("{}")
    candidates = [root / "weights.pt", root / "folder"]
    return {
        name: str(next(p for p in candidates if not get_encoder_class(name).checkpoint_problem(p)))
        for name in available_encoders()
    }


def with_checkpoint(name: str, params: dict[str, object], files: dict[str, str]) -> dict[str, object]:
    """``params`` and, where they make detector ``name`` read an encoder (finetune's, an encoder's input),
    a checkpoint of that encoder from ``files``."""
    cls = get_detector_class(name)
    if "checkpoint" not in cls.parameters():
        return params
    every = {k: p.default for k, p in cls.parameters().items()} | params
    encoder = every.get("encoder") or getattr(get_front_end(str(every["input"])), "encoder", None)
    return {**params, "checkpoint": files[str(encoder)]} if encoder else params
