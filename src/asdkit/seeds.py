"""Multi-seed runs: the same run once per seed, each in its own subfolder, summarised by mean and std.

Results in the field swing by several points between seeds, so one number says little. ``run_seeds``
calls :func:`asdkit.api.run` per seed (``OUT/seed_<n>/``, a complete run directory each) and writes
``OUT/seeds.csv`` (every metric's mean, standard deviation and per-seed values) and ``OUT/seeds.json``
(what was run, which seeds, ``"status": "complete"`` once all are done).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from asdkit.errors import AsdkitError
from asdkit.rundir import SEEDS_CSV, SEEDS_JSON, launch_rank, seed_dir
from asdkit.utils.io import atomic_write_text

OFFICIAL = "official score"

#: Most seeds one command runs (each is a whole run); ranges are counted before any list is built.
MAX_SEEDS = 100


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2,3"`` or ``"0-3"`` -> [0, 1, 2, 3]; at most :data:`MAX_SEEDS` of them."""
    spans: list[tuple[int, int]] = []
    try:
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            low, sep, high = part.partition("-")
            spans.append((int(low), int(high)) if sep else (int(part), int(part)))
    except ValueError:
        raise AsdkitError(f"--seeds {text!r}: expected seeds such as 0,1,2,3 or 0-3") from None
    if any(high < low for low, high in spans):
        raise AsdkitError(f"--seeds {text!r}: a range must go up, e.g. 0-3")
    count = sum(high - low + 1 for low, high in spans)
    if count > MAX_SEEDS:
        raise AsdkitError(f"--seeds {text!r}: {count} seeds, at most {MAX_SEEDS} per command (each is a run)")
    seeds = [seed for low, high in spans for seed in range(low, high + 1)]
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise AsdkitError(f"--seeds {text!r}: give distinct non-negative seeds, e.g. 0,1,2,3")
    return seeds


def evaluation_metrics(evaluation: Any) -> dict[str, float]:
    """Official score, overall means of its parts and each machine type's means, by name.

    2021+: harmonic means (the official statistic); 2020: arithmetic means (its "Average").
    """
    use_hmean = evaluation.scheme != "dcase2020"
    parts = [c for c in evaluation.columns if "AUC" in c]
    overall = evaluation.overall_hmean if use_hmean else evaluation.overall_amean
    metrics = {OFFICIAL: float(evaluation.official_score)}
    metrics.update({c: float(overall[c]) for c in parts})
    for machine in evaluation.machines:
        means = machine.hmean if use_hmean else machine.amean
        metrics.update({f"{machine.machine}: {c}": float(means[c]) for c in parts})
    return metrics


@dataclass
class MetricSummary:
    name: str
    values: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        """Sample standard deviation (n - 1); 0 for a single seed."""
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else 0.0


@dataclass
class SeedsResult:
    run_dir: Path
    seeds: list[int]
    runs: list[Any] = field(default_factory=list)
    summary: list[MetricSummary] = field(default_factory=list)

    @property
    def seeds_csv(self) -> Path:
        return self.run_dir / SEEDS_CSV


def summarise(seeds: Sequence[int], metrics: Sequence[dict[str, float]]) -> list[MetricSummary]:
    """One summary per metric that every seed reported (in the first seed's order)."""
    names = [n for n in metrics[0] if all(n in m for m in metrics)]
    return [MetricSummary(n, [m[n] for m in metrics]) for n in names]


def seeds_csv_text(seeds: Sequence[int], summary: Sequence[MetricSummary]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["metric", "mean", "std", "n", *(f"seed_{s}" for s in seeds)])
    for m in summary:
        writer.writerow(
            [m.name, repr(m.mean), repr(m.std), len(m.values), *(repr(float(v)) for v in m.values)]
        )
    return buf.getvalue()


def run_seeds(
    run: Callable[..., Any], data: Path | str, out: Path | str, seeds: Sequence[int], **kwargs: Any
) -> SeedsResult:
    """``run(data, OUT/seed_<n>, seed=n, **kwargs)`` for every seed, then the mean/std summary.

    With ``jobs`` > 1 in ``kwargs`` the seeds run that many at a time in worker processes (each seed's
    machine types one after the other), this process showing which seed finished; with one seed its
    machine types run in parallel instead.
    """
    out = Path(out)
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise AsdkitError(f"seeds: give distinct seeds, got {seeds}")
    record = {
        "status": "running",
        "seeds": seeds,
        "model": kwargs.get("model", "ae"),
        "params": kwargs.get("params") or {},
        "data": str(Path(data).resolve()),
    }
    writer = launch_rank() == 0  # a DDP launch's other ranks write nothing
    if writer:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / SEEDS_JSON, json.dumps(record, indent=2, default=str) + "\n")
    result = SeedsResult(out, seeds)
    jobs = min(int(kwargs.get("jobs", 1)), len(seeds))
    if jobs > 1:
        from joblib import Parallel, delayed

        progress = kwargs.get("progress")
        quiet = {**kwargs, "jobs": 1, "progress": None, "params": _silent(kwargs.get("params"))}
        tasks = (delayed(run)(data, seed_dir(out, seed), seed=seed, **quiet) for seed in seeds)
        with Parallel(n_jobs=jobs, backend="loky", return_as="generator") as parallel:
            for i, run_result in enumerate(parallel(tasks)):
                if progress is not None:
                    progress(f"seed {seeds[i]}: complete ({i + 1}/{len(seeds)}, {jobs} worker processes)")
                result.runs.append(run_result)
    else:
        result.runs = [run(data, seed_dir(out, seed), seed=seed, **kwargs) for seed in seeds]
    metrics = [evaluation_metrics(r.evaluation) for r in result.runs if r.evaluation is not None]
    if not writer:
        return result
    if len(metrics) == len(seeds):
        result.summary = summarise(seeds, metrics)
        atomic_write_text(out / SEEDS_CSV, seeds_csv_text(seeds, result.summary))
    record["status"] = "complete"
    atomic_write_text(out / SEEDS_JSON, json.dumps(record, indent=2, default=str) + "\n")
    return result


def _silent(params: dict[str, Any] | None) -> dict[str, Any] | None:
    """The parameters without a training progress bar (worker processes print nothing)."""
    if params is None or "progress" not in params:
        return params
    return {**params, "progress": False}
