"""One representative detector of every family, trained small, for the tests that must hold for each.

The default detector comes from the registry (whatever it is at the time); the others are the cheapest
member of their family. Fault and end-to-end tests parametrise over :data:`FAMILIES` with the family as
the test id, so a failure says which kind of detector broke the promise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from asdkit.detectors.registry import DEFAULT_DETECTOR, get_detector_class

#: family -> representative detector (``default``: the registry's default, resolved at import time)
FAMILIES: dict[str, str] = {
    "default": DEFAULT_DETECTOR,
    "reconstruction": "ae",
    "density": "made",
    "section": "resnet_section",
    "margin": "arcface",
    "bank": "knn",
}
FAMILY_IDS = list(FAMILIES)


def family_params(model: str) -> dict[str, Any]:
    """Settings that keep a tiny test run small and on the CPU (on top of ``--debug``'s)."""
    defaults = get_detector_class(model)().get_params()
    return {"accelerator": "cpu"} if "accelerator" in defaults else {}


def cli_params(model: str) -> list[str]:
    """:func:`family_params` as ``--param`` flags."""
    return [arg for key, value in family_params(model).items() for arg in ("--param", f"{key}={value}")]


def train_family(family: str, tree: Path, out: Path, cache: Path) -> Path:
    """The family's representative trained on ``tree`` as a ``--debug`` model directory; returns ``out``."""
    from asdkit import api

    model = FAMILIES[family]
    api.train(tree, out, model=model, params=family_params(model), debug=True, cache_dir=cache)
    return out
