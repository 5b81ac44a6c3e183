"""Plain-folder names: the folders say split and label, file names are the user's own.

``<machine>/train/<name>`` are normal training clips. Test clips lie in ``test/normal/`` and
``test/anomaly/`` (``abnormal/`` as in MIMII is read too), or loose in ``test/`` with a ``labels.csv``, or
unlabelled. There is one section, "00", and the group is 2022's, ``<machine>_section_00_test``.

Any file name is read. Clips that asdkit writes (the synthetic generator) are named
``section_XX_<domain>_NNNN.wav`` so that people can tell them apart; the label stays in the folder.
"""

from __future__ import annotations

import re

from asdkit.data.manifest import ANOMALY, NORMAL, SOURCE, TARGET, TEST, TRAIN
from asdkit.data.naming import dcase2022
from asdkit.data.naming.clipname import LABEL_WORDS, ClipName, number

SECTION = "00"
LABELS_FILE = "labels.csv"
#: Test sub-folders read as labels.
CLASS_DIRS: dict[str, int] = {"normal": NORMAL, "anomaly": ANOMALY, "abnormal": ANOMALY}
DIGITS = 4
NAME = re.compile(
    r"^section_(?P<section>\d+)_(?P<domain>source|target)_(?P<number>\d+)(?P<suffix>\.(?:wav|flac))$", re.I
)


def label_of_dir(name: str) -> int | None:
    """The label a test sub-folder stands for (case-insensitive), or None."""
    return CLASS_DIRS.get(name.lower())


def file_path(machine: str, split: str, label: int | None, name: str) -> str:
    """Where a clip called ``name`` lies: ``train/``, ``test/<label word>/``, or ``test/`` if unlabelled."""
    if split == TRAIN:
        return f"{machine}/{TRAIN}/{name}"
    if split != TEST:
        raise ValueError(f"split: must be train or test, got {split!r}")
    if label is None:
        return f"{machine}/{TEST}/{name}"
    return f"{machine}/{TEST}/{LABEL_WORDS[label]}/{name}"


def parse_name(name: str) -> ClipName | None:
    """The fields of a name asdkit wrote (section, domain, index), or None for any other name."""
    m = NAME.match(name)
    if m is None:
        return None
    return ClipName(m["section"], int(m["number"]), domain=m["domain"].lower(), suffix=m["suffix"])


def format_name(clip: ClipName) -> str:
    if clip.domain not in (SOURCE, TARGET):
        raise ValueError(f"domain: must be source or target, got {clip.domain!r}")
    return f"section_{clip.section}_{clip.domain}_{number(clip.index, DIGITS)}{clip.suffix}"


def clip_path(machine: str, clip: ClipName) -> str:
    """Where asdkit writes ``clip``: its name by :func:`format_name`, its label as the test folder."""
    return file_path(machine, clip.split, clip.label if clip.split == TEST else None, format_name(clip))


def group(machine: str) -> str:
    return dcase2022.group(machine, SECTION)
