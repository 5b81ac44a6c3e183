"""Which clip statistics a statistics detector (``knn``, ``kmeans``, ``mahalanobis``, ``gmm``) embeds a clip
by: its ``stats`` parameter, groups joined by ``+`` (``pooled+delta``).

Per-band mean and standard deviation of the log-mel see a steady spectrum well, but not how a sound moves:
the click of a valve is a few frames that barely shift a mean, and a fault of a rotating machine can be one
narrow tone that 128 mel bands blur into a band's level. Each group is a few numbers per clip that look
at one such aspect:

- ``pooled``: the chosen input's frames pooled over time (``pooling``, ``quantiles``): the only statistics
  before ``stats`` existed, and the default.
- ``delta``: per mel band, the standard deviation of the frame-to-frame difference of the log-mel: how fast a
  band fluctuates (transients, rattle, roughness), apart from how widely it varies over the clip.
- ``envelope``: the clip's loudness over time (the total mel power of each frame, in dB): its level quantiles,
  the spread of its changes and the power of its modulation in octave bands from 0.5 to 16 Hz: the rhythm of
  an intermittent machine (a valve's open/close cycle) and beating of a rotating one.
- ``tonal``: how far narrow peaks of the clip's Welch power spectrum (4096-point segments, 3.9 Hz bins at
  16 kHz) rise above their neighbourhood's median, the highest per 64 equal linear bands: a new or lost
  narrow tone (a bearing, a blade-pass harmonic) that the mel scale averages away.

``delta`` and ``envelope`` read the log-mel whatever ``input`` is; ``tonal`` reads the clip spectrum (the
``spectrum`` front end, fetched and cached beside the log-mel).

Dimension: ``pooled`` is 256 numbers for 128 mel bands, ``delta`` 128, ``envelope`` 12, ``tonal`` 64. After
each number is standardised over the training clips, every group after the first is scaled so that it weighs
as much as the first in the distance (by the square root of the first group's length over its own), so 12
envelope numbers are not drowned by 256 band statistics (the order of the groups changes only a common
scale). Mahalanobis on 12-33 clips rests on Ledoit-Wolf
shrinkage: with far fewer clips than dimensions its covariance is mostly the shrinkage target (a scaled
identity), so more dimensions move the score towards a weighted Euclidean distance; the groups stay small
(at most 460 numbers for all four) to keep the estimated part of the covariance meaningful.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from asdkit.errors import ModelError

POOLED, DELTA, ENVELOPE, TONAL = "pooled", "delta", "envelope", "tonal"
STATS_GROUPS = (POOLED, DELTA, ENVELOPE, TONAL)
#: the clip spectrum the ``tonal`` group reads: 4096-point Welch segments, 3.9 Hz bins at 16 kHz
TONAL_FFT = 4096
#: bins of the running median a peak is measured against (129 Hz at 16 kHz and 4096 points)
TONAL_MEDIAN_BINS = 33
#: equal linear bands the peak prominences are maximised over
TONAL_BANDS = 64
#: octave band edges (Hz) of the loudness envelope's modulation spectrum
MODULATION_EDGES = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
#: level quantiles of the loudness envelope
ENVELOPE_QUANTILES = (0.05, 0.5, 0.95, 1.0)
#: floor of a modulation band's power (dB^2), for a band a short clip does not resolve
POWER_FLOOR = 1e-6


def parse_stats(text: str) -> list[str]:
    """``"pooled+delta"`` -> ["pooled", "delta"]; a ModelError names a group that does not exist."""
    groups = [g.strip() for g in str(text).split("+")]
    unknown = [g for g in groups if g not in STATS_GROUPS]
    if unknown or not groups:
        raise ModelError(
            f"stats: groups joined by '+' among {', '.join(STATS_GROUPS)} (e.g. pooled+delta), got {text!r}"
        )
    if len(set(groups)) != len(groups):
        raise ModelError(f"stats: each group at most once, got {text!r}")
    return groups


def delta_std(logmel: np.ndarray) -> np.ndarray:
    """Per band, the standard deviation of the frame-to-frame difference (zeros for a one-frame clip)."""
    x = np.asarray(logmel, dtype=np.float64)
    if x.shape[1] < 2:
        return np.zeros(x.shape[0])
    return np.diff(x, axis=1).std(axis=1)


def envelope_statistics(logmel_db: np.ndarray, frame_rate: float) -> np.ndarray:
    """The loudness envelope's level quantiles, mean, standard deviation, the standard deviation of its
    changes, and the log power of its modulation per octave band of :data:`MODULATION_EDGES`."""
    x = np.asarray(logmel_db, dtype=np.float64) * (np.log(10.0) / 10.0)
    top = x.max(axis=0)
    env = (top + np.log(np.exp(x - top).sum(axis=0))) * (10.0 / np.log(10.0))  # dB of the summed power
    changes = float(np.diff(env).std()) if env.size > 1 else 0.0
    levels = [*np.quantile(env, ENVELOPE_QUANTILES), env.mean(), env.std(), changes]
    power = np.abs(np.fft.rfft(env - env.mean())) ** 2 / env.size
    freqs = np.fft.rfftfreq(env.size, d=1.0 / frame_rate)
    bands = []
    for low, high in pairwise(MODULATION_EDGES):
        inside = power[(freqs >= low) & (freqs < high)]
        bands.append(np.log10(max(float(inside.mean()) if inside.size else 0.0, POWER_FLOOR)))
    return np.array([*levels, *bands])


def tonal_prominence(spectrum_db: np.ndarray) -> np.ndarray:
    """The highest rise of the spectrum above its running median in each of :data:`TONAL_BANDS` linear
    bands (dB, >= 0)."""
    from scipy.ndimage import median_filter

    s = np.asarray(spectrum_db, dtype=np.float64).reshape(-1)
    rise = np.maximum(s - median_filter(s, size=TONAL_MEDIAN_BINS, mode="nearest"), 0.0)
    return np.array([part.max() if part.size else 0.0 for part in np.array_split(rise, TONAL_BANDS)])


def group_weights(lengths: Sequence[int]) -> np.ndarray:
    """Per number: 1 in the first group, sqrt(first length / own length) in each later group, so each group
    weighs alike in a distance of standardised numbers (and one group alone is left as it is)."""
    return np.concatenate([np.full(n, np.sqrt(lengths[0] / n)) for n in lengths])
