"""Fit and score time and bank memory of ``patch_bank`` at N and 4N training clips: the bank stays bounded.

Run: ``.venv/bin/python benchmarks/bench_patch_bank.py [--clips 100] [--frames 313] [--n-mels 128]``

Random log-mel clips of DCASE size (10 s: 313 frames of 128 bands) with one section and domain. Fit time
grows with the clips read (each clip's share of the candidate pool is drawn from it), but the coreset
selection works on a pool of at most ``POOL_FACTOR * bank_size`` frames and the threshold on at most
``THRESHOLD_CLIPS`` clips, so the bank's size, its memory and the time to score a clip do not grow with N.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _table import print_table

from asdkit.data.manifest import Clip
from asdkit.detectors.banks.patch_bank import PatchBankDetector
from asdkit.detectors.base import ClipFeatures
from asdkit.features.config import FeatureConfig


def _clips(n: int, frames: int, n_mels: int, rng: np.random.Generator) -> ClipFeatures:
    profile = np.linspace(-20, -60, n_mels)[:, None]
    arrays = [(profile + rng.normal(0, 1, (n_mels, frames))).astype(np.float32) for _ in range(n)]
    clips = [Clip(path=f"/b/m/{i}.wav", machine="m", section="00") for i in range(n)]
    return ClipFeatures(arrays, clips, FeatureConfig(n_mels=n_mels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=100, help="N (the second row trains on 4N)")
    parser.add_argument("--frames", type=int, default=313)
    parser.add_argument("--n-mels", type=int, default=128)
    parser.add_argument("--bank-size", type=int, default=1024)
    parser.add_argument("--test-clips", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    test = _clips(args.test_clips, args.frames, args.n_mels, rng)
    rows = []
    for n in (args.clips, 4 * args.clips):
        train = _clips(n, args.frames, args.n_mels, rng)
        detector = PatchBankDetector(bank_size=args.bank_size)
        start = time.perf_counter()
        detector.fit(train)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        detector.anomaly_score(test)
        score_s = time.perf_counter() - start
        bank_bytes = sum(a.nbytes for a in detector.bank_arrays_.values())
        rows.append(
            {
                "training clips": n,
                "fit s": fit_s,
                "fit ms/clip": 1000 * fit_s / n,
                "score ms/clip": 1000 * score_s / len(test),
                "bank frames": sum(b["shapes"]["bank"][0] for b in detector.bank_layout_),
                "bank MiB": bank_bytes / 2**20,
            }
        )
    print_table(rows, f"patch_bank, bank_size={args.bank_size}, {args.n_mels} mels x {args.frames} frames")


if __name__ == "__main__":
    main()
