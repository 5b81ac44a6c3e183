"""Quality over seeds on any data tree: each configuration trained on each seed, one comparison table.

Run::

    .venv/bin/python benchmarks/bench_quality.py --data TREE --models ae mahalanobis knn \\
        "ae:score=selective_mahalanobis" "patch_bank:bank_size=512,fraction=0.05" --seeds 0-4

A configuration is ``NAME`` or ``NAME:KEY=VALUE,KEY=VALUE`` (values as ``--param`` reads them: JSON, else
text; a JSON list, object or string may hold commas: ``'ensemble:members=["mahalanobis","patch_bank"]'``,
``'knn:quantiles="0.1,0.9"'``). Each is run with :func:`asdkit.api.run` over all seeds
(``OUT/<config>/seed_<n>/``, plus its ``seeds.csv``), all sharing one feature cache (``OUT/cache``). The
table is ``asdkit compare``'s (mean +- sample std over seeds of the official score and its parts, best per
column marked) with the mean training and scoring seconds per run beside it; ``OUT/quality.csv`` holds the
same numbers. ``--reuse`` keeps configurations whose multi-seed run already completed with the same
detector, parameters and seeds. ``--per-machine`` adds a table of each machine type's own official score
(the year's statistic over that type's sections and domains only: 2020 the arithmetic mean of its AUC and
pAUC, 2021+ their harmonic mean), mean +- std over seeds, in ``OUT/per_machine.csv``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from asdkit import api
from asdkit.metrics.evaluation import Evaluation
from asdkit.reports.compare import RunRow, best_rows, columns, compare_runs, comparison_csv_text
from asdkit.run_result import load_run
from asdkit.rundir import SEEDS_JSON, seed_dir
from asdkit.seeds import parse_seeds
from asdkit.utils.io import atomic_write_text


def parse_config(text: str) -> tuple[str, str, dict[str, Any]]:
    """``"ae:score=mahalanobis,epochs=20"`` -> (folder name, detector, parameters)."""
    model, _, rest = text.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in _top_level_items(rest))):
        key, sep, raw = item.partition("=")
        if not sep:
            raise SystemExit(f"error: configuration {text!r}: expected NAME:KEY=VALUE,KEY=VALUE")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text), model, params


def _top_level_items(text: str) -> list[str]:
    """``text`` split at the commas outside brackets and double quotes, so a JSON value keeps its own."""
    items, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        quoted ^= ch == '"'
        depth += 0 if quoted else {"[": 1, "{": 1, "]": -1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0 and not quoted:
            items.append(text[start:i])
            start = i + 1
    return [*items, text[start:]]


def _complete(out: Path, model: str, params: dict[str, Any], seeds: list[int]) -> bool:
    path = out / SEEDS_JSON
    if not path.is_file():
        return False
    record = json.loads(path.read_text())
    same = record.get("model") == model and record.get("params") == params and record.get("seeds") == seeds
    return record.get("status") == "complete" and same


def run_seconds(out: Path, seeds: list[int]) -> dict[str, float]:
    """Mean training and scoring seconds per seed run, from each run's config.json timings."""
    timings = [json.loads((seed_dir(out, s) / "config.json").read_text())["timings"] for s in seeds]
    return {part: float(np.mean([t.get(part, np.nan) for t in timings])) for part in ("train", "score")}


def quality_table(rows: list[RunRow], seconds: list[dict[str, float]], n_seeds: int) -> Table:
    """``compare``'s columns (mean +- std over seeds, best marked) plus the seconds per run."""
    cols = columns(rows)
    best = {c: best_rows(rows, c) for c in cols}
    table = Table(title=f"Quality over {n_seeds} seeds (mean ± sample std; * best per column)")
    for head in ("configuration", *cols, "train s/run", "score s/run"):
        table.add_column(head, justify="left" if head == "configuration" else "right")
    for i, (row, secs) in enumerate(zip(rows, seconds, strict=True)):
        cells = []
        for c in cols:
            m = row.metrics[c]
            cell = f"{m.mean:.4f} ± {m.std:.4f}"
            cells.append(f"[bold]{cell} *[/]" if i in best[c] else cell)
        table.add_row(Path(row.name).name, *cells, f"{secs['train']:.1f}", f"{secs['score']:.1f}")
    return table


def machine_scores(evaluation: Evaluation) -> dict[str, float]:
    """Each machine type's official score: the year's statistic over its own AUC and pAUC values only."""
    statistic = np.mean if evaluation.scheme == "dcase2020" else _hmean
    parts = [c for c in evaluation.columns if "AUC" in c]
    return {
        m.machine: float(statistic([r.values[c] for r in m.rows for c in parts])) for m in evaluation.machines
    }


def _hmean(values: list[float]) -> float:
    a = np.asarray(values, dtype=np.float64)
    return 0.0 if np.any(a <= 0) else float(len(a) / np.sum(1.0 / a))


def per_machine_rows(outs: list[Path], seeds: list[int]) -> list[list[str]]:
    """``configuration, machine, mean, std, seed_<n>...`` per configuration and machine type (sample std)."""
    rows = [["configuration", "machine", "mean", "std", *(f"seed_{s}" for s in seeds)]]
    for out in outs:
        per_seed = []
        for s in seeds:
            evaluation = load_run(seed_dir(out, s)).evaluation
            if evaluation is None:
                raise SystemExit(f"error: {seed_dir(out, s)}: no evaluation to break down per machine type")
            per_seed.append(machine_scores(evaluation))
        for machine in per_seed[0]:
            values = np.array([scores[machine] for scores in per_seed])
            std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            rows.append(
                [out.name, machine, f"{values.mean():.4f}", f"{std:.4f}", *(f"{v:.4f}" for v in values)]
            )
    return rows


def per_machine_table(rows: list[list[str]]) -> Table:
    """Configurations down, machine types across: mean +- std over seeds, the best per machine type marked."""
    body = rows[1:]
    configs = list(dict.fromkeys(r[0] for r in body))
    machines = list(dict.fromkeys(r[1] for r in body))
    cell = {(r[0], r[1]): (float(r[2]), float(r[3])) for r in body}
    best = {m: max(cell[c, m][0] for c in configs if (c, m) in cell) for m in machines}
    table = Table(title="Official score per machine type (mean ± sample std over seeds; * best per column)")
    for head in ("configuration", *machines):
        table.add_column(head, justify="left" if head == "configuration" else "right")
    for c in configs:
        cells = []
        for m in machines:
            if (c, m) not in cell:
                cells.append("")
                continue
            mean, std = cell[c, m]
            text = f"{mean:.4f} ± {std:.4f}"
            cells.append(f"[bold]{text} *[/]" if mean == best[m] else text)
        table.add_row(c, *cells)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a data tree (any layout asdkit reads)")
    parser.add_argument("--models", nargs="+", default=["ae", "mahalanobis", "knn", "patch_bank"])
    parser.add_argument("--seeds", default="0-4", help="e.g. 0-4 or 0,1,2")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_quality"))
    parser.add_argument("--machines", nargs="*", help="machine types to run (default: all)")
    parser.add_argument("--ground-truth", type=Path, help="ground truth for an evaluation-set tree")
    parser.add_argument("--debug", action="store_true", help="each detector's debug settings (fast)")
    parser.add_argument("--reuse", action="store_true", help="keep completed configurations")
    parser.add_argument("--per-machine", action="store_true", help="also a table per machine type")
    parser.add_argument("--threads", type=int, help="torch/BLAS threads per run (default: by work size)")
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"error: --data {args.data}: no such directory")
    seeds = parse_seeds(args.seeds)
    configs = [parse_config(m) for m in args.models]
    done: list[tuple[Path, dict[str, float]]] = []
    for name, model, params in configs:
        out = args.out / name
        if not (args.reuse and _complete(out, model, params, seeds)):
            start = time.perf_counter()
            api.run(
                args.data,
                out,
                model=model,
                params=params,
                machines=args.machines or None,
                ground_truth=args.ground_truth,
                debug=args.debug,
                cache_dir=args.out / "cache",
                plots=False,
                seeds=seeds,
                threads=args.threads,
            )
            print(f"{name}: {len(seeds)} seeds in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        done.append((out, run_seconds(out, seeds)))
    rows = compare_runs([out for out, _ in done])
    Console(width=220).print(quality_table(rows, [seconds for _, seconds in done], len(seeds)))
    lines = list(csv.reader(io.StringIO(comparison_csv_text(rows))))
    lines[0] += ["train s/run", "score s/run"]
    for line, (_, seconds) in zip(lines[1:], done, strict=True):
        line += [repr(seconds["train"]), repr(seconds["score"])]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(lines)
    atomic_write_text(args.out / "quality.csv", buf.getvalue())
    print(f"table: {args.out / 'quality.csv'}")
    if args.per_machine:
        machine_rows = per_machine_rows([out for out, _ in done], seeds)
        Console(width=220).print(per_machine_table(machine_rows))
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(machine_rows)
        atomic_write_text(args.out / "per_machine.csv", buf.getvalue())
        print(f"per machine type: {args.out / 'per_machine.csv'}")


if __name__ == "__main__":
    main()
