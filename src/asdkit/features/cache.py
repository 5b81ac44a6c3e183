"""An on-disk cache of per-clip features, so that each clip's features are computed once.

Entries are float32 ``.npy`` files (the array of any registered front end, :mod:`asdkit.features.frontends`:
log-mel ``[n_mels, frames]``, a Welch spectrum ``[1, n_bins]``...) named by a hash of the audio file's
resolved path, size and mtime (a changed file gets a new entry) in a folder named by the front end's
``cache_key()`` (a changed configuration gets a new folder). Arrays come back memory-mapped so that memory
does not grow with the data set.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import tempfile
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from asdkit.data.audio import load_audio
from asdkit.errors import AudioError
from asdkit.features.frontends import FrontEnd, front_end_for
from asdkit.features.logmel import (
    available_cpus,
    compute_logmel,
    logmel_batches,
    logmel_numpy,
    single_threaded_workers,
)
from asdkit.utils.io import atomic_write_text

__all__ = ["FeatureCache", "FeatureResult", "compute_logmel", "default_cache_dir"]

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from tqdm import tqdm

OnError = Literal["raise", "skip"]
Strategy = Literal["auto", "clips", "batches"]
_FD_RESERVE = 256  # descriptors left for everything else when many memmaps are open


def default_cache_dir() -> Path:
    """``$ASDKIT_CACHE_DIR`` or ``~/.cache/asdkit/features``."""
    env = os.environ.get("ASDKIT_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "asdkit" / "features"


@dataclass
class FeatureResult:
    """Features of the clips that could be read, in input order, and the clips that could not."""

    arrays: list[np.ndarray] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


class FeatureCache:
    """Computes a front end's arrays for audio files once and serves them from disk afterwards; ``config``
    is any registered front end's config (a FeatureConfig for log-mel, a SpectrumConfig...).

    Missing entries are computed in one of two ways (``strategy="auto"`` picks by device):

    - "clips" (CPU): ``workers`` threads each read, compute and write one clip at a time, each with one
      torch intra-op thread (see ``single_threaded_workers``); torch and soundfile release the GIL.
    - "batches" (GPU): a thread pool reads ahead; equal-length clips go through LogMel ``batch_size`` at a
      time on ``device``; the pool writes the results.

    Each entry is written atomically (temporary file in the same folder, then ``os.replace``), so a reader
    never sees a partial entry. Entries are not fsynced: a cache can always be recomputed, an entry whose
    header or size is wrong is treated as missing, and fsync would cost more than computing the features.
    """

    def __init__(
        self,
        config: Any,
        cache_dir: Path | None = None,
        device: str = "cpu",
        batch_size: int = 32,
        workers: int | None = None,
        strategy: Strategy = "auto",
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if workers is not None and workers <= 0:
            raise ValueError(f"workers must be positive, got {workers}")
        if strategy not in ("auto", "clips", "batches"):
            raise ValueError(f"strategy must be 'auto', 'clips' or 'batches', got {strategy!r}")
        self.config = config
        self.front_end: FrontEnd = front_end_for(config)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.folder = self.cache_dir / self.front_end.cache_key()
        self.device = device
        self.batch_size = batch_size
        self.workers = workers if workers is not None else min(8, available_cpus())
        if strategy == "auto":
            strategy = "clips" if torch.device(device).type == "cpu" else "batches"
        self.strategy: Strategy = strategy

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.folder)!r}, device={self.device!r}, batch_size={self.batch_size})"

    def path_for(self, audio_path: Path) -> Path:
        """The entry for ``audio_path`` as it is now: its resolved path, size, mtime and a content fingerprint
        (a file rewritten in place within the same mtime tick gets a new entry)."""
        try:
            path = Path(audio_path).resolve(strict=True)
            st = path.stat()
            fingerprint = _fingerprint(path, st.st_size)
        except FileNotFoundError:
            raise AudioError(f"{audio_path}: no such file (or a dangling link)") from None
        except RuntimeError:  # pathlib's "Symlink loop"
            raise AudioError(f"{audio_path}: symlink loop") from None
        except OSError as exc:
            raise AudioError(f"{audio_path}: cannot be read ({exc.strerror})") from None
        ident = f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{fingerprint}".encode()
        digest = hashlib.sha1(ident).hexdigest()[:20]
        return self.folder / f"{path.stem[:60]}-{digest}.npy"

    def extract(
        self,
        paths: Sequence[Path],
        progress: bool = False,
        on_error: OnError = "raise",
    ) -> FeatureResult:
        """Features for ``paths`` (computing only missing entries) as memory-mapped arrays.

        ``on_error="skip"`` logs an unreadable clip as a warning and lists it in ``skipped``;
        ``"raise"`` lets its AudioError propagate.
        """
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        errors: dict[int, str] = {}
        entries: list[Path | None] = []
        for i, p in enumerate(paths):
            try:
                entries.append(self.path_for(Path(p)))
            except AudioError as exc:
                self._fail(exc, on_error)
                errors[i] = str(exc)
                entries.append(None)

        mmap_budget = _memmap_budget(len(paths))
        opened: dict[Path, np.ndarray] = {}
        missing: OrderedDict[Path, Path] = OrderedDict()  # entry -> audio file, each entry once
        for p, entry in zip(paths, entries, strict=True):
            if entry is None or entry in opened or entry in missing:
                continue
            array = self._open(entry, mmap=len(opened) < mmap_budget)
            if array is None:
                missing[entry] = Path(p)
            else:
                opened[entry] = array

        if missing:
            failed = self._compute(missing, progress, on_error)
            for entry in missing:
                if entry not in failed:
                    array = self._open(entry, mmap=len(opened) < mmap_budget)
                    if array is None:
                        raise OSError(f"{entry}: feature cache entry unreadable right after writing it")
                    opened[entry] = array
            for i, entry in enumerate(entries):
                if entry in failed:
                    errors[i] = failed[entry]

        result = FeatureResult()
        for i, (p, entry) in enumerate(zip(paths, entries, strict=True)):
            if i in errors or entry is None:
                result.skipped.append((Path(p), errors.get(i, "unreadable")))
            else:
                result.kept.append(Path(p))
                result.arrays.append(opened[entry])
        return result

    def load(self, audio_path: Path, mmap: bool = True) -> np.ndarray:
        """One clip's features (``[n_mels, frames]`` for log-mel), computed and stored when missing."""
        entry = self.path_for(Path(audio_path))
        array = self._open(entry, mmap=mmap)
        if array is None:
            self._compute(OrderedDict([(entry, Path(audio_path))]), progress=False, on_error="raise")
            array = self._open(entry, mmap=mmap)
            if array is None:
                raise OSError(f"{entry}: feature cache entry unreadable right after writing it")
        return array

    # -- internals -------------------------------------------------------------------------------------

    def _open(self, entry: Path, mmap: bool) -> np.ndarray | None:
        """The stored array, or None when the entry is absent or not a complete, valid array."""
        try:
            array = np.load(entry, mmap_mode="r" if mmap else None, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError) as exc:
            log.warning("%s: ignoring a damaged feature cache entry (%s)", entry, exc)
            return None
        if array.dtype != np.float32 or not self.front_end.valid_shape(array.shape):
            log.warning("%s: ignoring a feature cache entry of shape %s", entry, array.shape)
            return None
        return array

    def _fail(self, exc: AudioError, on_error: OnError) -> None:
        if on_error == "raise":
            raise exc
        log.warning("skipping %s", exc)

    def _compute(
        self, missing: OrderedDict[Path, Path], progress: bool, on_error: OnError
    ) -> dict[Path, str]:
        """Compute and store the missing entries; return {entry: reason} for clips that failed."""
        from tqdm.auto import tqdm

        self.folder.mkdir(parents=True, exist_ok=True)
        self._describe_folder()
        items = list(missing.items())
        desc = self.front_end.name
        bar = tqdm(total=len(items), unit="clip", desc=desc, file=sys.stderr, disable=not progress)
        try:
            if self.strategy == "clips":
                return self._compute_clips(items, bar, on_error)
            return self._compute_batches(items, bar, on_error)
        finally:
            bar.close()

    def _compute_clips(self, items: list[tuple[Path, Path]], bar: tqdm, on_error: OnError) -> dict[Path, str]:
        module = self.front_end.module(self.device)
        front_end = self.front_end

        def job(entry: Path, audio: Path) -> None:
            _atomic_save(entry, logmel_numpy(module, _read_clip(audio, front_end)))

        failed: dict[Path, str] = {}
        with single_threaded_workers(self.workers) as pool:
            queue = iter(items)
            in_flight: dict[Future[None], Path] = {}

            def refill() -> None:
                # A bounded window of submitted clips, so a huge list does not become a huge queue.
                while len(in_flight) < 4 * self.workers and (item := next(queue, None)) is not None:
                    in_flight[pool.submit(job, *item)] = item[0]

            refill()
            while in_flight:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for fut in done:
                    entry = in_flight.pop(fut)
                    try:
                        fut.result()
                    except AudioError as exc:
                        self._fail(exc, on_error)
                        failed[entry] = str(exc)
                    bar.update(1)
                refill()
        return failed

    def _compute_batches(
        self, items: list[tuple[Path, Path]], bar: tqdm, on_error: OnError
    ) -> dict[Path, str]:
        failed: dict[Path, str] = {}
        chunks = [items[i : i + self.batch_size] for i in range(0, len(items), self.batch_size)]
        front_end = self.front_end
        module = front_end.module(self.device)
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="asdkit-io") as pool:
            writes: list[Future[None]] = []
            # Read the next chunk while this one is computed; the pool also does the writes.
            pending = [pool.submit(_read_clip, audio, front_end) for _, audio in chunks[0]] if chunks else []
            for k, chunk in enumerate(chunks):
                current = pending
                nxt = chunks[k + 1] if k + 1 < len(chunks) else []
                pending = [pool.submit(_read_clip, audio, front_end) for _, audio in nxt]
                good: list[tuple[Path, np.ndarray]] = []
                for (entry, _audio), fut in zip(chunk, current, strict=True):
                    try:
                        good.append((entry, fut.result()))
                    except AudioError as exc:
                        self._fail(exc, on_error)
                        failed[entry] = str(exc)
                        bar.update(1)
                feats = logmel_batches(module, [w for _, w in good], self.batch_size)
                writes += [pool.submit(_atomic_save, e, f) for (e, _), f in zip(good, feats, strict=True)]
                bar.update(len(good))
            for w in writes:
                w.result()
        return failed

    def _describe_folder(self) -> None:
        """A config.json beside the entries, so a person can tell which settings a folder holds."""
        info = self.folder / "config.json"
        if not info.exists():
            with contextlib.suppress(OSError):
                atomic_write_text(info, json.dumps(asdict(self.config), indent=2, sort_keys=True) + "\n")


def _read_clip(audio: Path, front_end: FrontEnd) -> np.ndarray:
    wave = load_audio(audio, front_end.config.sample_rate, front_end.config.channel)
    front_end.check_wave(wave, audio)
    return wave


#: Bytes read at each of the start (the header), the middle and the end of a file for its fingerprint.
FINGERPRINT_BLOCK = 4096


def _fingerprint(path: Path, size: int) -> str:
    """A hash of three blocks of the file: cheap, and different for any rewrite that changes the header,
    the length or the samples near the start, middle or end."""
    h = hashlib.sha1()
    with path.open("rb") as f:
        for offset in sorted(
            {0, max(size // 2 - FINGERPRINT_BLOCK // 2, 0), max(size - FINGERPRINT_BLOCK, 0)}
        ):
            f.seek(offset)
            h.update(f.read(FINGERPRINT_BLOCK))
    return h.hexdigest()[:16]


def _atomic_save(path: Path, array: np.ndarray) -> None:
    """np.save to a temporary name beside ``path``, then rename it into place.

    The temporary file is passed to np.save as an open file, so np.save does not append ".npy" to its
    name; it ends in ".tmp" so that an interrupted write is never mistaken for an entry.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _memmap_budget(wanted: int) -> int:
    """How many memmaps may be opened: each holds a file descriptor, so raise the soft limit if needed.

    Beyond the budget, arrays are loaded into memory instead of failing with "too many open files".
    """
    try:
        import resource
    except ImportError:  # not on POSIX: no descriptor limit to manage here
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = _open_fd_count()
    needed = in_use + wanted + _FD_RESERVE
    if soft != resource.RLIM_INFINITY and needed > soft:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft == resource.RLIM_INFINITY:
        return wanted
    budget = max(0, soft - in_use - _FD_RESERVE)
    if budget < wanted:
        log.warning(
            "%d arrays requested but only %d file descriptors are available for memory maps; "
            "the rest are loaded into memory",
            wanted,
            budget,
        )
    return budget


def _open_fd_count() -> int:
    for folder in ("/proc/self/fd", "/dev/fd"):
        with contextlib.suppress(OSError):
            return len(os.listdir(folder))
    return 64
