"""Audio files named by the user (files or folders of them), as ``score`` and ``run`` take them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from asdkit.errors import DataError

log = logging.getLogger(__name__)


def expand_wavs(paths: Sequence[Path | str]) -> list[Path]:
    """The .wav/.flac files of ``paths``: files as given, folders searched (hidden files left out)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(
                q
                for q in p.rglob("*")
                if q.suffix.lower() in (".wav", ".flac") and not q.name.startswith(".")
            )
            if not found:
                raise DataError(f"{p}: folder holds no .wav or .flac files")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"{p}: no such file or folder")
    if not files:
        raise DataError("no audio files given")
    return files


def truncated_clips(paths: Sequence[Path | str]) -> list[tuple[Path, str]]:
    """(path, reason) of the wav files whose header declares more frames than they hold, each named in a
    warning: they are scored as the shorter clips they are, but a result built on them should say so."""
    from asdkit.data.audio import wav_truncation

    found = [(Path(p), why) for p in paths if (why := wav_truncation(p)) is not None]
    for _, why in found:
        log.warning("%s", why)
    if found:
        log.warning(
            "%d of %d clip(s) are truncated (scored as the shorter clips they hold)", len(found), len(paths)
        )
    return found
