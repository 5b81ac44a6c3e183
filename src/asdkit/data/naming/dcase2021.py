"""DCASE2021+ development names: ``section_XX_{source,target}_{train,test}_{normal,anomaly}_NNNN.wav``.

The same name rule serves 2022-2025 (:mod:`~asdkit.data.naming.dcase2022`), which add an attribute tail
after the number; a name is parsed with or without one. 2021 keeps each domain's test clips in its own
folder (``source_test/``, ``target_test/``; a merged ``test/`` is read too) and scores every section and
domain on its own: the group is ``<machine>_section_XX_<domain>_test``.
"""

from __future__ import annotations

import re

from asdkit.data.manifest import SOURCE, TARGET, TEST, TRAIN
from asdkit.data.naming.clipname import ClipName, label_from_word, label_word, number

DIGITS = 4
#: The split word is optional because a few official full names (2024 RoboticArm) leave it out.
NAME = re.compile(
    r"^section_(?P<section>\d+)_(?P<domain>source|target)(?:_(?P<split>train|test))?"
    r"_(?P<label>normal|anomaly)_(?P<number>\d+)(?:_(?P<tail>.*?))?(?P<suffix>\.(?:wav|flac))$",
    re.I,
)
#: Folders a 2021 machine folder holds clips in: train, each domain's test, and a merged test.
FOLDERS = (TRAIN, f"{SOURCE}_test", f"{TARGET}_test", TEST)
_GROUP = re.compile(r"^(?P<machine>.+?)_section_(?P<section>\d+)_(?P<domain>source|target)_test$", re.I)


def parse_name(name: str) -> ClipName | None:
    """The fields of a 2021+ development name (any attribute tail kept verbatim), or None."""
    m = NAME.match(name)
    if m is None:
        return None
    return ClipName(
        section=m["section"],
        index=int(m["number"]),
        label=label_from_word(m["label"]),
        domain=m["domain"].lower(),
        split=(m["split"] or "").lower(),
        tail=m["tail"] or "",
        suffix=m["suffix"],
    )


def format_name(clip: ClipName) -> str:
    """The name of ``clip``; the split word is left out when ``clip.split`` is empty, as parsed."""
    if clip.domain not in (SOURCE, TARGET):
        raise ValueError(f"domain: a section name needs source or target, got {clip.domain!r}")
    words = ["section", clip.section, clip.domain]
    if clip.split:
        words.append(clip.split)
    words += [label_word(clip.label), number(clip.index, DIGITS)]
    if clip.tail:
        words.append(clip.tail)
    return "_".join(words) + clip.suffix


def folder(split: str, domain: str) -> str:
    """``train`` or ``<domain>_test``."""
    if split == TRAIN:
        return TRAIN
    if split == TEST and domain in (SOURCE, TARGET):
        return f"{domain}_test"
    raise ValueError(f"split/domain: expected train, or test with source/target, got {split!r}/{domain!r}")


def clip_path(machine: str, clip: ClipName) -> str:
    return f"{machine}/{folder(clip.split, clip.domain)}/{format_name(clip)}"


def group(machine: str, section: str, domain: str) -> str:
    """The 2021 submission group: one file per section and domain."""
    return f"{machine}_section_{section}_{domain}_test"


def parse_group(name: str) -> tuple[str, str, str] | None:
    """``(machine, section, domain)`` of a 2021 group, or None."""
    m = _GROUP.match(name)
    return (m["machine"], m["section"], m["domain"].lower()) if m else None
