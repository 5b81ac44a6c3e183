"""How many unseen normal clips each detector's saved threshold flags, over seeds: the distribution the
threshold test's band comes from (``test_threshold_flags_a_few_unseen_normal_clips`` in
``tests/unit/test_detectors.py``).

Same data as that test (its ``_features``: 100 training clips, 200 unseen normal clips drawn alike, each
seed drawing both anew), same quick settings. The threshold is the 90th percentile of a gamma fitted to
held-out scores, so about 10% is intended; a quantile of ~100 held-out scores and 200 test clips spread it by
roughly +-3.7 points (binomial), before any model effect.

    python benchmarks/bench_threshold_seeds.py --seeds 0-11 \\
        --detectors knn mahalanobis patch_bank ensemble gmm
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from asdkit.seeds import parse_seeds  # noqa: E402
from benchmarks._table import format_table  # noqa: E402
from tests.unit.test_detectors import _features, _small, _with_proxy  # noqa: E402


def flagged_fraction(name: str, seed: int) -> float:
    train = _with_proxy(_features(100, False, np.random.default_rng(seed)))
    unseen = _features(200, False, np.random.default_rng(10_000 + seed))
    detector = _small(name, epochs=10, seed=seed).fit(train)
    return float(detector.predict(unseen).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-19")
    parser.add_argument(
        "--detectors", nargs="+", default=["knn", "mahalanobis", "gmm", "patch_bank", "ensemble"]
    )
    args = parser.parse_args()
    rows = []
    for name in args.detectors:
        start = time.perf_counter()
        values = np.array([flagged_fraction(name, s) for s in parse_seeds(args.seeds)])
        print(f"{name}: {' '.join(f'{v:.3f}' for v in values)}", flush=True)
        rows.append(
            {
                "detector": name,
                "mean +- std": f"{values.mean():.3f} +- {values.std(ddof=1):.3f}",
                "min": float(values.min()),
                "q05": float(np.quantile(values, 0.05)),
                "q95": float(np.quantile(values, 0.95)),
                "max": float(values.max()),
                "seconds": time.perf_counter() - start,
            }
        )
    print(f"flagged fraction of 200 unseen normal clips, seeds {args.seeds}")
    print(format_table(rows))


if __name__ == "__main__":
    main()
