"""A comparison table across runs: one row per run, the official score and its parts, best marked.

A run directory (``config.json`` + ``result.csv``) gives one value per column; a multi-seed directory
(``seeds.json`` + ``seed_<n>/`` runs, see :mod:`asdkit.seeds`) gives the mean and standard deviation over
its seeds. Values are read from the files the runs wrote, so runs of earlier sessions compare alike.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.table import Table

from asdkit.errors import DataError
from asdkit.metrics.result_csv import OVERALL_AMEAN, OVERALL_HMEAN
from asdkit.run_result import read_config
from asdkit.rundir import CONFIG_FILE, RESULT_FILE, SEEDS_JSON, seed_dir
from asdkit.seeds import OFFICIAL, MetricSummary
from asdkit.utils.io import atomic_write_text


@dataclass
class RunRow:
    """One compared run: its name, detector, and every column's per-seed values."""

    name: str
    model: str
    metrics: dict[str, MetricSummary]

    @property
    def n_seeds(self) -> int:
        return max((len(m.values) for m in self.metrics.values()), default=0)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None


def overall_metrics(run_dir: Path) -> dict[str, float]:
    """The official score (config.json) and its parts over all machine types (result.csv) of one run."""
    config_path, result_path = run_dir / CONFIG_FILE, run_dir / RESULT_FILE
    if not config_path.is_file() or not result_path.is_file():
        raise DataError(f"{run_dir}: not an evaluated run directory (no {CONFIG_FILE} and {RESULT_FILE})")
    config = read_config(run_dir)
    if config.get("status") != "complete" or "official_score" not in config:
        raise DataError(f"{run_dir}: the run did not complete with an evaluation")
    with open(result_path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    metrics = {OFFICIAL: float(config["official_score"])}
    labels = [r[0] for r in rows]
    if OVERALL_HMEAN in labels:  # 2021+: the harmonic means over everything, below their header row
        header = rows[labels.index(OVERALL_AMEAN) - 1]
        values = rows[labels.index(OVERALL_HMEAN)]
        pairs = [(h, v) for h, v in zip(header, values, strict=True) if "AUC" in h]
    else:  # 2020: the arithmetic mean of each machine type's "Average" row
        header = next(r for r in rows if r[0] == "id")
        averages = np.array([[float(v) for v in r[1:]] for r in rows if r[0] == "Average"])
        pairs = [(h, str(v)) for h, v in zip(header[1:], averages.mean(axis=0), strict=True) if "AUC" in h]
    metrics.update({h: float(v) for h, v in pairs})
    return metrics


def detector_label(model: str, params: dict) -> str:
    """The detector's name; an ensemble's with its members (detector names or run folder names)."""
    members = params.get("members") if model == "ensemble" else None
    if not members:
        return model
    names = [
        str(m.get("model") or Path(str(m.get("path", "?"))).name)
        if isinstance(m, dict)
        else Path(str(m)).name
        for m in members
    ]
    return f"ensemble({', '.join(names)})"


def read_run(path: Path | str) -> RunRow:
    """A run directory or a multi-seed directory, as one row."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: no such run directory")
    if (path / SEEDS_JSON).is_file():
        record = _read_json(path / SEEDS_JSON)
        per_seed = [overall_metrics(seed_dir(path, int(s))) for s in record.get("seeds", [])]
        if not per_seed:
            raise DataError(f"{path}: {SEEDS_JSON} lists no seeds")
        model = str(record.get("model", "?"))
    else:
        per_seed = [overall_metrics(path)]
        config = read_config(path)
        model = detector_label(str(config.get("model", "?")), config.get("params") or {})
    names = [n for n in per_seed[0] if all(n in m for m in per_seed)]
    return RunRow(str(path), model, {n: MetricSummary(n, [m[n] for m in per_seed]) for n in names})


def compare_runs(paths: Sequence[Path | str]) -> list[RunRow]:
    from asdkit.reports.comparable import warn_if_not_comparable

    rows = [read_run(p) for p in paths]
    if not rows:
        raise DataError("no runs to compare")
    warn_if_not_comparable(paths)
    return rows


def columns(rows: Sequence[RunRow]) -> list[str]:
    """The official score first, then the parts every run reports (in the first run's order)."""
    return [c for c in rows[0].metrics if all(c in r.metrics for r in rows)]


def best_rows(rows: Sequence[RunRow], column: str) -> set[int]:
    """Indices of the rows with the highest mean in ``column`` (every column here: higher is better)."""
    means = [r.metrics[column].mean for r in rows]
    top = max(means)
    return {i for i, m in enumerate(means) if m == top}


def _cell(summary: MetricSummary) -> str:
    if len(summary.values) > 1:
        return f"{summary.mean:.4f} ± {summary.std:.4f}"
    return f"{summary.mean:.4f}"


def comparison_table(rows: Sequence[RunRow]) -> Table:
    cols = columns(rows)
    table = Table(title="Comparison (mean ± std over seeds; * best per column)", title_justify="left")
    table.add_column("run")
    table.add_column("detector")
    table.add_column("seeds", justify="right")
    for c in cols:
        table.add_column(c, justify="right")
    best = {c: best_rows(rows, c) for c in cols}
    for i, row in enumerate(rows):
        cells = [
            f"[bold]{_cell(row.metrics[c])} *[/]" if i in best[c] else _cell(row.metrics[c]) for c in cols
        ]
        table.add_row(row.name, row.model, str(row.n_seeds), *cells)
    return table


def seeds_table(summary: Sequence[MetricSummary], seeds: Sequence[int]) -> Table:
    """A multi-seed run's metrics: mean, standard deviation and each seed's value."""
    table = Table(title=f"Over {len(seeds)} seeds (std: sample standard deviation)", title_justify="left")
    table.add_column("metric")
    table.add_column("mean", justify="right")
    table.add_column("std", justify="right")
    for s in seeds:
        table.add_column(f"seed {s}", justify="right")
    for m in summary:
        table.add_row(m.name, f"{m.mean:.4f}", f"{m.std:.4f}", *(f"{v:.4f}" for v in m.values))
    return table


def comparison_csv_text(rows: Sequence[RunRow]) -> str:
    cols = columns(rows)
    best = {c: best_rows(rows, c) for c in cols}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        ["run", "detector", "seeds", *(f"{c} {s}" for c in cols for s in ("mean", "std")), "best in"]
    )
    for i, row in enumerate(rows):
        values = [repr(float(v)) for c in cols for v in (row.metrics[c].mean, row.metrics[c].std)]
        best_in = ";".join(c for c in cols if i in best[c])
        writer.writerow([row.name, row.model, row.n_seeds, *values, best_in])
    return buf.getvalue()


def write_comparison_csv(rows: Sequence[RunRow], path: Path | str) -> Path:
    path = Path(path)
    atomic_write_text(path, comparison_csv_text(rows))
    return path
