"""Whether runs can be compared at all: same data, same machine types, same rules, full test sets.

A table ranks whatever it is given; an official score on pump and one on fan and valve, or one under the
2021 rules and one under the 2022 rules, are different measurements. ``asdkit compare`` still shows them,
with one warning per difference, so a user never ranks them unaware.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from asdkit.errors import DataError
from asdkit.run_result import read_config
from asdkit.rundir import SEEDS_JSON, seed_dir

log = logging.getLogger(__name__)

#: What must agree, with how it reads in the warning.
ASPECTS: dict[str, str] = {
    "data": "data",
    "machines": "machine types",
    "scheme": "evaluation rules",
    "debug": "--debug (a few test clips per set)",
}


def _config(path: Path) -> dict[str, Any]:
    """The config.json of a run, or of a multi-seed directory's first seed; {} when unreadable."""
    if (path / SEEDS_JSON).is_file():
        try:
            seeds = json.loads((path / SEEDS_JSON).read_text()).get("seeds") or []
        except (OSError, json.JSONDecodeError):
            return {}
        if not seeds:
            return {}
        path = seed_dir(path, int(seeds[0]))
    try:
        return read_config(path)
    except DataError:
        return {}


def _value(config: dict[str, Any], aspect: str) -> Any:
    value = config.get(aspect)
    if aspect == "scheme" and isinstance(value, dict):
        return value.get("scheme")
    if aspect == "machines" and isinstance(value, list):
        return sorted(value)
    return value


def comparability_warnings(paths: Sequence[Path | str]) -> list[str]:
    """One line per aspect on which the runs differ (``data``, machine types, rules, debug subsets)."""
    configs = [(Path(p), _config(Path(p))) for p in paths]
    lines = []
    for aspect, label in ASPECTS.items():
        seen: dict[str, list[str]] = {}
        for path, config in configs:
            if aspect in config:
                seen.setdefault(json.dumps(_value(config, aspect)), []).append(path.name or str(path))
        if len(seen) > 1:
            parts = "; ".join(f"{', '.join(names)}: {json.loads(v)}" for v, names in seen.items())
            lines.append(f"the runs differ in {label}, so their scores are not comparable ({parts})")
    return lines


def warn_if_not_comparable(paths: Sequence[Path | str]) -> list[str]:
    """Log :func:`comparability_warnings` as warnings; returns them."""
    lines = comparability_warnings(paths)
    for line in lines:
        log.warning("%s", line)
    return lines
