"""The official decision threshold: a gamma distribution fitted to the training clips' scores."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import scipy.stats

log = logging.getLogger(__name__)


def gamma_threshold(scores: np.ndarray, quantile: float = 0.9) -> float:
    """The ``quantile`` of a gamma distribution fitted to normal training scores (the DCASE baselines' rule).

    Falls back to the empirical quantile when the fit is degenerate: too few or constant scores, or a fit
    dragged off by one extreme score (e.g. a mixture component collapsed onto one clip) whose upper
    quantile lies below the scores' median or far beyond their range. An alarm threshold must always exist
    and must neither flag most normal clips nor none at all.
    """
    scores = np.asarray(scores, dtype=np.float64)
    scores = scores[np.isfinite(scores)]
    if scores.size == 0:
        raise ValueError("cannot fit a threshold: no finite training scores")
    if scores.size >= 3 and np.ptp(scores) > 0:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                shape, loc, scale = scipy.stats.gamma.fit(scores)
            threshold = float(scipy.stats.gamma.ppf(quantile, shape, loc=loc, scale=scale))
            if _plausible(threshold, scores):
                return threshold
        except (ValueError, RuntimeError, FloatingPointError):
            pass
    log.warning(
        "gamma fit failed or implausible on %d training scores; using their empirical %.0f%% quantile",
        scores.size,
        100 * quantile,
    )
    return float(np.quantile(scores, quantile))


def _plausible(threshold: float, scores: np.ndarray) -> bool:
    """An upper quantile lies above the median and within one range width beyond the largest score."""
    top, spread = float(scores.max()), float(np.ptp(scores))
    return bool(np.isfinite(threshold) and np.median(scores) <= threshold <= top + spread)
