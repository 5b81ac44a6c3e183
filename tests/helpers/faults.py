"""Faults on demand for the run-directory tests and ``benchmarks/fault_audit.py``: the CLI in a subprocess,
interrupted at a chosen moment by a real SIGINT, or with a write that finds the disk full.

A fault is injected by a *prelude*: Python run before ``asdkit.cli.main.main()`` in the child, which
patches one function to touch a marker file and then wait, so the parent sends SIGINT exactly there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.helpers.trees import make_tree

MODEL = (
    "knn"  # the cheapest detector: these tests are about the run directory (families: helpers/families.py)
)

#: Pause once the first machine type's model folder is complete (model.json is written last; an ensemble's
#: members are saved inside it first, so only a save into ``models/<machine>`` counts).
PAUSE_AFTER_FIRST_MODEL = """
from pathlib import Path
from asdkit.detectors import base
_save = base.Detector.save
def save(self, path, metadata=None):
    out = _save(self, path, metadata)
    if Path(path).parent.name == "models":
        pause()
    return out
base.Detector.save = save
"""
#: Pause while the features of the first clips are read (in the extractor's reader threads).
PAUSE_IN_FEATURES = """
from asdkit.features import cache
_read = cache._read_clip
def read(audio, config):
    pause(quiet=True)
    return _read(audio, config)
cache._read_clip = read
"""
#: Pause inside Lightning's training loop (at the start of an epoch).
PAUSE_IN_TRAINING = """
from asdkit.detectors import training
def on_train_epoch_start(self):
    pause()
training.NetworkModule.on_train_epoch_start = on_train_epoch_start
"""
#: The disk fills up when the first model file of learned state (weights.pt, arrays.npz) is synced to it.
DISK_FULL_AT_WEIGHTS = """
import errno
_fsync = os.fsync
def fsync(fd):
    if any(name in os.readlink(f"/proc/self/fd/{fd}") for name in ("weights.pt", "arrays.npz")):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return _fsync(fd)
os.fsync = fsync
"""

_HEAD = """
import os, sys, time
MARKER = os.environ["ASDKIT_TEST_MARKER"]
def pause(quiet=False):
    open(MARKER, "a").close()
    time.sleep(0.2 if quiet else 120)
"""
_TAIL = """
from asdkit.cli.main import main
main()
"""


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def long_8bit_wav(path: Path, seconds: int = 5000, rate: int = 1000) -> Path:
    """Issue 27's reproduction of a decoded-size limit: an 8-bit mono wav at 1 kHz, 5 MB for 5,000 s."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(rate)
        w.writeframes(bytes(np.random.default_rng(0).integers(96, 160, seconds * rate, dtype=np.uint8)))
    return path


def tiny_tree(root: Path) -> Path:
    """Two machine types (fan, valve), two sections each, a few 0.5-s clips: a run takes seconds."""
    return make_tree(root, "dcase2022", n_train=6, n_test=3)


def run_args(data: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    """``asdkit run`` of the cheapest detector, quiet, no figures (tracking follows $ASDKIT_TRACKING)."""
    return [
        "run",
        "--data",
        str(data),
        "--out",
        str(out),
        "--model",
        MODEL,
        "--quiet",
        "--no-plots",
        "--cache-dir",
        str(cache),
        *extra,
    ]


def cli(*args: str, prelude: str = "", timeout: float = 300, env: dict[str, str] | None = None) -> Outcome:
    """``asdkit ARGS`` in a subprocess (after ``prelude``, if any)."""
    command = [sys.executable, "-c", _HEAD + prelude + _TAIL] if prelude else [sys.executable, "-m", "asdkit"]
    environ = {**os.environ, "ASDKIT_TEST_MARKER": os.devnull, **(env or {})}
    proc = subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout, env=environ)
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def start_paused(*args: str, prelude: str, marker: Path, timeout: float = 300) -> subprocess.Popen[str]:
    """``asdkit ARGS`` with ``prelude`` in the background, returned once the prelude touches ``marker``."""
    command = [sys.executable, "-c", _HEAD + prelude + _TAIL, *args]
    environ = {**os.environ, "ASDKIT_TEST_MARKER": str(marker)}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ)
    deadline = time.monotonic() + timeout
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc


def finish(proc: subprocess.Popen[str], signal_first: bool = True, timeout: float = 300) -> Outcome:
    """SIGINT (Ctrl-C) to a running ``proc`` (unless it ended or not ``signal_first``), then its outcome."""
    if signal_first and proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    return Outcome(proc.returncode, stdout, stderr)


def interrupt(*args: str, prelude: str, marker: Path, timeout: float = 300) -> Outcome:
    """``asdkit ARGS`` with ``prelude``; SIGINT (Ctrl-C) as soon as the prelude touches ``marker``."""
    return finish(start_paused(*args, prelude=prelude, marker=marker, timeout=timeout), timeout=timeout)


def error_lines(outcome: Outcome) -> list[str]:
    return [line for line in outcome.stderr.splitlines() if line.startswith("error:")]


def one_line_error(outcome: Outcome, *needles: str) -> bool:
    """A non-zero exit with exactly one ``error:`` line holding every needle, and no traceback."""
    errors = error_lines(outcome)
    return (
        outcome.returncode != 0
        and "Traceback" not in outcome.stderr
        and len(errors) == 1
        and all(n in errors[0] for n in needles)
    )


def dead_pid() -> int:
    """The PID of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
