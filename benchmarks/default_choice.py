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
over the real units. Printed: every configuration's score per unit (``--markdown``: as the README's table;
``--default C``: with C's gap to the best single detector), then the ranking.

Third round (written down and committed before any of its numbers was run): a fusion that hedges, the
calibrated maximum of members (``ensemble`` with ``combine="max"``: per clip the largest of the members'
scores, each normalised with its own held-out training scores). The rule is that of rounds 1-2: per unit the
bar is the best of the four singles; (1) the smallest worst gap over the 6 real units; among those within
0.01 of it, (2) the smallest worst gap over all 13 units; then (3) the highest mean over the real units. The
default changes only if a candidate other than R3-0 wins. Members: P = ``mahalanobis`` with
``stats=pooled+delta+envelope``; M = ``mahalanobis`` (pooled); B = ``patch_bank`` (``top_mean``); Bm =
``patch_bank(aggregate=mean)``; D = ``mahalanobis(stats=delta)``; E = ``mahalanobis(stats=envelope)``.
Candidates: R3-0 = P (the default today); R3-1 = max (zscore) of {P, M}; R3-2 = max (zscore) of {P, B};
R3-3 = max (zscore) of {P, Bm}; R3-4 = max (zscore) of {P, M, B, Bm}; R3-5 = max (rank) of {P, M, B, Bm};
R3-6 = max (zscore) of {M, D, E} (group-wise maximum); R3-7 = max (zscore) of {M, D, E, B}. As
``bench_quality.py`` configurations
(``$P`` = ``{"model":"mahalanobis","params":{"stats":"pooled+delta+envelope"}}``,
``$Bm`` = ``{"model":"patch_bank","params":{"aggregate":"mean"}}``, ``$D``/``$E`` likewise with
``"stats":"delta"``/``"envelope"``)::

    R3-0  mahalanobis:stats=pooled+delta+envelope
    R3-1  ensemble:combine=max,members=[$P,"mahalanobis"]
    R3-2  ensemble:combine=max,members=[$P,"patch_bank"]
    R3-3  ensemble:combine=max,members=[$P,$Bm]
    R3-4  ensemble:combine=max,members=[$P,"mahalanobis","patch_bank",$Bm]
    R3-5  ensemble:combine=max,normalise=rank,members=[$P,"mahalanobis","patch_bank",$Bm]
    R3-6  ensemble:combine=max,members=["mahalanobis",$D,$E]
    R3-7  ensemble:combine=max,members=["mahalanobis",$D,$E,"patch_bank"]

run on the six proxy folders (seeds 0-4, ``--threads 1 --per-machine``, beside the four singles), then ranked
here with ``--default`` R3-0's folder and ``--candidates`` the eight folders.
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
    """One machine type of one proxy: each configuration's score per seed (real: the mean over folds)."""

    name: str
    real: bool
    per_seed: dict[str, np.ndarray]

    @property
    def scores(self) -> dict[str, float]:
        """Mean over seeds."""
        return {c: float(v.mean()) for c, v in self.per_seed.items()}

    @property
    def stds(self) -> dict[str, float]:
        """Sample standard deviation over seeds (0 for one seed)."""
        return {c: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for c, v in self.per_seed.items()}


def read_per_machine(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    """machine -> configuration -> scores per seed, from ``folder/per_machine.csv``."""
    path = folder / "per_machine.csv"
    if not path.is_file():
        raise SystemExit(f"error: {path}: missing (run bench_quality.py --per-machine --out {folder})")
    table: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            seeds = [float(v) for k, v in row.items() if k.startswith("seed_")]
            table[row["machine"]][row["configuration"]] = np.asarray(seeds)
    return table


def units(real: list[Path], synthetic: list[Path]) -> list[Unit]:
    """The real machine types (per seed the mean over folds; only configurations run on every fold with the
    same number of seeds) and each synthetic set's machine types."""
    out = []
    folds = [read_per_machine(f) for f in real]
    for machine in folds[0] if folds else []:
        configs = [c for c in folds[0][machine] if all(c in fold.get(machine, {}) for fold in folds)]
        per_seed = {}
        for c in configs:
            runs = [fold[machine][c] for fold in folds]
            if len({len(r) for r in runs}) != 1:
                raise SystemExit(f"error: {c} on {machine}: the folds were run with different seeds")
            per_seed[c] = np.mean(runs, axis=0)
        out.append(Unit(f"real / {machine}", True, per_seed))
    for folder in synthetic:
        for machine, configs in read_per_machine(folder).items():
            out.append(Unit(f"{folder.name} / {machine}", False, dict(configs)))
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


def unit_rows(
    all_units: list[Unit], configs: list[str], singles: tuple[str, ...], default: str | None
) -> list[list[str]]:
    """Units down, configurations across (mean ± std over seeds); with ``default``, its gap to the best single
    detector and whether it is within 0.02 of it."""
    head = ["unit", *configs, "best single"]
    if default:
        head += [f"{default} - best", "within 0.02"]
    rows = [head]
    for u in all_units:
        best = max((s for s in singles if s in u.scores), key=lambda s: u.scores[s])
        cells = [f"{u.scores[c]:.3f} ± {u.stds[c]:.3f}" if c in u.scores else "" for c in configs]
        row = [u.name, *cells, best]
        if default:
            gap = -gaps(u, singles)[default]
            row += [f"{gap:+.3f}", "yes" if gap >= -0.02 - 1e-9 else "no"]
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, nargs="*", default=[], help="bench_quality outputs, real folds")
    parser.add_argument(
        "--synthetic", type=Path, nargs="*", default=[], help="bench_quality outputs, synthetic"
    )
    parser.add_argument("--singles", nargs="+", default=list(SINGLES), help="the single detectors (folders)")
    parser.add_argument("--candidates", nargs="*", help="default candidates (default: all but the singles)")
    parser.add_argument("--tie", type=float, default=0.01, help="worst real gaps this close count as tied")
    parser.add_argument("--default", help="a configuration whose gap per unit is shown (the chosen default)")
    parser.add_argument("--markdown", action="store_true", help="the unit table as Markdown (README)")
    args = parser.parse_args()
    all_units = units(args.real, args.synthetic)
    if not all_units:
        raise SystemExit("error: give --real and/or --synthetic folders")
    singles = tuple(args.singles)
    configs = list(dict.fromkeys(c for u in all_units for c in u.scores))
    candidates = args.candidates or [c for c in configs if c not in singles]
    console = Console(width=250)
    rows = unit_rows(all_units, configs, singles, args.default)
    if args.markdown:
        print("\n".join("| " + " | ".join(r) + " |" for r in [rows[0], ["---"] * len(rows[0]), *rows[1:]]))
    else:
        table = Table(
            title="Official score per unit (mean ± std over seeds; real: per seed the mean of the folds)"
        )
        for head in rows[0]:
            table.add_column(head, justify="left" if head == "unit" else "right")
        for r in rows[1:]:
            table.add_row(*r)
        console.print(table)
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
