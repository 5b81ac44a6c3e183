"""The default detector's rule, applied to ``bench_quality.py --per-machine`` tables (README, "How the
default's members were chosen").

Run::

    python benchmarks/default_choice.py --real /tmp/q/real_f0 /tmp/q/real_f1 /tmp/q/real_f2 \\
        --synthetic /tmp/q/heldback_like_1 /tmp/q/heldback_like_2 /tmp/q/synthetic
    # the same, plus how far each gap is from the noise of the test clips (minutes per unit):
    python benchmarks/default_choice.py --real ... --synthetic ... --bootstrap 2000 --seed 0

Each folder is a ``bench_quality.py --per-machine`` output (its ``per_machine.csv``). A *unit* is one real
machine type (its score the mean over the ``--real`` folds) or one machine type of one ``--synthetic`` set.
Per unit, the best of the ``--singles`` is the bar and each configuration's gap is that best minus its score
(means over seeds). The ``--candidates`` are ranked by (1) the worst gap over the real units;
among those within ``--tie`` of the smallest, (2) the worst gap over all units; then (3) the higher mean
over the real units. Printed: every configuration's score per unit (``--markdown``: as the README's table;
``--default C``: with C's gap to the best single detector), then the ranking.

``--bootstrap N`` (``--seed S``) adds how far those gaps are from noise, from the run folders beside each
``per_machine.csv`` (``<config>/seed_<n>/``, read back by :func:`asdkit.run_result.load_run`, so labels,
sections and domains are the ones the run evaluated with). A paired, stratified bootstrap over test clips:
each resample draws the clips again with replacement within each fold (or set), machine type, section,
domain and label, the same draw for every configuration and seed; each configuration's per-machine official
score (``bench_quality.machine_scores`` on :func:`asdkit.metrics.evaluate`) is recomputed on it and averaged
over seeds (and folds). Per unit and configuration: the gap to (a) the best single detector fixed on the full
data and (b) the best single detector picked again in each resample (the selection a "best of four" makes),
each with its 90% percentile interval and a verdict at 0.02: "behind" (the interval's lower end above it),
"within" (its upper end at or below it), else "undecided". It resamples test clips only: not the training
clips, not the recordings a machine type could have had.

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
import sys
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asdkit.errors import AsdkitError
from asdkit.metrics import ScoreRecord, ScoreTable, evaluate
from asdkit.run_result import load_run
from asdkit.rundir import seed_dir
from benchmarks.bench_quality import machine_scores

SINGLES = ("mahalanobis", "knn", "patch_bank", "patch_bank_aggregate=mean")
BAR = 0.02


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
        head += [f"{default} - best", f"within {BAR}"]
    rows = [head]
    for u in all_units:
        best = max((s for s in singles if s in u.scores), key=lambda s: u.scores[s])
        cells = [f"{u.scores[c]:.3f} ± {u.stds[c]:.3f}" if c in u.scores else "" for c in configs]
        row = [u.name, *cells, best]
        if default:
            gap = -gaps(u, singles)[default]
            row += [f"{gap:+.3f}", "yes" if gap >= -BAR - 1e-9 else "no"]
        rows.append(row)
    return rows


# -- how far the gaps are from noise: a paired, stratified bootstrap over test clips ------------------------
@dataclass
class TestSet:
    """One machine type's test clips in one fold or set, with each configuration's scores per seed, aligned
    to ``records`` (the records' own scores are not read)."""

    records: list[ScoreRecord]
    scheme: str
    scores: dict[str, list[np.ndarray]]
    strata: list[np.ndarray] = field(init=False)
    _vector: dict[tuple[str, int], int] = field(init=False, repr=False)
    _memo: dict[tuple[int, bytes], float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        groups: dict[tuple[str, str, int], list[int]] = defaultdict(list)
        for i, r in enumerate(self.records):
            groups[r.section, r.domain, r.label].append(i)
        self.strata = [np.asarray(v) for _, v in sorted(groups.items())]
        # Equal score vectors (a deterministic detector's seeds) are scored once per draw.
        ids: dict[bytes, int] = {}
        self._vector = {
            (c, k): ids.setdefault(np.asarray(v, dtype=np.float64).tobytes(), len(ids))
            for c, vectors in self.scores.items()
            for k, v in enumerate(vectors)
        }
        self._memo = {}

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """Clip indices drawn with replacement within each section, domain and label (sorted: a multiset,
        which is all AUC and pAUC depend on)."""
        return np.sort(np.concatenate([rng.choice(s, size=len(s), replace=True) for s in self.strata]))

    def score(self, config: str, seed: int, index: np.ndarray) -> float:
        """The machine type's official score (``bench_quality``'s per-machine statistic, by asdkit's
        evaluator) of ``config``'s ``seed``-th run on the clips ``index``."""
        key = (self._vector[config, seed], index.tobytes())
        if key not in self._memo:
            scores = self.scores[config][seed]
            table = ScoreTable(
                (replace(self.records[i], score=float(scores[i]), decision=None) for i in index), self.scheme
            )
            (self._memo[key],) = machine_scores(evaluate(table)).values()
        return self._memo[key]


def unit_scores(sets: list[TestSet], draws: list[np.ndarray] | None = None) -> dict[str, float]:
    """Each configuration's unit score: the mean over seeds, then over folds, on the clips ``draws`` (one
    index array per set; None: every clip once)."""
    out = {}
    for c in sets[0].scores:
        per_set = []
        for k, s in enumerate(sets):
            index = np.arange(len(s.records)) if draws is None else draws[k]
            per_set.append(np.mean([s.score(c, seed, index) for seed in range(len(s.scores[c]))]))
        out[c] = float(np.mean(per_set))
    return out


@dataclass
class Resampled:
    """One unit's bootstrap: the gap of every configuration to the best single detector (positive: behind),
    on the full data and per resample, against the best fixed on the full data and against the best picked
    again in each resample."""

    full: dict[str, float]
    fixed: dict[str, np.ndarray]
    repicked: dict[str, np.ndarray]


def bootstrap(sets: list[TestSet], singles: tuple[str, ...], n: int, rng: np.random.Generator) -> Resampled:
    """One unit's paired bootstrap: each resample draws every set's clips once, for every configuration."""
    present = [c for c in singles if c in sets[0].scores]
    if not present:
        raise SystemExit(f"error: none of the single detectors {', '.join(singles)} has run folders")
    full_scores = unit_scores(sets)
    best = max(present, key=lambda c: full_scores[c])
    configs = list(full_scores)
    boot = np.empty((n, len(configs)))
    for b in range(n):
        scores = unit_scores(sets, [s.draw(rng) for s in sets])
        boot[b] = [scores[c] for c in configs]
    column = {c: boot[:, j] for j, c in enumerate(configs)}
    top = np.max([column[c] for c in present], axis=0)
    return Resampled(
        full={c: full_scores[best] - full_scores[c] for c in configs},
        fixed={c: column[best] - column[c] for c in configs},
        repicked={c: top - column[c] for c in configs},
    )


def verdict(low: float, high: float, bar: float = BAR) -> str:
    """Where a gap's interval lies against the bar."""
    if low > bar + 1e-9:
        return "behind"
    return "within" if high <= bar + 1e-9 else "undecided"


def interval(gaps: np.ndarray, level: float = 0.90) -> tuple[float, float]:
    """The percentile interval holding ``level`` of the resampled gaps."""
    low, high = np.quantile(gaps, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def read_test_sets(folder: Path, configs: list[str]) -> dict[str, TestSet]:
    """Machine type -> its test set, with the scores of every seed of ``configs`` in ``folder`` (a
    ``bench_quality.py --per-machine`` output: the seeds are ``per_machine.csv``'s)."""
    with open(folder / "per_machine.csv", newline="") as f:
        head = next(csv.reader(f))
    seeds = [int(h.removeprefix("seed_")) for h in head if h.startswith("seed_")]
    records: dict[str, list[ScoreRecord]] = {}
    scores: dict[str, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
    scheme, first = None, None
    for c in configs:
        for seed in seeds:
            run_dir = seed_dir(folder / c, seed)
            try:
                run = load_run(run_dir) if run_dir.is_dir() else None
            except AsdkitError as exc:
                raise SystemExit(f"error: {exc}") from None
            table = run.table if run is not None and run.config.get("status") == "complete" else None
            if table is None:
                raise SystemExit(
                    f"error: {run_dir}: not a complete run with labelled test scores to resample"
                )
            if scheme not in (None, table.scheme):
                raise SystemExit(f"error: {run_dir}: {table.scheme} rules, {first}: {scheme}")
            scheme, first = table.scheme, first or run_dir
            for machine in table.machines():
                mine = {(r.section, r.domain, r.label, r.name): r for r in table if r.machine == machine}
                ref = records.setdefault(machine, [mine[k] for k in sorted(mine)])
                keys = [(r.section, r.domain, r.label, r.name) for r in ref]
                if set(mine) != set(keys):
                    raise SystemExit(f"error: {run_dir}: {machine}'s test clips differ from {first}'s")
                scores[machine][c].append(np.array([mine[k].score for k in keys]))
    assert scheme is not None
    return {m: TestSet(records[m], scheme, dict(scores[m])) for m in records}


def resampled_units(
    real: list[Path], synthetic: list[Path], configs: list[str], singles: tuple[str, ...], n: int, seed: int
) -> list[tuple[str, Resampled]]:
    """The bootstrap of every unit, named as :func:`units` names them (real: the folds drawn together). Each
    unit's draws depend on ``seed`` and its name only, so a unit gives the same answer in any company."""
    named: list[tuple[str, list[TestSet]]] = []
    folds = [read_test_sets(f, configs) for f in real]
    for machine in folds[0] if folds else []:
        if any(machine not in fold for fold in folds):
            raise SystemExit(f"error: {machine}: not scored on every --real fold")
        named.append((f"real / {machine}", [fold[machine] for fold in folds]))
    for folder in synthetic:
        named += [(f"{folder.name} / {m}", [s]) for m, s in read_test_sets(folder, configs).items()]
    out = []
    for name, sets in named:
        start = time.perf_counter()
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        out.append((name, bootstrap(sets, singles, n, rng)))
        print(f"{name}: {n} resamples in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return out


def bootstrap_rows(
    resampled: list[tuple[str, Resampled]], configs: list[str], against: str
) -> list[list[str]]:
    """Units down, configurations across: the gap (best - configuration, full data), its 90% interval and
    verdict against the best single detector ``against`` = "fixed" or "repicked"; then a count line."""
    rows = [["unit", *configs]]
    counts = {c: defaultdict(int) for c in configs}
    for name, r in resampled:
        cells = []
        for c in configs:
            low, high = interval(getattr(r, against)[c])
            word = verdict(low, high)
            counts[c][word] += 1
            cells.append(f"{_signed(r.full[c])} [{_signed(low)}, {_signed(high)}] {word}")
        rows.append([name, *cells])
    words = ("behind", "undecided", "within")
    rows.append(["count", *(" / ".join(f"{counts[c][w]} {w}" for w in words) for c in configs)])
    return rows


def _signed(value: float) -> str:
    """``+0.120``; a rounding of a tiny negative value reads ``+0.000``, not ``-0.000``."""
    return f"{round(value, 3) + 0.0:+.3f}"


def check_full_gaps(
    all_units: list[Unit], resampled: list[tuple[str, Resampled]], singles: tuple[str, ...]
) -> None:
    """The run folders, scored again on all their clips, must give the gaps of ``per_machine.csv`` (which
    rounds to 4 decimals): else the folders hold other runs than the table."""
    table = {u.name: gaps(u, singles) for u in all_units}
    for name, r in resampled:
        for c, gap in r.full.items():
            if abs(gap - table[name][c]) > 1e-3:
                raise SystemExit(
                    f"error: {name}, {c}: gap {gap:+.4f} from the run folders, {table[name][c]:+.4f} from "
                    "per_machine.csv: the folders hold other runs than the table"
                )


def print_rows(console: Console, rows: list[list[str]], title: str, markdown: bool) -> None:
    """A header row and its body as a rich table, or as Markdown (the README's tables)."""
    if markdown:
        print("\n".join("| " + " | ".join(r) + " |" for r in [rows[0], ["---"] * len(rows[0]), *rows[1:]]))
        return
    table = Table(title=title)
    for head in rows[0]:
        table.add_column(head, justify="left" if head == "unit" else "right")
    for r in rows[1:]:
        table.add_row(*r)
    console.print(table)


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
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="N",
        help="also N paired bootstrap resamples of test clips",
    )
    parser.add_argument("--seed", type=int, default=0, help="the bootstrap's random seed")
    args = parser.parse_args()
    if args.bootstrap < 0:
        raise SystemExit(f"error: --bootstrap {args.bootstrap}: give a number of resamples >= 0")
    all_units = units(args.real, args.synthetic)
    if not all_units:
        raise SystemExit("error: give --real and/or --synthetic folders")
    singles = tuple(args.singles)
    configs = list(dict.fromkeys(c for u in all_units for c in u.scores))
    candidates = args.candidates or [c for c in configs if c not in singles]
    console = Console(width=250)
    rows = unit_rows(all_units, configs, singles, args.default)
    print_rows(
        console,
        rows,
        "Official score per unit (mean ± std over seeds; real: per seed the mean of the folds)",
        args.markdown,
    )
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
    if args.bootstrap > 0:
        shown = [c for c in configs if c in candidates or c in singles]
        resampled = resampled_units(args.real, args.synthetic, shown, singles, args.bootstrap, args.seed)
        check_full_gaps(all_units, resampled, singles)
        for against, title in (
            ("fixed", "the best single detector of the full data"),
            ("repicked", "the best single detector picked again in each resample"),
        ):
            caption = (
                f"Gap to {title} (best - configuration; positive: behind), [90% interval] over "
                f"{args.bootstrap} paired resamples of the test clips (seed {args.seed}), verdict at {BAR}"
            )
            if args.markdown:
                print(f"\n{caption}:\n")
            print_rows(console, bootstrap_rows(resampled, shown, against), caption, args.markdown)


if __name__ == "__main__":
    main()
