"""Writing a synthetic tree: which clips a spec asks for, where each goes, and the threads that render them.

Paths follow the layouts' naming rules (:mod:`asdkit.data.naming`), so the scanners read back what is
written here.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from asdkit.data.naming import ClipName, attribute_tail, dcase2020, dcase2021, dcase2022, folder
from asdkit.data.synthetic.dsp import _DOMAINS, _to_pcm16, clip_rng
from asdkit.data.synthetic.machines import ANOMALY_KINDS, MACHINE_TYPES, SEVERITY_LEVELS, _render
from asdkit.data.synthetic.two_channel import render_two_channel
from asdkit.utils.io import atomic_write_text

SYNTHETIC_LAYOUTS: tuple[str, ...] = ("dcase2022", "dcase2021", "dcase2020", "folder", "dcase2026")
TRUTH_FILE = "synthetic_truth.csv"


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate. Counts are per section; test counts are per section *and* domain.

    Defaults give the demo set: DCASE2022+ style, many source and few target training clips.
    """

    machines: tuple[str, ...] = ("pump", "fan", "slider")
    sections: int = 3
    n_train_source: int = 60
    n_train_target: int = 6
    n_test_normal: int = 20
    n_test_anomaly: int = 20
    duration: float = 10.0
    sample_rate: int = 16000
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.machines, str) or not isinstance(self.machines, Sequence) or not self.machines:
            raise ValueError(f"machines: give a non-empty tuple of machine names, got {self.machines!r}")
        object.__setattr__(self, "machines", tuple(self.machines))  # a list would make the spec unhashable
        unknown = [m for m in self.machines if m not in MACHINE_TYPES]
        if unknown:
            raise ValueError(f"machines: unknown {unknown}; known: {', '.join(MACHINE_TYPES)}")
        if len(set(self.machines)) != len(self.machines):
            raise ValueError("machines: names repeat")
        for name in ("sections", "n_train_source", "n_train_target", "n_test_normal", "n_test_anomaly"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        if self.sections > 100:
            raise ValueError(f"sections: at most 100 (two-digit section numbers), got {self.sections}")
        if self.n_train_target > self.n_train_source:
            raise ValueError(
                f"n_train_target: must not exceed n_train_source "
                f"({self.n_train_target} > {self.n_train_source});"
                " the target domain is the one with few training clips"
            )
        if not isinstance(self.duration, int | float) or not 0.5 <= self.duration <= 60.0:
            raise ValueError(f"duration: must be between 0.5 and 60 seconds, got {self.duration!r}")
        if not isinstance(self.sample_rate, int) or not 8000 <= self.sample_rate <= 96000:
            raise ValueError(
                f"sample_rate: must be an integer between 8000 and 96000, got {self.sample_rate!r}"
            )
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed: must be a non-negative integer, got {self.seed!r}")

    @classmethod
    def tiny(cls, **overrides: object) -> SyntheticSpec:
        """A few short clips for fast tests: 2 sections, 1.5-s clips, every machine kind of the demo."""
        values: dict[str, object] = dict(
            sections=2, n_train_source=4, n_train_target=1, n_test_normal=2, n_test_anomaly=2, duration=1.5
        )
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Job:
    """One clip to render: its identity (which seeds it) and, for anomalies, its kind and severity."""

    machine: str
    section: int
    domain: str
    split: str
    label: int
    index: int
    anomaly: str | None
    severity_level: str


def _jobs(spec: SyntheticSpec, layout: str) -> list[_Job]:
    """Every clip of a run in a fixed order; anomalies cycle through kind x severity by index."""
    domains = ("source",) if layout == "dcase2020" else _DOMAINS
    jobs: list[_Job] = []
    levels = list(SEVERITY_LEVELS)
    for machine in spec.machines:
        kinds = ANOMALY_KINDS[machine]
        for section in range(spec.sections):
            for domain in domains:
                n_train = spec.n_train_source if domain == "source" else spec.n_train_target
                jobs += [_Job(machine, section, domain, "train", 0, i, None, "") for i in range(n_train)]
                jobs += [
                    _Job(machine, section, domain, "test", 0, i, None, "") for i in range(spec.n_test_normal)
                ]
                for i in range(spec.n_test_anomaly):
                    kind = kinds[i % len(kinds)]
                    level = levels[(i // len(kinds)) % len(levels)]
                    jobs.append(_Job(machine, section, domain, "test", 1, i, kind, level))
    return jobs


def _relative_path(job: _Job, layout: str, attrs: dict[str, str]) -> str:
    """Where a clip goes under the root, by the layout's naming rules.

    2020 names carry machine ids, here 2 x section; the folder layout keeps the label in the test folder
    and section and domain in the name, for people reading it.
    """
    section = f"{job.section:02d}"
    clip = ClipName(section, job.index, job.label, job.domain, job.split, attribute_tail(attrs))
    if layout == "dcase2020":
        return dcase2020.clip_path(job.machine, replace(clip, section=f"{2 * job.section:02d}", tail=""))
    if layout == "dcase2021":
        return dcase2021.clip_path(job.machine, replace(clip, tail=""))
    if layout in ("dcase2022", "dcase2026"):  # 2026 names follow 2022's (its clips have two channels)
        return dcase2022.clip_path(job.machine, clip)
    return folder.clip_path(job.machine, clip)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write beside ``path`` under a temporary name, then rename: a file with a final name is complete.

    Unlike :func:`asdkit.utils.io.atomic_write_bytes` there is no fsync: a set of a thousand clips would
    spend more time syncing than synthesising, and a lost clip is regenerated bit for bit.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name unique to this process and thread, created by open() so the umask applies (mkstemp gives 0600).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, _to_pcm16(samples), sample_rate, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def generate(
    root: Path,
    layout: str = "dcase2022",
    spec: SyntheticSpec = SyntheticSpec(),  # frozen, so a shared default is safe
    progress: bool = False,
    workers: int | None = None,
) -> Path:
    """Write a synthetic development set under ``root`` in a DCASE layout and return ``root``.

    Layouts (``<m>`` is the machine, ``XX`` the two-digit section):

    - ``dcase2022``:
      ``<m>/{train,test}/section_XX_{source,target}_{train,test}_{normal,anomaly}_NNNN_<attrs>.wav``
      with the operating condition in the name (``rpm_1500``, ``vel_500_ac_0.15``, ``pat_01``);
    - ``dcase2021``: ``<m>/{train,source_test,target_test}/section_XX_<domain>_<split>_<state>_NNNN.wav``;
    - ``dcase2020``: ``<m>/{train,test}/{normal,anomaly}_id_YY_NNNNNNNN.wav``, source domain only, machine
      ids YY = 2 x section (00, 02, 04, ...);
    - ``folder``: ``<m>/train/*.wav`` and ``<m>/test/{normal,anomaly}/*.wav``, always one folder per machine
      (also for a single machine), names ``section_XX_<domain>_NNNN.wav``;
    - ``dcase2026``: the ``dcase2022`` names (plus a ``noise_<k>`` attribute) of two-channel clips, channel
      0 near the machine and channel 1 far from it (:mod:`asdkit.data.synthetic.two_channel`).

    Every wav is written atomically, so an interrupted run leaves only complete files; ``synthetic_truth.csv``
    at the root records each clip's anomaly kind and severity. ``workers`` threads render the clips (None:
    one for small sets, else one per CPU up to 8); the files are the same bytes whatever the number.
    Files of the same names are replaced and other files under ``root`` are left alone, so generate into an
    empty folder when the spec changes.
    """
    if layout not in SYNTHETIC_LAYOUTS:
        raise ValueError(f"layout: unknown {layout!r}; choose one of {', '.join(SYNTHETIC_LAYOUTS)}")
    if not isinstance(spec, SyntheticSpec):
        raise ValueError(f"spec: must be a SyntheticSpec, got {type(spec).__name__}")
    if layout == "dcase2020" and spec.sections > 50:
        raise ValueError(
            f"sections: dcase2020 machine ids are 2 x section and two-digit, so at most 50, "
            f"got {spec.sections}"
        )
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise ValueError(f"workers: must be a positive integer or None, got {workers!r}")
    root = Path(root)
    jobs = _jobs(spec, layout)
    n_workers = _auto_workers(len(jobs)) if workers is None else min(workers, len(jobs))
    chunks = [jobs[i : i + _CHUNK] for i in range(0, len(jobs), _CHUNK)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="synthesising", unit="clip")
    rows: list[list[str]] = []
    try:
        if n_workers > 1:
            done = _render_parallel(spec, layout, root, chunks, n_workers, bar)
        else:
            done = []
            for chunk in chunks:
                done.append(_render_chunk(spec, layout, str(root), chunk))
                if bar is not None:
                    bar.update(len(chunk))
        for chunk_rows in done:
            rows.extend(chunk_rows)
    finally:
        if bar is not None:
            bar.close()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        [
            "path",
            "machine",
            "section",
            "domain",
            "split",
            "label",
            "anomaly",
            "severity_level",
            "severity",
            "attributes",
        ]
    )
    writer.writerows(rows)
    atomic_write_text(root / TRUTH_FILE, buf.getvalue())
    return root


_CHUNK = 24  # clips per task: large enough to hide inter-process overhead, small enough to balance


def _auto_workers(n_jobs: int) -> int:
    """Processes for a run: one for small sets (start-up costs more than it saves), else one per CPU."""
    if n_jobs < 200:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


def _render_chunk(spec: SyntheticSpec, layout: str, root: str, jobs: Sequence[_Job]) -> list[list[str]]:
    """Render and write some clips; return their rows of the truth file."""
    rows = []
    for job in jobs:
        rng = clip_rng(spec.seed, job.machine, job.section, job.domain, job.split, job.label, job.index)
        severity = 0.0
        if job.anomaly is not None:
            severity = min(1.0, SEVERITY_LEVELS[job.severity_level] * float(rng.uniform(0.9, 1.1)))
        render = render_two_channel if layout == "dcase2026" else _render
        samples, attrs = render(
            job.machine, job.section, job.domain, job.anomaly, severity, rng, spec.duration, spec.sample_rate
        )
        rel = _relative_path(job, layout, attrs)
        _write_atomic(Path(root) / rel, _wav_bytes(samples, spec.sample_rate))
        rows.append(
            [
                rel,
                job.machine,
                f"{job.section:02d}",
                job.domain,
                job.split,
                str(job.label),
                job.anomaly or "",
                job.severity_level,
                f"{severity:.4f}",
                attribute_tail(attrs),
            ]
        )
    return rows


def _render_parallel(
    spec: SyntheticSpec, layout: str, root: Path, chunks: list[list[_Job]], n_workers: int, bar: Any
) -> list[list[list[str]]]:
    """Chunks rendered by worker threads, in order.

    Threads rather than processes: the heavy work (FFTs, random fills, ufuncs, file writes) releases the
    GIL, and threads need neither a ``__main__`` guard in the caller's script (spawn) nor a fork of a
    parent that may hold torch or BLAS threads. Each clip's generator depends only on its identity, so the
    files equal those of a serial run.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n_workers, thread_name_prefix="synthetic") as pool:
        futures = [pool.submit(_render_chunk, spec, layout, str(root), chunk) for chunk in chunks]
        out = []
        try:
            for future, chunk in zip(futures, chunks, strict=True):
                out.append(future.result())
                if bar is not None:
                    bar.update(len(chunk))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return out
