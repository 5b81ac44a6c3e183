"""Quality of the embedding detectors and the default against the dense AE on the synthetic demo data.

Run: ``.venv/bin/python benchmarks/bench_embedding_quality.py [--data asdkit-demo/data] [--out runs/quality]``

Trains the dense AE as ``asdkit demo`` does (20 epochs) and each embedding detector with small settings
for a 2-core CPU, on the same data and feature cache, then prints the ``asdkit compare`` table (official
score, AUC(source), AUC(target), pAUC; best per column marked) and writes ``OUT/comparison.csv``. The
goal: the best embedding detector beats the AE on AUC(target) by a clear margin. The ``*_spectrum`` runs
are the margin classifiers with the two-branch (spectrum + log-mel) input, beside their log-mel-only runs.
``--reuse`` keeps run directories that already completed with the same detector and parameters (e.g.
after an interruption).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from asdkit import api
from asdkit.data.synthetic import SyntheticSpec, generate
from asdkit.demo import DEMO_PARAMS
from asdkit.reports.compare import compare_runs, comparison_table, write_comparison_csv

#: (run name, detector, parameters): the AE as the demo trains it, then the embedding detectors.
RUNS: list[tuple[str, str, dict[str, Any]]] = [
    ("ae", "ae", dict(DEMO_PARAMS)),
    ("knn", "knn", {}),
    ("mahalanobis", "mahalanobis", {}),
    ("gmm", "gmm", {}),
    ("mahalanobis_q", "mahalanobis", {"quantiles": "0.1,0.5,0.9"}),
    ("patch_bank", "patch_bank", {}),
    ("ensemble", "ensemble", {}),  # the default detector: mahalanobis + patch_bank(aggregate=mean)
    ("arcface", "arcface", {"epochs": 5}),
    ("arcface_spectrum", "arcface", {"epochs": 5, "inputs": "spectrum+logmel"}),
    ("adacos", "adacos", {"epochs": 5}),
    ("adacos_spectrum", "adacos", {"epochs": 5, "inputs": "spectrum+logmel"}),
]


def _complete(run_dir: Path, model: str, params: dict[str, Any]) -> bool:
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        return False
    config = json.loads(config_path.read_text())
    same = config.get("model") == model and all(config["params"].get(k) == v for k, v in params.items())
    return config.get("status") == "complete" and same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("asdkit-demo/data"))
    parser.add_argument("--out", type=Path, default=Path("runs/quality"))
    parser.add_argument("--reuse", action="store_true", help="keep completed runs with the same settings")
    parser.add_argument("--only", nargs="*", help="run names to (re)train; default all")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"generating the demo data set in {args.data}", file=sys.stderr)
        generate(args.data, layout="dcase2022", spec=SyntheticSpec(seed=0))
    for name, model, params in RUNS:
        run_dir = args.out / name
        if args.only and name not in args.only:
            continue
        if args.reuse and _complete(run_dir, model, params):
            print(f"{name}: kept {run_dir}", file=sys.stderr)
            continue
        start = time.perf_counter()
        result = api.run(args.data, run_dir, model=model, params=params, overwrite=True)
        seconds = time.perf_counter() - start
        print(
            f"{name}: official score {result.evaluation.official_score:.4f} ({seconds:.0f} s)",
            file=sys.stderr,
        )
    done = [args.out / name for name, model, params in RUNS if _complete(args.out / name, model, params)]
    missing = sorted({name for name, _, _ in RUNS} - {p.name for p in done})
    if missing:
        print(f"not in the table (not run or not complete): {', '.join(missing)}", file=sys.stderr)
    rows = compare_runs(done)
    Console(width=160).print(comparison_table(rows))
    print(f"comparison: {write_comparison_csv(rows, args.out / 'comparison.csv')}")


if __name__ == "__main__":
    main()
