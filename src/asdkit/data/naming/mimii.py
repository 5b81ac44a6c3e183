"""Raw MIMII paths: ``<snr>_<machine>/<machine>/id_XX/{normal,abnormal}/NNNNNNNN.wav``.

Everything is in the folders: the file name is only the clip's number. In a manifest a MIMII clip takes
the name DCASE2020 gave the same recording (``{normal,anomaly}_id_XX_NNNNNNNN.wav``), so its scores go
in 2020's files.
"""

from __future__ import annotations

import re

from asdkit.data.manifest import ANOMALY, NORMAL, SOURCE
from asdkit.data.naming import dcase2020
from asdkit.data.naming.clipname import ClipName, number

#: Class folders, by name.
CLASS_DIRS: dict[str, int] = {"normal": NORMAL, "abnormal": ANOMALY}
ID_DIR = re.compile(r"^id_(?P<section>\d+)$")
RAW_NAME = re.compile(r"^(?P<number>\d+)\.(?:wav|flac)$", re.I)


def id_dir(section: str) -> str:
    return f"id_{section}"


def section_of_dir(name: str) -> str | None:
    """The machine id an ``id_XX`` folder stands for, or None."""
    m = ID_DIR.match(name)
    return m["section"] if m else None


def class_dir(label: int) -> str:
    return next(name for name, value in CLASS_DIRS.items() if value == label)


def raw_name(index: int) -> str:
    return f"{number(index, dcase2020.DIGITS)}.wav"


def index_of_raw_name(name: str) -> int | None:
    """The clip number of a raw MIMII file name, or None when the name is not a number."""
    m = RAW_NAME.match(name)
    return int(m["number"]) if m else None


def clip_path(snr: str, machine: str, section: str, label: int, index: int) -> str:
    """Where one raw recording lies under a MIMII root."""
    return f"{snr}_{machine}/{machine}/{id_dir(section)}/{class_dir(label)}/{raw_name(index)}"


def clip_name(section: str, label: int, index: int) -> str:
    """The DCASE2020 name the recording gets in a manifest."""
    return dcase2020.format_name(ClipName(section, index, label, SOURCE))
