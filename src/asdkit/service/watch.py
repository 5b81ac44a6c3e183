"""The folder watcher: score each new recording that lands in a folder, one JSON line per clip in a log.

Its position is the log itself: a clip is done when the log holds a line for its (path, size, mtime), so
a restart neither re-scores nor skips anything, and a file replaced under the same name is scored again.
A line is appended with one write and fsynced; a torn last line (a crash mid-write) is cut off at start,
and that clip is scored again. A file is read only when it is settled: its mtime is at least ``settle``
seconds old and its size and mtime equal those of the previous look. Temporary names (``.part``,
``.tmp``, hidden files...) are never read. Unreadable clips get an ``error`` line and are counted; a clip
no model can be chosen for (several models, no ``machine``, no folder named like one) is named in a
warning and left out of the log, so that a restart with ``machine`` scores it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asdkit.data.audio import wav_truncation
from asdkit.errors import AsdkitError, DataError
from asdkit.service.models import ServedModel

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = frozenset({".wav", ".flac"})
TEMP_SUFFIXES = frozenset({".tmp", ".part", ".partial", ".crdownload", ".download", ".swp"})

#: Seconds a settled but truncated wav is waited for (a writer may pause) before it gets an error line.
TRUNCATED_WAIT = 60.0
Key = tuple[str, int, int]  # path relative to the folder, size, mtime in ns


@dataclass
class WatchCounts:
    scored: int = 0
    failed: int = 0
    waiting: int = 0  # seen but not settled yet (still being written, or just arrived)
    unrouted: int = 0  # no model chosen for them (several models, no --machine, no folder name)


class FolderWatcher:
    """Polls ``folder`` (recursively) and appends a line per settled, not yet logged clip to ``log_path``."""

    def __init__(
        self,
        folder: Path,
        models: dict[str, ServedModel],
        log_path: Path,
        machine: str | None = None,
        settle: float = 2.0,
        truncated_wait: float = TRUNCATED_WAIT,
    ) -> None:
        if not folder.is_dir():
            raise DataError(f"{folder}: no such folder to watch")
        if settle < 0:
            raise AsdkitError(f"--settle must not be negative, got {settle}")
        if machine is not None and machine not in models:
            raise AsdkitError(f"no model for machine {machine!r}; the model has: {', '.join(sorted(models))}")
        self.folder = folder
        self.models = models
        self.log_path = log_path
        self.machine = machine
        self.settle = settle
        self.done: set[Key] = read_log_keys(log_path)
        self._last_look: dict[Path, tuple[int, int]] = {}
        self.truncated_wait = truncated_wait
        self._truncated_since: dict[Path, float] = {}  # settled but truncated: maybe still being written
        self._gave_up: dict[Path, str] = {}
        # clips no model could be chosen for: a setup error, not the clip's, so kept out of the log (a
        # restart with --machine scores them) and only remembered here, so that they are named once
        self._unrouted: set[Key] = set()

    def candidates(self) -> Iterator[Path]:
        for path in self.folder.rglob("*"):
            name = path.name
            if name.startswith((".", "~")) or path.suffix.lower() in TEMP_SUFFIXES:
                continue
            if path.suffix.lower() in AUDIO_SUFFIXES and path.is_file():
                yield path

    def scan(self, now: float | None = None) -> tuple[list[tuple[Path, Key]], int]:
        """Settled clips not yet logged (oldest first), and how many others are still settling."""
        now = time.time() if now is None else now
        ready: list[tuple[float, Path, Key]] = []
        waiting = 0
        seen: dict[Path, tuple[int, int]] = {}
        for path in self.candidates():
            try:
                st = path.stat()
            except FileNotFoundError:  # removed between listing and looking
                continue
            key = (path.relative_to(self.folder).as_posix(), st.st_size, st.st_mtime_ns)
            if key in self.done or key in self._unrouted:
                continue
            look = (st.st_size, st.st_mtime_ns)
            seen[path] = look
            if self._last_look.get(path) == look and now - st.st_mtime >= self.settle:
                why = wav_truncation(path)
                if why is not None:
                    since = self._truncated_since.setdefault(path, now)
                    if now - since < self.truncated_wait:
                        waiting += 1  # a writer that pauses: wait for the rest
                        continue
                    self._gave_up[path] = f"{why} (still so after {now - since:.0f} s)"
                ready.append((st.st_mtime, path, key))
            else:
                waiting += 1
        self._last_look = seen
        return [(path, key) for _, path, key in sorted(ready)], waiting

    def process(self, ready: list[tuple[Path, Key]], counts: WatchCounts) -> None:
        from asdkit.detectors.saved import machine_for
        from asdkit.service.models import score_audio

        detectors = {name: m.detector for name, m in self.models.items()}
        for path, key in ready:
            record: dict[str, Any] = {"time": _now(), "file": key[0], "size": key[1], "mtime_ns": key[2]}
            try:
                name = machine_for(path, detectors, self.machine)
            except AsdkitError as exc:
                self._unrouted.add(key)
                counts.unrouted += 1
                log.warning("%s", exc)
                continue
            try:
                if path in self._gave_up:
                    raise DataError(self._gave_up.pop(path))
                model = self.models[name]
                result = score_audio(model, str(path), path.name)
                record |= {k: result[k] for k in ("score", "decision", "threshold", "model", "model_version")}
                if "note" in result:
                    record["note"] = result["note"]
                counts.scored += 1
            except AsdkitError as exc:
                record["error"] = str(exc)
                counts.failed += 1
                log.warning("%s", exc)
            append_line(self.log_path, record)
            self.done.add(key)

    def run(
        self,
        interval: float = 5.0,
        once: bool = False,
        on_pass: Callable[[WatchCounts], None] | None = None,
    ) -> WatchCounts:
        """Poll every ``interval`` seconds until interrupted; ``once``: settle, process what is there, end."""
        counts = WatchCounts()
        if once:
            self.scan()
            time.sleep(self.settle)
            ready, counts.waiting = self.scan()
            self.process(ready, counts)
            return counts
        while True:
            ready, counts.waiting = self.scan()
            if ready:
                self.process(ready, counts)
                if on_pass is not None:
                    on_pass(counts)
            time.sleep(interval)


def read_log_keys(log_path: Path) -> set[Key]:
    """The clips a log already holds; a torn last line is cut off (its clip will be scored again)."""
    if not log_path.exists():
        return set()
    data = log_path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        log.warning("%s: cutting off an incomplete last line (an interrupted write)", log_path)
        with open(log_path, "r+b") as f:
            f.truncate(end)
            os.fsync(f.fileno())
    keys: set[Key] = set()
    for number, line in enumerate(data[:end].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            keys.add((str(entry["file"]), int(entry["size"]), int(entry["mtime_ns"])))
        except (ValueError, KeyError, TypeError):
            raise DataError(
                f"{log_path}:{number}: not a line of asdkit watch's log; give another --log file"
            ) from None
    return keys


def append_line(log_path: Path, record: dict[str, Any]) -> None:
    """One JSON line, appended with a single write and fsynced before the clip counts as done."""
    line = (json.dumps(record, sort_keys=False) + "\n").encode()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
