"""DCASE2020 names: ``{normal,anomaly}_id_XX_NNNNNNNN.wav`` in ``<machine>/{train,test}/``.

2020 had no domains (every clip counts as source) and no split word in names (the folder says it); the
section is the machine id. Test clips of one id share the submission group ``<machine>_id_XX``.
"""

from __future__ import annotations

import re

from asdkit.data.manifest import SOURCE, TEST, TRAIN
from asdkit.data.naming.clipname import ClipName, label_from_word, label_word, number

DIGITS = 8
NAME = re.compile(
    r"^(?P<label>normal|anomaly)_id_(?P<section>\d+)_(?P<number>\d+)(?P<suffix>\.(?:wav|flac))$", re.I
)

_GROUP = re.compile(r"^(?P<machine>.+?)_id_(?P<section>\d+)$", re.I)


def parse_name(name: str) -> ClipName | None:
    """The fields of a 2020 development name (domain "source", split unsaid), or None."""
    m = NAME.match(name)
    if m is None:
        return None
    return ClipName(
        section=m["section"],
        index=int(m["number"]),
        label=label_from_word(m["label"]),
        domain=SOURCE,
        suffix=m["suffix"],
    )


def format_name(clip: ClipName) -> str:
    return f"{label_word(clip.label)}_id_{clip.section}_{number(clip.index, DIGITS)}{clip.suffix}"


def folder(split: str) -> str:
    """The folder below the machine's that holds clips of ``split``."""
    if split not in (TRAIN, TEST):
        raise ValueError(f"split: must be train or test, got {split!r}")
    return split


def clip_path(machine: str, clip: ClipName) -> str:
    """``<machine>/<split>/<name>``: where the clip lies under a 2020 root."""
    return f"{machine}/{folder(clip.split)}/{format_name(clip)}"


def group(machine: str, section: str) -> str:
    """The 2020 submission group: ``anomaly_score_<machine>_id_XX.csv``."""
    return f"{machine}_id_{section}"


def parse_group(name: str) -> tuple[str, str] | None:
    """``(machine, section)`` of a 2020 group, or None."""
    m = _GROUP.match(name)
    return (m["machine"], m["section"]) if m else None
