"""What a clip's file name can say, shared by every layout's naming rules.

A :class:`ClipName` holds the fields a DCASE-style name carries; each layout module
(:mod:`~asdkit.data.naming.dcase2020`, ...) turns names into ClipNames and back. Fields a layout's
names do not carry keep their empty value, so one ClipName can be written in several layouts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from asdkit.data.manifest import ANOMALY, NORMAL

#: The label words of development names, by label.
LABEL_WORDS: dict[int, str] = {NORMAL: "normal", ANOMALY: "anomaly"}
#: The tail of 2024/2025 names whose machine has no attributes.
NO_ATTRIBUTE = "noAttribute"

_GLUED = re.compile(r"^(?P<key>[A-Za-z][A-Za-z-]*?)(?P<value>\d+(?:\.\d+)?)$")
#: The section (or 2020 machine id) anywhere in a DCASE-style name, for loose files scored outside a layout.
_ANY_SECTION = re.compile(r"(?:^|_)(?:section|id)_(?P<section>\d+)_", re.I)


@dataclass(frozen=True)
class ClipName:
    """The fields of one clip's file name.

    ``section`` is written as it appears (``"00"``; the machine id in 2020). ``index`` is the clip's
    number, written with the layout's width (8 digits in 2020, 4 from 2021). ``label`` is None where the
    name does not say (anonymised evaluation names); ``domain`` and ``split`` are ``""`` where the name
    does not say. ``tail`` is the text after the number in 2022+ names, the attributes
    (``car_C2_spd_34V_mic_1``, ``noAttribute``), kept verbatim so that a name parses and formats back
    unchanged; :attr:`attributes` reads it as key/value pairs.
    """

    section: str
    index: int
    label: int | None = None
    domain: str = ""
    split: str = ""
    tail: str = ""
    suffix: str = ".wav"

    @property
    def attributes(self) -> dict[str, str]:
        return parse_attribute_tail(self.tail)


def label_word(label: int | None) -> str:
    """``normal`` or ``anomaly``; a name needs a label to carry one."""
    if label not in LABEL_WORDS:
        raise ValueError(f"label: a development name needs 0 (normal) or 1 (anomaly), got {label!r}")
    return LABEL_WORDS[label]


def label_from_word(word: str) -> int:
    return ANOMALY if word.lower() == "anomaly" else NORMAL


def number(index: int, digits: int) -> str:
    """A clip number as names write it: zero-padded to ``digits``."""
    if index < 0:
        raise ValueError(f"index: must be non-negative, got {index!r}")
    return f"{index:0{digits}d}"


def attribute_tail(pairs: Mapping[str, object]) -> str:
    """The name tail of attribute pairs, ``key_value_key_value`` (``""`` for none)."""
    return "_".join(f"{k}_{v}" for k, v in pairs.items())


def parse_attribute_tail(tail: str | None) -> dict[str, str]:
    """Key/value pairs from a name tail such as ``car_C2_spd_34V_mic_1`` (never raises).

    Tokens pair up as key, value. Tails that do not pair cleanly are kept rather than lost: a key glued
    to its number (``spd1000``, ``weight15``) is split, and a token left without a value is stored with an
    empty value. ``noAttribute`` (2024/2025 evaluation sets) means no attributes.
    """
    if not tail:
        return {}
    tokens = [t for t in tail.split("_") if t]
    if not tokens or tokens == [NO_ATTRIBUTE]:
        return {}
    out: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        key = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        glued = _GLUED.match(key)
        # "spd1000_BckgC": a key glued to its number is split when plain pairing would leave a token over
        # or would pair it with something that is no value.
        if glued and ((len(tokens) - i) % 2 == 1 or not _looks_like_value(following)):
            out.setdefault(glued["key"], glued["value"])
            i += 1
        elif following:
            out.setdefault(key, following)
            i += 2
        else:
            out.setdefault(key, "")
            i += 1
    return out


def _looks_like_value(token: str) -> bool:
    """Values in DCASE tails are short codes or numbers: ``C2``, ``34V``, ``0.11``, ``W``, ``05``, ``Mb``."""
    return token != "" and re.fullmatch(r"[A-Z]{0,2}\d*(?:\.\d+)?[A-Za-z]{0,2}", token) is not None


def section_from_name(name: str) -> str | None:
    """The section a DCASE file name carries (``section_01_...``, ``id_02_...``), or None."""
    match = _ANY_SECTION.search(name)
    return match.group("section") if match else None
