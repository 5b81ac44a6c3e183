"""Completeness of a submission: every clip a ground truth or eval list names must have a score.

An official score over part of the test set is not the official score; without this check 16 of 200
clips still printed one. Missing clips are an error naming how many and the first few, unless the
user asks for a partial evaluation, which then says its coverage wherever the score is shown.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from asdkit.errors import DataError

log = logging.getLogger(__name__)

Key = tuple[str, str]
SHOWN = 3


@dataclass(frozen=True)
class Coverage:
    """How many of the clips a list names were scored."""

    listed: int
    scored: int
    source: str
    missing: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return self.scored >= self.listed

    @property
    def fraction(self) -> float:
        return self.scored / self.listed if self.listed else 1.0

    def __str__(self) -> str:
        return f"{self.scored} of {self.listed} clips listed in {self.source} scored ({self.fraction:.1%})"


def check_coverage(
    listed: Iterable[Key] | Mapping[Key, Key],
    scored: Iterable[Key],
    source: str,
    *,
    allow_partial: bool = False,
) -> Coverage:
    """Coverage of ``listed`` (machine, clip) keys by ``scored`` ones.

    A mapping names each listed key in messages by its value (a recording's anonymised name). Raises
    DataError when some are missing, unless ``allow_partial``, which logs a warning instead.
    """
    shown = listed if isinstance(listed, Mapping) else {k: k for k in listed}
    wanted = set(shown)
    have = set(scored) & wanted
    missing = sorted(shown[k] for k in wanted - have)
    coverage = Coverage(len(wanted), len(have), source, tuple(f"{m}/{n}" for m, n in missing))
    if not missing:
        return coverage
    examples = ", ".join(coverage.missing[:SHOWN]) + (", ..." if len(missing) > SHOWN else "")
    message = f"{len(missing)} of {len(wanted)} clips listed in {source} have no score, e.g. {examples}"
    if not allow_partial:
        raise DataError(f"{message}; score them all, or pass --allow-partial to evaluate the rest")
    log.warning("%s; evaluating the %d that have one (a partial evaluation)", message, len(have))
    return coverage
