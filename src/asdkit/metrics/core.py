"""The per-set metrics exactly as the official DCASE Task 2 evaluators compute them.

AUC and pAUC are scikit-learn's ``roc_auc_score`` (pAUC with ``max_fpr=0.1``, i.e. the
McClish-standardised partial AUC the challenge reports, not the raw area). Precision, recall and
F1 divide by ``max(denominator, eps)``, so an empty denominator gives 0.0 instead of a warning or
NaN, and the harmonic mean floors every value at ``eps`` first, so one zero does not turn the mean
into an error: this is what the official scripts do and what the published result files show.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from asdkit.errors import DataError

EPS: float = sys.float_info.epsilon
"""Machine epsilon (2.220446049250313e-16): the floor the evaluators put under every value."""

MAX_FPR: float = 0.1
"""The false-positive-rate limit of the challenge's pAUC."""


class UnevaluableSet(DataError):
    """A test set that lacks normal or anomalous clips: its AUC does not exist, so it is left out.

    ``what`` names the set ("fan section 00"), ``reason`` says what it lacks ("no anomalous clip").
    """

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what}: {reason}")
        self.what = what
        self.reason = reason


def _check_binary(y_true: np.ndarray, what: str) -> None:
    """roc_auc_score's own message ("Only one class present") does not say which set; ours does."""
    present = set(np.unique(y_true).tolist())
    if present != {0, 1}:
        missing = "anomalous" if 1 not in present else "normal"
        raise UnevaluableSet(what, f"AUC needs both normal and anomalous clips, but it has no {missing} clip")


def auc(
    y_true: Sequence[int] | np.ndarray, y_score: Sequence[float] | np.ndarray, what: str = "set"
) -> float:
    """Area under the ROC curve (``sklearn.metrics.roc_auc_score``); ``what`` names the set in errors."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y_true, dtype=int)
    _check_binary(y, what)
    return float(roc_auc_score(y, np.asarray(y_score, dtype=float)))


def pauc(
    y_true: Sequence[int] | np.ndarray,
    y_score: Sequence[float] | np.ndarray,
    max_fpr: float = MAX_FPR,
    what: str = "set",
) -> float:
    """McClish-standardised partial AUC up to ``max_fpr``, as the challenge reports it."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y_true, dtype=int)
    _check_binary(y, what)
    return float(roc_auc_score(y, np.asarray(y_score, dtype=float), max_fpr=max_fpr))


def precision_recall_f1(
    y_true: Sequence[int] | np.ndarray, decisions: Sequence[int] | np.ndarray
) -> tuple[float, float, float]:
    """Precision, recall and F1 of 0/1 decisions (1 = anomalous), each denominator floored at eps.

    The floor makes an empty denominator give 0.0 (e.g. a system that never says "anomalous" has
    precision 0.0, as the official result files show), not NaN.
    """
    y = np.asarray(y_true, dtype=int)
    d = np.asarray(decisions, dtype=int)
    if y.shape != d.shape:
        raise ValueError(f"{y.size} labels but {d.size} decisions")
    tp = int(np.sum((y == 1) & (d == 1)))
    fp = int(np.sum((y == 0) & (d == 1)))
    fn = int(np.sum((y == 1) & (d == 0)))
    precision = tp / max(tp + fp, EPS)
    recall = tp / max(tp + fn, EPS)
    f1 = 2.0 * precision * recall / max(precision + recall, EPS)
    return float(precision), float(recall), float(f1)


def amean(values: Sequence[float] | np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """Arithmetic mean (numpy's, so the last digits match the official files)."""
    out = np.mean(np.asarray(values, dtype=float), axis=axis)
    return float(out) if np.ndim(out) == 0 else out


def hmean(values: Sequence[float] | np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """Harmonic mean with every value floored at machine epsilon first, as the evaluators do.

    Computed as ``n / sum(1 / max(x, eps))``, the form of ``scipy.stats.hmean`` the official files
    were written with: newer SciPy computes ``1 / mean(1 / x)``, which differs in the last bit.
    Because of the floor, a zero among n values gives about ``n * eps / (number of zeros)``
    rather than 0: e.g. 3 zero precisions among 21 sections give 7 * eps = 1.554e-15.
    """
    a = np.maximum(np.asarray(values, dtype=float), EPS)
    if axis is None:
        a = a.ravel()
        if a.size == 0:
            raise ValueError("harmonic mean of no values")
        return float(a.size / np.sum(1.0 / a))
    if a.shape[axis] == 0:
        raise ValueError("harmonic mean of no values")
    return a.shape[axis] / np.sum(1.0 / a, axis=axis)
