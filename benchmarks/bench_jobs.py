"""``--jobs``: a run's machine types in 1 and in N worker processes, on the same tree, in one process.

Run:  .venv/bin/python benchmarks/bench_jobs.py [--models ae knn] [--machines 4] [--train 60] [--test 10]
      [--duration 10] [--jobs 1 2] [--repeat 2] [--threads auto 1] [--epochs 3] [--root DIR]

A synthetic DCASE2022-style tree (``--machines`` machine types, one section, ``--train`` training and
``--test`` test clips per domain and class, ``--duration`` s each) is written once; a first run fills the
feature cache, so the timed runs compare training and scoring, not feature extraction. Each model then
runs once per ``--jobs`` value per round, the values interleaved over ``--repeat`` rounds so that load
from other processes hits all alike; wall times are mean +- std over the rounds. ``--threads`` pins each
machine type's torch/BLAS threads (``auto``: this process's default, in workers too). Every run's score
files are compared with the first ``--jobs`` value's: "identical" must say yes.

Columns: model, jobs, threads, wall s (mean +- std), speed-up over the first jobs value, identical; the
1-minute load average is printed before and after (other processes on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._table import print_table

MACHINES = ("fan", "pump", "slider", "valve", "ToyCar", "gearbox", "bearing")


def make_tree(root: Path, machines: int, n_train: int, n_test: int, duration: float) -> Path:
    from asdkit.data.synthetic import SyntheticSpec, generate

    spec = SyntheticSpec(
        machines=MACHINES[:machines],
        sections=1,
        n_train_source=n_train,
        n_train_target=max(1, n_train // 10),
        n_test_normal=n_test,
        n_test_anomaly=n_test,
        duration=duration,
    )
    return generate(root / "data", layout="dcase2022", spec=spec)


def run_once(
    tree: Path, out: Path, cache: Path, model: str, params: dict, jobs: int, threads: int | None
) -> float:
    from asdkit import api
    from asdkit.tracking import TrackingOptions

    start = time.perf_counter()
    api.run(tree, out, model=model, params=params, jobs=jobs, threads=threads, cache_dir=cache, plots=False,
            tracking=TrackingOptions(mlflow=False), overwrite=True)  # fmt: skip
    return time.perf_counter() - start


def score_files(out: Path) -> dict[str, bytes]:
    from asdkit.rundir import SCORES_DIR

    return {p.name: p.read_bytes() for p in sorted((out / SCORES_DIR).glob("*.csv"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["ae", "knn"])
    parser.add_argument("--machines", type=int, default=4)
    parser.add_argument("--train", type=int, default=60, help="training clips per machine type (source)")
    parser.add_argument("--test", type=int, default=10, help="test clips per domain and class")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per clip")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", nargs="+", default=["auto"], help="'auto' or counts, e.g. auto 1")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the network models")
    parser.add_argument("--root", type=Path, default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args(argv)

    root = args.root or Path(tempfile.mkdtemp(prefix="asdkit-bench-jobs-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        tree = make_tree(root, args.machines, args.train, args.test, args.duration)
        cache = root / "cache"
        load = os.getloadavg()[0]
        print(f"{args.machines} machine types x {args.train} training clips of {args.duration:g} s, "
              f"{os.cpu_count()} CPUs, "
              f"load average {load:.1f} at start")  # fmt: skip
        rows: list[dict[str, Any]] = []
        for model in args.models:
            from asdkit.detectors.registry import get_detector_class

            params = {"epochs": args.epochs} if "epochs" in get_detector_class(model)().get_params() else {}
            run_once(tree, root / "warm", cache, model, params, 1, None)  # fills the feature cache
            settings = [(j, t) for t in args.threads for j in args.jobs]
            walls: dict[tuple[int, str], list[float]] = {s: [] for s in settings}
            same: dict[tuple[int, str], bool] = dict.fromkeys(settings, True)
            reference: dict[str, dict[str, bytes]] = {}
            for _ in range(args.repeat):
                for jobs, threads in settings:
                    out = root / f"run_{model}_{jobs}_{threads}"
                    n = None if threads == "auto" else int(threads)
                    walls[(jobs, threads)].append(run_once(tree, out, cache, model, params, jobs, n))
                    files = score_files(out)
                    reference.setdefault(threads, files)
                    same[(jobs, threads)] &= files == reference[threads]
            for jobs, threads in settings:
                wall = walls[(jobs, threads)]
                spread = statistics.stdev(wall) if len(wall) > 1 else 0.0
                first = statistics.mean(walls[(args.jobs[0], threads)])
                rows.append({
                    "model": model,
                    "jobs": jobs,
                    "threads": threads,
                    "wall s": f"{statistics.mean(wall):.1f} +- {spread:.1f}",
                    "speed-up": round(first / statistics.mean(wall), 2),
                    "identical": "yes" if same[(jobs, threads)] else "NO",
                })  # fmt: skip
        print_table(rows)
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
        return 0 if all(r["identical"] == "yes" for r in rows) else 1
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
