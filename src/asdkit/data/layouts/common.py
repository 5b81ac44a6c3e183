"""Pieces every layout shares: cached directory listings and the official attribute tables.

Scanning never opens audio: everything works on names (the rules are in :mod:`asdkit.data.naming`), so
scanning a 30,000-clip set is fast.
"""

from __future__ import annotations

import csv
import errno
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from asdkit.data.manifest import Clip

# Loose files scored outside a layout (api, service) take their section from the name this way.
from asdkit.data.naming import section_from_name as section_from_name

log = logging.getLogger(__name__)

WAV_SUFFIX = ".wav"
#: Audio files a tree is read for (soundfile decodes both).
AUDIO_SUFFIXES = (".wav", ".flac")
#: Folder names that hold clips directly below a machine folder (any year).
SPLIT_DIR_NAMES = ("train", "test", "source_test", "target_test")


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
