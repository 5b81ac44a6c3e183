"""The default detector's rule, applied to ``bench_quality.py --per-machine`` tables (README, "How the
default's members were chosen").

Run::

    python benchmarks/default_choice.py --real /tmp/q/real_f0 /tmp/q/real_f1 /tmp/q/real_f2 \\
        --synthetic /tmp/q/heldback_like_1 /tmp/q/heldback_like_2 /tmp/q/synthetic

Each folder is a ``bench_quality.py --per-machine`` output (its ``per_machine.csv``). A *unit* is one real
machine type (its score the mean over the ``--real`` folds) or one machine type of one ``--synthetic`` set.
Per unit, the best of the ``--singles`` is the bar and each configuration's gap is that best minus its score
(means over seeds). The ``--candidates`` are ranked by (1) the worst gap over the real units;
among those within ``--tie`` of the smallest, (2) the worst gap over all units; then (3) the higher mean
over the real units. Printed: every configuration's score and gap per unit, then the ranking.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

SINGLES = ("mahalanobis", "knn", "patch_bank", "patch_bank_aggregate=mean")


@dataclass
class Unit:
    """One machine type of one proxy: each configuration's score (mean over seeds, and folds if real)
    and the spread over seeds (the largest of the folds' sample std)."""

    name: str
    real: bool
    scores: dict[str, float]
    stds: dict[str, float]


def read_per_machine(folder: Path) -> dict[str, dict[str, tuple[float, float]]]:
    """machine -> configuration -> (mean, std) from ``folder/per_machine.csv``."""
    path = folder / "per_machine.csv"
    if not path.is_file():
        raise SystemExit(f"error: {path}: missing (run bench_quality.py --per-machine --out {folder})")
    table: dict[str, dict[str, tuple[float, float]]] = defaultdict(dict)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            table[row["machine"]][row["configuration"]] = (float(row["mean"]), float(row["std"]))
    return table


def units(real: list[Path], synthetic: list[Path]) -> list[Unit]:
    """The real machine types (mean over folds; only configurations run on every fold) and each synthetic
    set's machine types."""
    out = []
    folds = [read_per_machine(f) for f in real]
    for machine in folds[0] if folds else []:
        configs = [c for c in folds[0][machine] if all(c in fold.get(machine, {}) for fold in folds)]
        scores = {c: float(np.mean([fold[machine][c][0] for fold in folds])) for c in configs}
        stds = {c: max(fold[machine][c][1] for fold in folds) for c in configs}
        out.append(Unit(f"real / {machine}", True, scores, stds))
    for folder in synthetic:
        for machine, configs in read_per_machine(folder).items():
            out.append(
                Unit(
                    f"{folder.name} / {machine}",
                    False,
                    {c: v[0] for c, v in configs.items()},
                    {c: v[1] for c, v in configs.items()},
                )
            )
    return out


def gaps(unit: Unit, singles: tuple[str, ...]) -> dict[str, float]:
    """Each configuration's gap to the best single detector of the unit (positive: below it)."""
    present = [s for s in singles if s in unit.scores]
    if not present:
        raise SystemExit(f"error: {unit.name}: none of the single detectors {', '.join(singles)} was run")
    best = max(unit.scores[s] for s in present)
    return {c: best - v for c, v in unit.scores.items()}


def rank(all_units: list[Unit], candidates: list[str], singles: tuple[str, ...], tie: float) -> list[dict]:
    """The candidates in the rule's order, each with its worst real gap, worst overall gap and real mean."""
    real = [u for u in all_units if u.real]
    rows = []
    for c in candidates:
        missing = [u.name for u in all_units if c not in u.scores]
        if missing:
            raise SystemExit(f"error: {c}: not run on {', '.join(missing)}")
        rows.append(
            {
                "configuration": c,
                "worst_real_gap": max((gaps(u, singles)[c] for u in real), default=0.0),
                "worst_gap": max(gaps(u, singles)[c] for u in all_units),
                "real_mean": float(np.mean([u.scores[c] for u in real])) if real else float("nan"),
            }
        )
    floor = min(r["worst_real_gap"] for r in rows)
    for r in rows:
        r["tied"] = r["worst_real_gap"] <= floor + tie + 1e-9
    tied = sorted((r for r in rows if r["tied"]), key=lambda r: (r["worst_gap"], -r["real_mean"]))
    rest = sorted(
        (r for r in rows if not r["tied"]),
        key=lambda r: (r["worst_real_gap"], r["worst_gap"], -r["real_mean"]),
    )
    return tied + rest


def unit_table(all_units: list[Unit], configs: list[str], singles: tuple[str, ...]) -> Table:
    table = Table(
        title="Score per unit (mean over seeds; real: and folds) and gap to the best single detector"
    )
    table.add_column("configuration")
    for u in all_units:
        table.add_column(u.name, justify="right")
    for c in configs:
        cells = [
            f"{u.scores[c]:.3f} ({-gaps(u, singles)[c]:+.3f})" if c in u.scores else "" for u in all_units
        ]
        table.add_row(c, *cells)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, nargs="*", default=[], help="bench_quality outputs, real folds")
    parser.add_argument(
        "--synthetic", type=Path, nargs="*", default=[], help="bench_quality outputs, synthetic"
    )
    parser.add_argument("--singles", nargs="+", default=list(SINGLES), help="the single detectors (folders)")
    parser.add_argument("--candidates", nargs="*", help="default candidates (default: all but the singles)")
    parser.add_argument("--tie", type=float, default=0.01, help="worst real gaps this close count as tied")
    args = parser.parse_args()
    all_units = units(args.real, args.synthetic)
    if not all_units:
        raise SystemExit("error: give --real and/or --synthetic folders")
    singles = tuple(args.singles)
    configs = list(dict.fromkeys(c for u in all_units for c in u.scores))
    candidates = args.candidates or [c for c in configs if c not in singles]
    console = Console(width=250)
    console.print(unit_table(all_units, configs, singles))
    ranking = Table(
        title=f"The rule: worst real gap (ties within {args.tie}), then worst gap, then real mean"
    )
    for head in ("configuration", "worst real gap", "worst gap (all units)", "real mean", "tied on (1)"):
        ranking.add_column(head, justify="left" if head == "configuration" else "right")
    for r in rank(all_units, candidates, singles, args.tie):
        ranking.add_row(
            r["configuration"],
            f"{r['worst_real_gap']:+.3f}",
            f"{r['worst_gap']:+.3f}",
            f"{r['real_mean']:.3f}",
            "yes" if r["tied"] else "",
        )
    console.print(ranking)


if __name__ == "__main__":
    main()
