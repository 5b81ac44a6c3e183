"""Pieces every layout shares: cached directory listings, DCASE file-name patterns and attribute parsing.

Scanning never opens audio: everything here works on names, so scanning a 30,000-clip set is fast.
"""

from __future__ import annotations

import csv
import errno
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from asdkit.data.manifest import ANOMALY, NORMAL, Clip

log = logging.getLogger(__name__)

WAV_SUFFIX = ".wav"
#: Audio files a tree is read for (soundfile decodes both).
AUDIO_SUFFIXES = (".wav", ".flac")
#: Folder names that hold clips directly below a machine folder (any year).
SPLIT_DIR_NAMES = ("train", "test", "source_test", "target_test")

#: 2020 development names: ``normal_id_00_00000000.wav``.
DCASE2020_NAME = re.compile(
    r"^(?P<label>normal|anomaly)_id_(?P<section>\d+)_(?P<number>\d+)\.(?:wav|flac)$", re.I
)
#: 2021+ development names, with the attribute tail of 2022+ (optional) and the split word optional
#: because a few official full names (2024 RoboticArm) leave it out.
SECTION_NAME = re.compile(
    r"^section_(?P<section>\d+)_(?P<domain>source|target)(?:_(?P<split>train|test))?"
    r"_(?P<label>normal|anomaly)_(?P<number>\d+)(?:_(?P<tail>.*?))?\.(?:wav|flac)$",
    re.I,
)
#: Anonymised evaluation names: 2020 ``id_01_00000000.wav``.
EVAL2020_NAME = re.compile(r"^id_(?P<section>\d+)_(?P<number>\d+)\.(?:wav|flac)$", re.I)
#: 2021 ``section_03_source_test_0000.wav`` (the domain stays visible).
EVAL2021_NAME = re.compile(
    r"^section_(?P<section>\d+)_(?P<domain>source|target)_test_(?P<number>\d+)\.(?:wav|flac)$", re.I
)
#: 2022-2025 ``section_00_0000.wav``.
EVAL2022_NAME = re.compile(r"^section_(?P<section>\d+)_(?P<number>\d+)\.(?:wav|flac)$", re.I)

#: The section (or 2020 machine id) anywhere in a DCASE-style name, for loose files scored outside a layout.
_ANY_SECTION = re.compile(r"(?:^|_)(?:section|id)_(?P<section>\d+)_", re.I)

_GLUED = re.compile(r"^(?P<key>[A-Za-z][A-Za-z-]*?)(?P<value>\d+(?:\.\d+)?)$")


def section_from_name(name: str) -> str | None:
    """The section a DCASE file name carries (``section_01_...``, ``id_02_...``), or None."""
    match = _ANY_SECTION.search(name)
    return match.group("section") if match else None


def label_from_word(word: str) -> int:
    return ANOMALY if word.lower() == "anomaly" else NORMAL


def parse_attribute_tail(tail: str | None) -> dict[str, str]:
    """Key/value pairs from a name tail such as ``car_C2_spd_34V_mic_1`` (never raises).

    Tokens pair up as key, value. Tails that do not pair cleanly are kept rather than lost: a key glued
    to its number (``spd1000``, ``weight15``) is split, and a token left without a value is stored with an
    empty value. ``noAttribute`` (2024/2025 evaluation sets) means no attributes.
    """
    if not tail:
        return {}
    tokens = [t for t in tail.split("_") if t]
    if not tokens or tokens == ["noAttribute"]:
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


def read_attributes_csv(path: Path) -> dict[str, dict[str, str]]:
    """The official ``attributes_XX.csv`` of a machine folder, keyed by file name (basename).

    Rows are ``file_name, key1, value1, key2, value2, ...`` (2022: ``d1p,d1v,...`` headers, some rows
    shorter than the header, a trailing column with the full name). Cells that are file names are skipped.
    """
    out: dict[str, dict[str, str]] = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("%s: cannot read attributes (%s); attributes come from file names only", path, exc)
        return out
    for row in rows:
        cells = [c.strip() for c in row]
        if not cells or not cells[0].lower().endswith(WAV_SUFFIX):
            continue  # header or blank line
        values = [c for c in cells[1:] if not c.lower().endswith(WAV_SUFFIX)]
        pairs = {k: v for k, v in zip(values[0::2], values[1::2], strict=False) if k}
        out[os.path.basename(cells[0].replace("\\", "/"))] = pairs
    return out


def machine_attributes(machine_dir: Path) -> dict[str, dict[str, str]]:
    """All ``attributes_*.csv`` tables of one machine folder merged (later sections do not collide)."""
    merged: dict[str, dict[str, str]] = {}
    for path in sorted(machine_dir.glob("attributes_*.csv")):
        if not path.name.startswith("."):
            merged.update(read_attributes_csv(path))
    return merged


class Tree:
    """Cached listings of one dataset root, so that trying every layout lists each folder once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._files: dict[Path, list[Path]] = {}
        self._dirs: dict[Path, list[Path]] = {}
        self._all: dict[Path, list[Path]] = {}
        #: audio names that cannot be opened (dangling symlinks, symlink loops), with the reason
        self.broken: dict[Path, str] = {}

    def _list(self, folder: Path) -> None:
        files: list[Path] = []
        dirs: list[Path] = []
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            entries = []
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                if e.is_dir():
                    dirs.append(Path(e.path))
                elif e.name.lower().endswith(AUDIO_SUFFIXES):
                    if e.is_file():
                        files.append(Path(e.path))
                    else:
                        self.broken[Path(e.path)] = _why_unreadable(Path(e.path))
            except OSError:
                if e.name.lower().endswith(AUDIO_SUFFIXES):
                    self.broken[Path(e.path)] = _why_unreadable(Path(e.path))
                continue
        self._files[folder] = files
        self._dirs[folder] = dirs

    def wavs(self, folder: Path) -> list[Path]:
        """Visible ``.wav`` files directly in ``folder`` (sorted)."""
        if folder not in self._files:
            self._list(folder)
        return self._files[folder]

    def subdirs(self, folder: Path) -> list[Path]:
        """Visible sub-folders of ``folder`` (sorted)."""
        if folder not in self._dirs:
            self._list(folder)
        return self._dirs[folder]

    def all_wavs(self, folder: Path) -> list[Path]:
        """Every visible ``.wav`` below ``folder``, at any depth (hidden folders are not entered)."""
        if folder not in self._all:
            out = list(self.wavs(folder))
            for sub in self.subdirs(folder):
                out.extend(self.all_wavs(sub))
            self._all[folder] = out
        return self._all[folder]

    def child(self, folder: Path, name: str) -> Path | None:
        """The sub-folder called ``name`` (exact spelling), if present."""
        for d in self.subdirs(folder):
            if d.name == name:
                return d
        return None


def _why_unreadable(path: Path) -> str:
    """Why an audio name in a tree is not a file: a dangling symlink, a symlink loop, or something else."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return f"dangling symlink to {os.readlink(path)}" if path.is_symlink() else "vanished"
    except OSError as exc:
        return "symlink loop" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
    return "not a regular file"


@dataclass
class MachineScan:
    """What one layout made of one machine folder: the clips it understood and the wavs it did not."""

    clips: list[Clip] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


def finish_machine(tree: Tree, machine_dir: Path, clips: list[Clip]) -> MachineScan:
    """Every wav below the machine folder that no clip accounts for counts as skipped."""
    taken = {c.path for c in clips}
    skipped = [p for p in tree.all_wavs(machine_dir) if p not in taken]
    return MachineScan(clips, skipped)
