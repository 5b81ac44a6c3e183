"""Delete-one-unit jackknife interval for the official score.

Why units are (machine type, section) pairs and not clips: the challenge builds one independent
test set per section (its own machine, its own recording conditions, its own normal and anomalous
clips), and the official score is a function of per-section AUC/pAUC values. Clips inside a section
are not independent replicates: AUC and pAUC are averages over *pairs* of clips of one section, and
clips share the machine and the noise, so deleting single clips would understate the spread. The
sections are the smallest pieces that are independent of one another, so they are what a
resampling method should delete. Leaving one section out removes all of its values at once (both
domains of a 2021 section, or AUC(source), AUC(target) and pAUC of a 2022+ section).

The interval is ``estimate ± t(0.975, n-1) · SE`` where SE is the jackknife standard error
``sqrt((n-1)/n · Σ (θ₍ᵢ₎ - θ̄₍·₎)²)`` (equivalently the standard error of the mean of the
pseudo-values ``n·θ - (n-1)·θ₍ᵢ₎``). It is centred on the reported score so that the interval
always contains the number printed next to it; the bias-corrected estimate (the mean of the
pseudo-values) is reported beside it. With few sections this is rough, but it says how much the
score would move with another draw of test sets, which a single number cannot.

The official scores are AUC-like values in [0, 1], but ``estimate ± t·SE`` is not: with few sections
it can reach -0.57 or 1.97. The evaluation therefore asks for ``bounds=(0, 1)``: the interval is
clamped to them (``clamped`` says when that cut something off), and it asks for at least
``MIN_SECTIONS`` sections, below which no interval is given at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

#: Fewer sections than this give no interval: two leave-one-out values say nothing about a spread.
MIN_SECTIONS = 3


@dataclass(frozen=True)
class JackknifeInterval:
    """A jackknife estimate of the uncertainty of one statistic."""

    estimate: float
    """The statistic on all units (the official score)."""
    bias_corrected: float
    """The mean of the pseudo-values (Tukey's bias-corrected estimate)."""
    se: float
    """The jackknife standard error."""
    low: float
    high: float
    confidence: float
    n_units: int
    pseudo_values: tuple[float, ...]
    units: tuple[tuple[str, str], ...] = ()
    """(machine type, section) of each unit, in the order of ``pseudo_values`` (when known)."""
    clamped: bool = False
    """True when ``estimate ± t·SE`` left the bounds and ``low``/``high`` were cut back to them."""

    def __str__(self) -> str:
        pct = round(100 * self.confidence)
        span = f"{self.low:.4f}-{self.high:.4f}"
        return f"{self.estimate:.4f} ({pct}% CI {span}, jackknife over {self.n_units} sections)"


def jackknife(
    unit_values: Sequence[Sequence[float]],
    statistic: Callable[[np.ndarray], float],
    confidence: float = 0.95,
    units: Sequence[tuple[str, str]] = (),
    bounds: tuple[float, float] | None = None,
    min_units: int = 2,
) -> JackknifeInterval | None:
    """Delete-one-unit jackknife of ``statistic`` over the pooled values of the units.

    ``unit_values[i]`` holds the values unit ``i`` contributes; ``statistic`` gets the flat array of
    the values of the units kept. Returns None when there are fewer than ``min_units`` units (at
    least 2: no spread to estimate from). With ``bounds`` the interval is clamped into them.
    """
    from scipy.stats import t as student_t

    n = len(unit_values)
    if n < max(2, min_units):
        return None
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if units and len(units) != n:
        raise ValueError(f"{n} units of values but {len(units)} unit names")
    blocks = [np.asarray(v, dtype=float).ravel() for v in unit_values]
    theta = float(statistic(np.concatenate(blocks)))
    leave_out = np.array(
        [float(statistic(np.concatenate(blocks[:i] + blocks[i + 1 :]))) for i in range(n)], dtype=float
    )
    pseudo = n * theta - (n - 1) * leave_out
    se = math.sqrt((n - 1) / n * float(np.sum((leave_out - leave_out.mean()) ** 2)))
    half = float(student_t.ppf(0.5 + confidence / 2.0, n - 1)) * se
    low, high = theta - half, theta + half
    clamped = False
    if bounds is not None:
        clamped = low < bounds[0] or high > bounds[1]
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return JackknifeInterval(
        estimate=theta,
        bias_corrected=float(pseudo.mean()),
        se=se,
        low=low,
        high=high,
        confidence=confidence,
        n_units=n,
        pseudo_values=tuple(float(p) for p in pseudo),
        units=tuple(units),
        clamped=clamped,
    )
