"""Evaluation-set test names: anonymised, with no label (and from 2022 no domain) until ground truth says.

By year (``2022`` stands for 2022-2025, whose names did not change):

- 2020 ``<machine>/test/id_XX_NNNNNNNN.wav``: domain "source" (2020 had none), group ``<machine>_id_XX``;
- 2021 ``<machine>/{source,target}_test/section_XX_{source,target}_test_NNNN.wav``: the domain stays in
  the name, group ``<machine>_section_XX_<domain>_test``;
- 2022-2025 ``<machine>/test/section_XX_NNNN.wav``: domain "" until ground truth gives it, group
  ``<machine>_section_XX_test``.

Training clips of evaluation sets carry development names (:mod:`dcase2020`, :mod:`dcase2022`).
Parsed test names have split "test"; the full names behind them come from the official lists.
"""

from __future__ import annotations

import re

from asdkit.data.manifest import SOURCE, TARGET, TEST
from asdkit.data.naming import dcase2020, dcase2021, dcase2022
from asdkit.data.naming.clipname import ClipName, number

YEARS = (2020, 2021, 2022)
NAMES: dict[int, re.Pattern[str]] = {
    2022: re.compile(r"^section_(?P<section>\d+)_(?P<number>\d+)(?P<suffix>\.(?:wav|flac))$", re.I),
    2021: re.compile(
        r"^section_(?P<section>\d+)_(?P<domain>source|target)_test_(?P<number>\d+)(?P<suffix>\.(?:wav|flac))$",
        re.I,
    ),
    2020: re.compile(r"^id_(?P<section>\d+)_(?P<number>\d+)(?P<suffix>\.(?:wav|flac))$", re.I),
}
#: Folders below a machine's that hold evaluation test clips (2021: one per domain).
TEST_DIRS = (TEST, f"{SOURCE}_test", f"{TARGET}_test")


def parse_name(name: str) -> tuple[int, ClipName] | None:
    """``(year, fields)`` of an anonymised test name, or None when it is no evaluation-set name."""
    for year, pattern in NAMES.items():
        if m := pattern.match(name):
            domain = SOURCE if year == 2020 else (m.groupdict().get("domain") or "").lower()
            clip = ClipName(m["section"], int(m["number"]), None, domain, TEST, suffix=m["suffix"])
            return year, clip
    return None


def format_name(clip: ClipName, year: int) -> str:
    """The anonymised name of a test clip in ``year``'s evaluation set."""
    if year == 2020:
        return f"id_{clip.section}_{number(clip.index, dcase2020.DIGITS)}{clip.suffix}"
    digits = number(clip.index, dcase2021.DIGITS)
    if year == 2021:
        if clip.domain not in (SOURCE, TARGET):
            raise ValueError(f"domain: a 2021 evaluation name needs source or target, got {clip.domain!r}")
        return f"section_{clip.section}_{clip.domain}_test_{digits}{clip.suffix}"
    _check_year(year)
    return f"section_{clip.section}_{digits}{clip.suffix}"


def folder(year: int, domain: str = "") -> str:
    """``test``, or in 2021 ``<domain>_test``."""
    _check_year(year)
    return dcase2021.folder(TEST, domain) if year == 2021 else TEST


def clip_path(machine: str, clip: ClipName, year: int) -> str:
    return f"{machine}/{folder(year, clip.domain)}/{format_name(clip, year)}"


def group(year: int, machine: str, section: str, domain: str = "") -> str:
    """The submission group of an evaluation test clip, by the rules of its year."""
    _check_year(year)
    if year == 2020:
        return dcase2020.group(machine, section)
    if year == 2021:
        return dcase2021.group(machine, section, domain)
    return dcase2022.group(machine, section)


def _check_year(year: int) -> None:
    if year not in YEARS:
        raise ValueError(f"year: evaluation names come in {YEARS} (2022 stands for 2022-2025), got {year!r}")
