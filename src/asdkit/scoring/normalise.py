"""Score normalisation with training statistics, so that detectors on different scales can be averaged.

``zscore``: (score - mean) / std of the training clips' scores. ``rank``: the fraction of training scores
below the score (interpolated between neighbouring training scores); beyond the highest training score it
goes on rising linearly (one unit per training-score range), so that anomalies far above every normal
clip keep their order instead of all tying at 1.
"""

from __future__ import annotations

import numpy as np

from asdkit.errors import ModelError

NORMALISATIONS = ("zscore", "rank")


def check_normalisation(kind: str) -> None:
    if kind not in NORMALISATIONS:
        raise ModelError(f"normalise must be one of {', '.join(NORMALISATIONS)}, got {kind!r}")


def fit_normaliser(kind: str, train_scores: np.ndarray) -> dict[str, np.ndarray]:
    """The statistics ``normalise`` needs, as arrays (kept in a weights file)."""
    check_normalisation(kind)
    scores = np.asarray(train_scores, dtype=np.float64)
    if scores.size == 0 or not np.all(np.isfinite(scores)):
        raise ModelError("cannot normalise: training scores are empty or not finite")
    if kind == "zscore":
        std = float(scores.std())
        return {"mean": np.array(scores.mean()), "std": np.array(std if std > 0 else 1.0)}
    return {"sorted": np.sort(scores)}


def normalise(kind: str, stats: dict[str, np.ndarray], scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if kind == "zscore":
        return (scores - stats["mean"]) / stats["std"]
    ref = stats["sorted"]
    n = len(ref)
    span = float(ref[-1] - ref[0]) or 1.0
    # ECDF midpoints: the i-th smallest training score maps to (i + 0.5) / n
    ranks = np.interp(scores, ref, (np.arange(n) + 0.5) / n)
    below, above = scores < ref[0], scores > ref[-1]
    ranks[below] = 0.5 / n - (ref[0] - scores[below]) / span
    ranks[above] = 1 - 0.5 / n + (scores[above] - ref[-1]) / span
    return ranks
