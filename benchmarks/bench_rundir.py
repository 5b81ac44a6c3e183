"""What the run-directory bookkeeping costs: the lock, the rerun check and the status, on a demo-sized run.

Two numbers: the time of ``RunDirectory`` entered and left on its own (lock file, flock, check of the
outputs, release), and a ``--debug`` demo run (the dense AE on the tiny synthetic set) with the bookkeeping
on and replaced by a no-op, alternated so that a loaded machine slows both alike.

    python benchmarks/bench_rundir.py --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _table import format_table

from asdkit import api, rundir
from asdkit.data.synthetic import SyntheticSpec, generate


class _NoBookkeeping(contextlib.AbstractContextManager):
    def __init__(self, out: Any, **kwargs: Any) -> None:
        Path(out).mkdir(parents=True, exist_ok=True)

    def __exit__(self, *exc: object) -> None:
        return None


def enter_and_leave(root: Path, n: int) -> float:
    """Mean seconds of one ``with RunDirectory(out)`` around nothing (a fresh folder each time)."""
    start = time.perf_counter()
    for i in range(n):
        with rundir.RunDirectory(root / f"r{i}"):
            pass
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="asdkit-bench-rundir-"))
    data = generate(work / "data", layout="dcase2022", spec=SyntheticSpec.tiny(seed=0))
    cache = work / "cache"
    api.run(data, work / "warm", debug=True, cache_dir=cache, plots=False)  # features cached, imports done
    seconds: dict[str, list[float]] = {"with bookkeeping": [], "no-op instead": []}
    real = rundir.RunDirectory
    for i in range(args.repeats):
        for label, cls in (("with bookkeeping", real), ("no-op instead", _NoBookkeeping)):
            rundir.RunDirectory = cls  # type: ignore[misc]
            try:
                start = time.perf_counter()
                api.run(data, work / f"{label[:4]}-{i}", debug=True, cache_dir=cache, plots=False)
                seconds[label].append(time.perf_counter() - start)
            finally:
                rundir.RunDirectory = real  # type: ignore[misc]
    rows: list[dict[str, Any]] = [
        {
            "what": f"--debug demo run, {label}",
            "mean s": statistics.mean(values),
            "std s": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values),
        }
        for label, values in seconds.items()
    ]
    alone = enter_and_leave(work / "alone", 200)
    rows.append({"what": "RunDirectory enter + leave alone", "mean s": alone, "std s": None, "n": 200})
    print(format_table(rows))
    print(f"\nbookkeeping alone: {alone * 1e3:.3f} ms per run")


if __name__ == "__main__":
    main()
