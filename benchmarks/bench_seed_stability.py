"""Seed stability of the margin detectors: one model, K seeds' scores averaged, K seeds' embeddings joined.

Each configuration is trained on each seed of each data set (through :func:`asdkit.api.run`, as
``bench_quality.py`` does: ``OUT/<set>/<configuration>/seed_<n>/``, one feature cache per set) and the
table shows, per set and configuration, the official score's mean +- sample std over the seeds, its
minimum and maximum, the range (max - min) and whether the seeds agree within ``--within`` (0.05); beside it
the same for one machine type's AUC (``--machine``, fan by default: the type that swung most on the
held-back sets; on 2021+ layouts the mean of its source and target AUC). Sets named in ``--pool`` also get
a row per configuration for their mean: each seed's official score averaged over those sets (the folds of
``real_protocol.py``), then its spread over seeds.

Run (the README's table; the trees come from ``real_protocol.py --fold 0/1/2`` and ``proxy_sets.py``)::

    OMP_NUM_THREADS=1 python benchmarks/bench_seed_stability.py --k 3 --seeds 0-4 --out /tmp/stab --reuse \\
        --data real_f0=/tmp/real_f0 real_f1=/tmp/real_f1 real_f2=/tmp/real_f2 \\
        heldback_like_1=/tmp/proxy/heldback_like_1 --pool real_f0 real_f1 real_f2

The configurations are ``arcface`` and ``adacos`` with ``n_models=1``, ``n_models=K`` (scores, the default
``ensemble_mode``) and ``n_models=K,ensemble_mode=embeddings``; ``--models`` replaces the detector names.
``--reuse`` keeps a configuration whose multi-seed run on a set already completed with the same detector,
parameters and seeds (``bench_quality.py --reuse`` writes the same folders, so both can fill one OUT).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from asdkit import api  # noqa: E402
from asdkit.rundir import SEEDS_CSV  # noqa: E402
from asdkit.seeds import parse_seeds  # noqa: E402
from benchmarks._table import print_table  # noqa: E402
from benchmarks.bench_quality import _complete, parse_config  # noqa: E402

OFFICIAL = "official score"


def configurations(models: list[str], k: int) -> list[str]:
    """Per detector: one model, K seeds' normalised scores averaged, K seeds' embeddings joined."""
    out = []
    for model in models:
        out += [model, f"{model}:n_models={k}", f"{model}:n_models={k},ensemble_mode=embeddings"]
    return out


def per_seed(run: Path, seeds: list[int]) -> dict[str, np.ndarray]:
    """Every metric of a multi-seed run (``seeds.csv``) as its per-seed values, in ``seeds`` order."""
    with (run / SEEDS_CSV).open(newline="") as f:
        rows = {row["metric"]: row for row in csv.DictReader(f)}
    return {m: np.array([float(row[f"seed_{s}"]) for s in seeds]) for m, row in rows.items()}


def spread(values: np.ndarray, within: float) -> dict[str, object]:
    """Mean +- sample std, min-max, range and whether the range is within ``within``."""
    low, high = float(values.min()), float(values.max())
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {
        "mean +- std": f"{values.mean():.3f} +- {std:.3f}",
        "min-max": f"{low:.3f}-{high:.3f}",
        "range": high - low,
        f"within {within:g}": "yes" if high - low <= within + 1e-12 else "no",
    }


def machine_auc(values: dict[str, np.ndarray], machine: str) -> np.ndarray | None:
    """The machine type's AUC per seed: DCASE2020's one AUC, or the mean of 2021+'s source and target AUC."""
    names = (
        [f"{machine}: AUC"]
        if f"{machine}: AUC" in values
        else [f"{machine}: AUC (source)", f"{machine}: AUC (target)"]
    )
    found = [values[n] for n in names if n in values]
    return np.mean(found, axis=0) if found else None


def row(set_name: str, config: str, values: dict[str, np.ndarray], machine: str, within: float):
    out: dict[str, object] = {"set": set_name, "configuration": config}
    out.update({f"official {k}": v for k, v in spread(values[OFFICIAL], within).items()})
    auc = machine_auc(values, machine)
    if auc is not None:
        machine_spread = spread(auc, within)
        out[f"{machine} AUC mean +- std"] = machine_spread["mean +- std"]
        out[f"{machine} AUC min-max"] = machine_spread["min-max"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", required=True, help="NAME=TREE pairs (any layout asdkit reads)")
    parser.add_argument("--models", nargs="+", default=["arcface", "adacos"])
    parser.add_argument("--k", type=int, default=3, help="seeds per ensemble (n_models)")
    parser.add_argument("--seeds", default="0-4", help="e.g. 0-4 or 0,1,2")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_seed_stability"))
    parser.add_argument("--pool", nargs="*", default=[], help="sets whose per-seed mean gets a row")
    parser.add_argument("--machine", default="fan", help="machine type whose AUC is shown beside")
    parser.add_argument("--within", type=float, default=0.05, help="the agreement asked of the seeds")
    parser.add_argument("--reuse", action="store_true", help="keep completed configurations")
    args = parser.parse_args()
    if args.k < 2:
        raise SystemExit(f"error: --k {args.k}: an ensemble needs at least 2 seeds")
    sets: dict[str, Path] = {}
    for item in args.data:
        name, sep, tree = item.partition("=")
        if not sep or not Path(tree).is_dir():
            raise SystemExit(f"error: --data {item!r}: expected NAME=TREE with an existing TREE folder")
        sets[name] = Path(tree)
    unknown = [p for p in args.pool if p not in sets]
    if unknown:
        raise SystemExit(f"error: --pool {', '.join(unknown)}: not among the --data names")
    seeds = parse_seeds(args.seeds)
    configs = [parse_config(c) for c in configurations(args.models, args.k)]
    results: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for set_name, tree in sets.items():
        for folder, model, params in configs:
            out = args.out / set_name / folder
            if not (args.reuse and _complete(out, model, params, seeds)):
                start = time.perf_counter()
                api.run(
                    tree,
                    out,
                    model=model,
                    params=params,
                    cache_dir=args.out / set_name / "cache",
                    plots=False,
                    seeds=seeds,
                )
                print(f"{set_name}/{folder}: {len(seeds)} seeds in {time.perf_counter() - start:.0f} s")
            results[set_name, folder] = per_seed(out, seeds)
    rows = [
        row(set_name, folder, results[set_name, folder], args.machine, args.within)
        for set_name in sets
        for folder, _, _ in configs
    ]
    if len(args.pool) > 1:
        pooled = f"mean of {'+'.join(args.pool)}"
        for folder, _, _ in configs:
            mean = {
                metric: np.mean([results[s, folder][metric] for s in args.pool], axis=0)
                for metric in results[args.pool[0], folder]
                if all(metric in results[s, folder] for s in args.pool)
            }
            rows.append(row(pooled, folder, mean, args.machine, args.within))
    print_table(
        rows,
        f"Seed stability over seeds {args.seeds} (K={args.k}; official score and {args.machine} AUC; "
        f"'within {args.within:g}': max - min of the official score)",
    )


if __name__ == "__main__":
    main()
