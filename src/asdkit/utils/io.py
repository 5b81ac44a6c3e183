"""Atomic file writes: an interrupted run never leaves a file that looks complete."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from asdkit.errors import DiskFullError


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "w", **kwargs: object) -> Iterator[IO]:
    """Write to a temporary file beside ``path`` and rename it into place only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; results should be as readable as any file
        with os.fdopen(fd, mode, **kwargs) as f:  # type: ignore[call-overload]
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if _disk_full(exc):
            raise DiskFullError(f"no space left on device writing {path}") from None
        raise


def _disk_full(exc: BaseException) -> bool:
    """ENOSPC, also as torch.save reports it (a RuntimeError whose text carries the OS error)."""
    if isinstance(exc, OSError):
        return exc.errno == errno.ENOSPC
    return isinstance(exc, RuntimeError) and os.strerror(errno.ENOSPC) in str(exc)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Read once at import: os.umask can only be read by setting it, which is not safe between threads.
_UMASK = _read_umask()


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_open(path, "w", newline="") as f:
        f.write(text)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_json(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """Write ``data`` as indented JSON, atomically; returns it as it reads back (paths as text, tuples
    as lists), so what a run hands on in memory is what its file says."""
    text = json.dumps(data, indent=2, default=str) + "\n"
    atomic_write_text(path, text)
    return json.loads(text)
