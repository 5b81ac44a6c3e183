"""DCASE2022-2025 development names: 2021's name rule plus the operating condition after the number.

``section_XX_{source,target}_{train,test}_{normal,anomaly}_NNNN_<attributes>.wav`` in
``<machine>/{train,test}/``. Where the years differ:

- the tail is ``key_value`` pairs (``car_C2_spd_34V_mic_1``, ``vel_730_ac_0.11``); 2024 and 2025 write
  ``noAttribute`` for machines without any, and some tails do not pair cleanly (see
  :func:`~asdkit.data.naming.clipname.parse_attribute_tail`);
- a few official 2024 names (RoboticArm) leave out the split word;
- evaluation sets anonymise test names (:mod:`~asdkit.data.naming.evalset`).

One test set per section holds both domains, so the group is ``<machine>_section_XX_test``.
"""

from __future__ import annotations

import re

from asdkit.data.naming.clipname import ClipName
from asdkit.data.naming.dcase2020 import folder  # the same train/ and test/ folders as 2020
from asdkit.data.naming.dcase2021 import DIGITS, NAME, format_name, parse_name

__all__ = ["DIGITS", "NAME", "clip_path", "folder", "format_name", "group", "parse_group", "parse_name"]

_GROUP = re.compile(r"^(?P<machine>.+?)_section_(?P<section>\d+)_test$", re.I)


def clip_path(machine: str, clip: ClipName) -> str:
    """``<machine>/<split>/<name>``."""
    return f"{machine}/{folder(clip.split)}/{format_name(clip)}"


def group(machine: str, section: str) -> str:
    """The 2022+ submission group: one file per section, both domains together."""
    return f"{machine}_section_{section}_test"


def parse_group(name: str) -> tuple[str, str] | None:
    """``(machine, section)`` of a 2022+ group, or None."""
    m = _GROUP.match(name)
    return (m["machine"], m["section"]) if m else None
