"""A run directory that never lies: one writer at a time, no stale outputs, and a status that is the truth.

``RunDirectory(out, overwrite=..., resume=...)`` wraps the body of a run:

- **Lock.** ``OUT/.asdkit.lock`` holds the writer's PID under an exclusive ``flock``; a second run into
  ``OUT`` stops with an error naming that PID. The kernel drops the lock when its process dies, so a lock
  file left by a killed run (its PID gone) is taken over with a warning.
- **Reruns.** A directory that holds a run's outputs is refused unless ``overwrite`` (its asdkit outputs are
  removed first: only the names asdkit writes, never other files) or ``resume``.
- **Status.** However the body ends, the run's record (``config.json``, or ``seeds.json`` for a multi-seed
  folder) says so: an exception sets ``"status": "failed"`` with a one-line ``"error"``, an interrupt sets
  ``"interrupted"``. Only a record this run wrote is changed: a refused resume never marks the old run.
- **Resume.** :func:`check_resume` refuses a configuration that differs from the interrupted run's, naming the
  key; :func:`kept_model` gives the machine types whose models are complete, which are then not trained
  again. Scores, result.csv and figures derive from the models and are recomputed.

Readers (``evaluate``, ``serve``, ``report``, ``compare``) call :func:`warn_if_incomplete`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import inspect
import json
import logging
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from asdkit.errors import AsdkitError

if TYPE_CHECKING:
    from asdkit.detectors.base import Detector

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

# -- names: every file and folder of a run directory, spelled here only ----------------------------------
LOCK_NAME = ".asdkit.lock"
CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.csv"
MODELS_DIR = "models"
SCORES_DIR = "scores"
PLOTS_DIR = "plots"
RESULT_FILE = "result.csv"
REPORT_FILE = "report.html"
TENSORBOARD_DIR = "tensorboard"
SEEDS_JSON = "seeds.json"
SEEDS_CSV = "seeds.csv"
SEED_PREFIX = "seed_"
#: The files of one model folder (``models/<machine>/``): configuration, network weights, fitted arrays.
MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.pt"
ARRAYS_FILE = "arrays.npz"
CONFIG_JSON = CONFIG_FILE

COMPLETE, RUNNING, FAILED, INTERRUPTED = "complete", "running", "failed", "interrupted"
#: a run that finished but could not train every machine type (config.json's ``failed_machines`` says which)
PARTIAL = "partial"
#: Everything asdkit writes into a run directory (``seed_<n>/`` folders too); --overwrite removes these only.
OUTPUTS = (
    CONFIG_JSON,
    MANIFEST_FILE,
    MODELS_DIR,
    SCORES_DIR,
    RESULT_FILE,
    PLOTS_DIR,
    REPORT_FILE,
    TENSORBOARD_DIR,
    SEEDS_JSON,
    SEEDS_CSV,
)
#: Outputs that only describe a run; a folder holding nothing else (a run that failed early) is no run.
RECORDS = (CONFIG_JSON, MANIFEST_FILE, SEEDS_JSON)
#: Outputs computed from the trained models: --resume recomputes them.
DERIVED = (SCORES_DIR, RESULT_FILE, PLOTS_DIR, REPORT_FILE, SEEDS_CSV)


def model_dir(run_dir: Path | str, machine: str) -> Path:
    """``RUN/models/<machine>``: one machine type's model folder."""
    return Path(run_dir) / MODELS_DIR / machine


def seed_dir(run_dir: Path | str, seed: int) -> Path:
    """``RUN/seed_<n>``: one seed's run directory of a multi-seed run."""
    return Path(run_dir) / f"{SEED_PREFIX}{seed}"


def is_seed_dir_name(name: str) -> bool:
    return name.startswith(SEED_PREFIX) and name[len(SEED_PREFIX) :].isdigit()


def seeds_hint(path: Path | str) -> str:
    """For an error about ``path``: where it is an ``asdkit run --seeds`` folder, which runs it holds."""
    folder = Path(path)
    if not (folder / SEEDS_JSON).is_file():
        return ""
    runs = sorted(
        (p.name for p in folder.iterdir() if is_seed_dir_name(p.name)),
        key=lambda n: int(n[len(SEED_PREFIX) :]),
    )
    return f"; a --seeds folder: give one of its runs ({', '.join(runs) or 'none yet'})"


def tensorboard_dir(run_dir: Path | str, machine: str) -> Path:
    """``RUN/tensorboard/<machine>`` (``tensorboard --logdir RUN/tensorboard``)."""
    return Path(run_dir) / TENSORBOARD_DIR / machine


# -- distributed launches -----------------------------------------------------------------------------------
#: Variables a launcher sets to a process's rank (torchrun, Lightning's re-launch, SLURM).
RANK_VARIABLES = ("RANK", "NODE_RANK", "LOCAL_RANK", "SLURM_PROCID")


def launch_rank() -> int:
    """0 in a distributed launch's first process (and without a launch); a positive rank in the others.

    Lightning's ``ddp`` strategy runs the whole command again for each extra device, with ``LOCAL_RANK``
    set; only rank 0 may take the lock and write the run directory, the others compute alongside it.
    """
    for name in RANK_VARIABLES:
        value = os.environ.get(name, "0").strip() or "0"
        if value.isdigit() and int(value) != 0:
            return int(value)
    return 0


#: Configuration keys that may differ between an interrupted run and its resumption.
VOLATILE_KEYS = {"status", "environment", "timings", "skipped", "official_score", "error"}
VOLATILE_PARAMS = {"progress"}


class RunDirError(AsdkitError):
    """A run directory that is in use, holds another run, or cannot be resumed as asked."""


# -- the lock -----------------------------------------------------------------------------------------------
class RunLock:
    """An exclusive ``flock`` on ``DIR/.asdkit.lock``, whose text is the holder's PID and host."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def acquire(cls, run_dir: Path) -> RunLock:
        path = run_dir / LOCK_NAME
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                holder = _read_holder(path)
                raise RunDirError(
                    f"{run_dir}: in use by another asdkit run ({holder}); wait for it to end or choose "
                    "another --out"
                ) from None
            # The file may have been unlinked by its previous holder between our open and our flock:
            # then the lock we hold is on a name nobody else sees, so try again with the new file.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        stale = os.read(fd, 256).decode(errors="replace").strip()
        if stale:
            log.warning("%s: taking over the lock of a run that is gone (%s)", run_dir, _describe(stale))
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} host {socket.gethostname()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self.fd)


def _read_holder(path: Path) -> str:
    try:
        return _describe(path.read_text().strip())
    except OSError:
        return "PID unknown"


def _describe(text: str) -> str:
    """``pid 123 host box`` -> ``PID 123 on box``."""
    parts = text.split()
    fields = dict(zip(parts[::2], parts[1::2], strict=False))
    where = f" on {fields['host']}" if fields.get("host") else ""
    return f"PID {fields.get('pid', '?')}{where}"


# -- status -------------------------------------------------------------------------------------------------
def record_path(run_dir: Path) -> Path | None:
    """The run's record: ``config.json`` of a run, ``seeds.json`` of a multi-seed folder; None if neither."""
    for name in (CONFIG_JSON, SEEDS_JSON):
        if (run_dir / name).is_file():
            return run_dir / name
    return None


def read_record(run_dir: Path) -> dict[str, Any] | None:
    path = record_path(run_dir)
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"status": "unreadable"}
    return data if isinstance(data, dict) else {"status": "unreadable"}


def run_status(run_dir: Path | str) -> str | None:
    """The status in a run directory's record ("complete", "running", ...), None if it has no record."""
    record = read_record(Path(run_dir))
    return None if record is None else str(record.get("status", "unknown"))


def _run_dir_of(path: Path) -> Path | None:
    """The run directory holding ``path`` (a run directory, its scores/ or models/, a model folder)."""
    for candidate in (path, path.parent, path.parent.parent):
        record = read_record(candidate)
        if record is not None and "status" in record:  # another tool's config.json is no run record
            return candidate
        if candidate.parent == candidate:
            break
    return None


def warn_if_incomplete(path: Path | str, verb: str) -> str | None:
    """Warn when ``path`` belongs to a run whose status is not "complete"; returns that status (or None)."""
    run_dir = _run_dir_of(Path(path))
    if run_dir is None:
        return None
    status = run_status(run_dir)
    if status == COMPLETE:
        return status
    record = read_record(run_dir) or {}
    why = f": {record['error']}" if record.get("error") else ""
    log.warning(
        "%s: the run is not complete (status: %s%s); %s what it holds, which may be partial or mixed",
        run_dir,
        status,
        why,
        verb,
    )
    return status


def one_line(exc: BaseException) -> str:
    """An exception as one line, as the CLI prints it."""
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    if isinstance(exc, AsdkitError):
        return message or type(exc).__name__
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


# -- the run directory --------------------------------------------------------------------------------------
class RunDirectory:
    """Context manager around a run's body: lock, rerun policy, resume bookkeeping, honest status."""

    def __init__(self, out: Path | str, *, overwrite: bool = False, resume: bool = False) -> None:
        if overwrite and resume:
            raise RunDirError("--overwrite and --resume contradict each other: give one")
        self.out = Path(out)
        self.overwrite = overwrite
        self.resume = resume
        self._lock: RunLock | None = None
        self._created = False
        self._record_stat: dict[str, os.stat_result | None] = {}

    def __enter__(self) -> RunDirectory:
        if self.out.exists() and not self.out.is_dir():
            raise RunDirError(f"{self.out}: exists and is not a folder")
        self._created = not self.out.exists()
        self.out.mkdir(parents=True, exist_ok=True)
        self._lock = RunLock.acquire(self.out)
        try:
            self._prepare()
        except BaseException:
            self._release()
            raise
        self._record_stat = {name: _stat(self.out / name) for name in (CONFIG_JSON, SEEDS_JSON)}
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if isinstance(exc, KeyboardInterrupt):
                self._mark(INTERRUPTED, None)
            elif exc is not None and not (isinstance(exc, SystemExit) and exc.code in (0, None)):
                self._mark(FAILED, one_line(exc))
        finally:
            self._release()

    def _prepare(self) -> None:
        present = outputs_present(self.out)
        record = read_record(self.out)
        status = "unknown: no config.json" if record is None else record.get("status", "unknown")
        holds_run = any(name not in RECORDS for name in present)
        if self.resume:
            if record is None:
                log.warning("%s: no run to resume; starting a new one", self.out)
            else:
                _remove(self.out, [n for n in present if n in DERIVED])
            return
        if holds_run and not self.overwrite:
            if status == COMPLETE:
                hint = "pass --overwrite to replace it, or choose another --out"
            else:
                hint = "pass --resume to continue it or --overwrite to replace it"
            raise RunDirError(f"{self.out}: already holds a run (status: {status}); {hint}")
        _remove(self.out, present)

    def _mark(self, status: str, reason: str | None) -> None:
        """Set the record's status, if this run wrote the record (best effort: the disk may be full)."""
        for name in (CONFIG_JSON, SEEDS_JSON):
            path = self.out / name
            now = _stat(path)
            if now is None or _same(now, self._record_stat.get(name)):
                continue
            try:
                record = json.loads(path.read_text())
                record["status"] = status
                if reason is not None:
                    record["error"] = reason
                from asdkit.utils.io import atomic_write_text

                atomic_write_text(path, json.dumps(record, indent=2, default=str) + "\n")
            except (OSError, ValueError, AsdkitError) as exc:
                log.warning("%s: could not record status %r (%s)", path, status, one_line(exc))

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self._created:
            with contextlib.suppress(OSError):
                self.out.rmdir()  # only if empty: a run that failed before writing anything leaves no folder


def locked_run_directory(run: Callable[P, R]) -> Callable[P, R]:
    """Decorate ``api.run`` and ``api.train``: check parameters, then run the body in a :class:`RunDirectory`.

    The wrapped function takes ``out``, ``overwrite`` and ``resume`` (and ``model``, ``params``, whose check
    comes first so that a typo never costs the outputs --overwrite would remove). Without ``out`` (training
    in memory) nothing is locked; in a DDP launch's other ranks neither (:func:`launch_rank`): they write
    nothing.
    """
    signature = inspect.signature(run)

    @functools.wraps(run)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        given = bound.arguments
        if "model" in given:
            from asdkit.detectors.params import validate_params

            validate_params(given["model"], given.get("params"))
        if given["out"] is None or launch_rank() != 0:
            return run(*args, **kwargs)
        with RunDirectory(given["out"], overwrite=given["overwrite"], resume=given["resume"]):
            return run(*args, **kwargs)

    return wrapper


def check_resume(out: Path | str, config: dict[str, Any]) -> None:
    """Refuse to resume the run in ``out`` with a configuration that differs from its own, naming the key."""
    previous = read_record(Path(out))
    if previous is None or previous.get("status") == "unreadable":
        return
    difference = config_difference(previous, config)
    if difference is not None:
        raise RunDirError(
            f"{out}: --resume with a different configuration ({difference}); resume with the interrupted "
            "run's settings, or use --overwrite to start again"
        )


def outputs_present(run_dir: Path) -> list[str]:
    """The asdkit outputs in ``run_dir`` (names from :data:`OUTPUTS` and ``seed_<n>`` folders)."""
    if not run_dir.is_dir():
        return []
    names = []
    for entry in sorted(run_dir.iterdir()):
        if entry.name in OUTPUTS or is_seed_dir_name(entry.name):
            names.append(entry.name)
    return names


def config_difference(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> str | None:
    """The first key whose value differs, as ``params.epochs: 2 in the run, 3 now``; None if they agree."""
    for key, value in new.items():
        if (not prefix and key in VOLATILE_KEYS) or (prefix == "params." and key in VOLATILE_PARAMS):
            continue
        name = f"{prefix}{key}"
        if key not in old:
            return f"{name}: absent in the run, {value!r} now"
        if isinstance(value, dict) and isinstance(old[key], dict):
            inner = config_difference(old[key], value, f"{name}.")
            if inner is not None:
                return inner
        elif _normalise(old[key]) != _normalise(value):
            return f"{name}: {old[key]!r} in the run, {value!r} now"
    return None


def _normalise(value: Any) -> Any:
    """As it reads back from config.json (tuples become lists, paths strings)."""
    return json.loads(json.dumps(value, default=str))


def kept_model(out: Path | str | None, machine: str) -> Detector | None:
    """The complete model of ``machine`` an interrupted run left in ``out/models/``, or None to train it.

    A model folder is complete once its model.json exists (it is written last); one that does not load is
    trained again, with a warning.
    """
    from asdkit.detectors.base import Detector

    if out is None:
        return None
    folder = model_dir(out, machine)
    if not (folder / MODEL_FILE).is_file():
        return None
    try:
        return Detector.load(folder)
    except (AsdkitError, OSError, ValueError, KeyError, RuntimeError) as exc:
        log.warning("%s: cannot be kept (%s); training it again", folder, one_line(exc))
        return None


def _remove(run_dir: Path, names: list[str]) -> None:
    for name in names:
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def _same(a: os.stat_result, b: os.stat_result | None) -> bool:
    return b is not None and (a.st_ino, a.st_mtime_ns, a.st_size) == (b.st_ino, b.st_mtime_ns, b.st_size)
