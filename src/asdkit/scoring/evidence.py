"""Label-free evidence for choosing a detector: held-out normal clips against pseudo-anomalies made from them.

No anomalous clip is known at training time, so each candidate detector is judged on how well it tells
normal training clips it did not see from those same clips altered in ways a faulty machine alters its
sound. The training clips (a stratified subsample of at most ``max_clips``) are split into ``folds``
stratified folds; each candidate is fitted on the other folds and scores the held-out fold's normal clips
and one pseudo-anomalous copy of each per transform. A candidate's evidence is its AUC (normal vs pseudo-
anomalous) per transform, averaged over folds and transforms; its stability is the standard deviation of the
per-fold mean AUC, and it is chosen by ``mean - std`` (a candidate that is good on one fold only loses).

The transforms (on the log-mel power in dB, ``[n_mels, frames]``), each at a severity drawn uniformly per
clip between a faint and a plain change (pseudo-anomalies that every candidate finds, AUC 1, could not tell
candidates apart; graded ones rank them by how faint a change each still notices):

- ``spectrum_shift``: the bands moved up or down by 1 to ``SHIFT_BINS`` whole mel bands, the vacated edge
  band repeated (a changed speed or resonance; whole bands, since interpolating between bands would smooth
  the spectrum, and a smoother clip is nearer a frame bank for a reason no fault has);
- ``transient``: one broadband click of ``TRANSIENT_FRAMES`` frames, ``TRANSIENT_DB`` above the clip's
  median level, added in power (a knock, a loose part);
- ``band_removed``: a band of ``BAND_FRACTION`` of the mel axis attenuated by ``BAND_DROP_DB`` (a missing
  component, a blocked path), floored at the clip's minimum;
- ``machine_mix``: another machine type's training clip (the bundle's proxy clips), level-matched and added
  in power ``MIX_GAIN_DB`` relative to the clip (a foreign sound); skipped when no other machine type is
  given.

These are proxies: they reward detectors that notice spectral and temporal change, and they say nothing of a
fault that looks like none of them. The benchmark ``benchmarks/bench_selection.py`` prints the evidence
beside the real scores so a reader can see how well it predicts them.

A candidate that reads inputs other than the log-mel (a spectrum branch, a pretrained encoder's
embeddings) needs pseudo-anomalies of that input: register a function for it in :data:`INPUT_TRANSFORMS`
(input name -> (clip arrays, their log-mel, transform, rng) -> altered arrays); without one the candidate
is recorded as having no evidence and is not chosen.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from asdkit.errors import DataError, ModelError

log = logging.getLogger(__name__)

TRANSFORMS = ("spectrum_shift", "transient", "band_removed", "machine_mix")
#: (faint, plain) severity of each transform, drawn uniformly per pseudo-anomaly (the shift: 1 to that many
#: whole bands)
SHIFT_BINS = 3
TRANSIENT_FRAMES = 2
TRANSIENT_DB = (3.0, 20.0)
BAND_FRACTION = 0.1
BAND_DROP_DB = (2.0, 12.0)
MIX_GAIN_DB = (-20.0, -6.0)


def _severity(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _db_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Power sum of two dB arrays."""
    return 10.0 * np.logaddexp(a * np.log(10) / 10, b * np.log(10) / 10) / np.log(10)


def spectrum_shift(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = x.shape[0]
    shift = int(rng.integers(1, SHIFT_BINS + 1)) * (1 if rng.random() < 0.5 else -1)
    return x[np.clip(np.arange(n) - shift, 0, n - 1)]  # band b takes what band b - shift held


def transient(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = x.copy()
    level = float(np.median(x)) + _severity(rng, TRANSIENT_DB)
    t = int(rng.integers(0, max(1, x.shape[1] - TRANSIENT_FRAMES + 1)))
    span = slice(t, t + TRANSIENT_FRAMES)
    out[:, span] = _db_sum(out[:, span], np.full_like(out[:, span], level))
    return out


def band_removed(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = x.shape[0]
    width = max(1, round(BAND_FRACTION * n))
    start = int(rng.integers(0, n - width + 1))
    out = x.copy()
    drop = _severity(rng, BAND_DROP_DB)
    out[start : start + width] = np.maximum(out[start : start + width] - drop, x.min())
    return out


def machine_mix(x: np.ndarray, rng: np.random.Generator, other: np.ndarray) -> np.ndarray:
    frames = x.shape[1]
    reps = -(-frames // other.shape[1])
    start = int(rng.integers(0, other.shape[1]))
    y = np.tile(other, (1, reps + 1))[:, start : start + frames]
    y = y - y.mean() + x.mean() + _severity(rng, MIX_GAIN_DB)
    return _db_sum(x, y)


def pseudo_anomaly(
    x: np.ndarray, transform: str, rng: np.random.Generator, other: np.ndarray | None = None
) -> np.ndarray:
    """One pseudo-anomalous copy of log-mel ``x`` (dB) by ``transform`` (see the module docstring)."""
    x = np.asarray(x, dtype=np.float64)
    if transform == "spectrum_shift":
        return spectrum_shift(x, rng)
    if transform == "transient":
        return transient(x, rng)
    if transform == "band_removed":
        return band_removed(x, rng)
    if transform == "machine_mix":
        if other is None:
            raise ValueError("machine_mix needs another machine type's clip")
        return machine_mix(x, rng, np.asarray(other, dtype=np.float64))
    raise ModelError(f"unknown pseudo-anomaly transform {transform!r}; known: {', '.join(TRANSFORMS)}")


#: Pseudo-anomalies of inputs beside the log-mel, by input name (the hook for other front ends).
INPUT_TRANSFORMS: dict[str, Callable[..., Sequence[np.ndarray]]] = {}


@dataclass
class Evidence:
    """What the choice rested on, as recorded in model.json, config.json and the report."""

    candidates: list[dict[str, Any]] = field(default_factory=list)
    chosen: list[int] = field(default_factory=list)
    n_clips: int = 0
    folds: int = 0
    transforms: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": "highest mean pseudo-anomaly AUC minus its standard deviation over folds",
            "chosen": [self.candidates[i]["name"] for i in self.chosen],
            "n_clips": self.n_clips,
            "folds": self.folds,
            "transforms": self.transforms,
            "seconds": round(self.seconds, 2),
            "candidates": self.candidates,
        }


def evidence_subset(clips: Sequence[Any], max_clips: int, seed: int) -> list[int]:
    """At most ``max_clips`` clips, drawn in proportion from each (section, domain) group (each keeping up
    to 3), so a few target clips are not lost to a subsample of a thousand source clips."""
    if len(clips) <= max_clips:
        return list(range(len(clips)))
    rng = np.random.default_rng([seed, 23])
    groups: dict[tuple[str, str], list[int]] = {}
    for i, c in enumerate(clips):
        groups.setdefault((c.section, c.domain), []).append(i)
    share = max_clips / len(clips)
    chosen: list[int] = []
    for key in sorted(groups):
        members = groups[key]
        take = min(len(members), max(3, round(share * len(members))))
        chosen += rng.choice(members, size=take, replace=False).tolist()
    return sorted(chosen)


def _auc(normal: np.ndarray, anomalous: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    keep_n, keep_a = normal[np.isfinite(normal)], anomalous[np.isfinite(anomalous)]
    if not len(keep_n) or not len(keep_a):
        return float("nan")
    y = np.r_[np.zeros(len(keep_n)), np.ones(len(keep_a))]
    return float(roc_auc_score(y, np.r_[keep_n, keep_a]))


def gather_evidence(
    candidates: Sequence[tuple[str, Callable[[], Any]]],
    X: Any,
    *,
    max_clips: int = 240,
    folds: int = 3,
    seed: int = 0,
    transforms: Sequence[str] = TRANSFORMS,
) -> Evidence:
    """Each candidate's pseudo-anomaly AUC per transform and fold on the training clips ``X`` (a
    :class:`asdkit.detectors.base.ClipFeatures`); ``candidates`` are (name, a factory of an unfitted
    detector). The chosen candidate is the first with the highest ``mean - std``."""
    from asdkit.detectors.base import ClipFeatures, stratified_folds

    start = time.perf_counter()
    keep = evidence_subset(X.clips, max_clips, seed)
    X = X.subset(keep)
    others = list(X.proxy.arrays) if X.proxy is not None and len(X.proxy) else []
    used = [t for t in transforms if t != "machine_mix" or others]
    fold_of = stratified_folds(X.clips, folds, seed)
    # the pseudo-anomalies, made once and shared by every candidate: [transform][clip]
    rng = np.random.default_rng([seed, 2023])
    altered: dict[str, list[np.ndarray]] = {}
    for t in used:
        altered[t] = [
            pseudo_anomaly(
                a, t, rng, others[int(rng.integers(len(others)))] if t == "machine_mix" else None
            ).astype(np.float32)
            for a in X.arrays
        ]
    records: list[dict[str, Any]] = []
    for name, make in candidates:
        record: dict[str, Any] = {"name": name}
        per_fold: list[dict[str, float]] = []
        try:
            extra = [i for i in make().tags().inputs if i != "logmel" and i not in INPUT_TRANSFORMS]
            if extra:
                raise ModelError(f"no pseudo-anomalies of input(s) {', '.join(extra)} (INPUT_TRANSFORMS)")
            for k in range(folds):
                held = np.flatnonzero(fold_of == k).tolist()
                rest = np.flatnonzero(fold_of != k).tolist()
                if not held or not rest:
                    continue
                detector = make()
                detector.feature_config_ = X.config
                detector._fit(X.subset(rest))
                normal = np.asarray(detector._score(X.subset(held)), dtype=np.float64)
                aucs: dict[str, float] = {}
                for t in used:
                    pseudo = ClipFeatures([altered[t][i] for i in held], [X.clips[i] for i in held], X.config)
                    aucs[t] = _auc(normal, np.asarray(detector._score(pseudo), dtype=np.float64))
                per_fold.append(aucs)
        except (ModelError, DataError, ValueError) as exc:
            log.warning("evidence: candidate %s could not be judged (%s)", name, exc)
            record.update(auc=None, fold_std=None, criterion=None, per_transform={}, error=str(exc))
            records.append(record)
            continue
        fold_means = [float(np.nanmean(list(f.values()))) for f in per_fold]
        mean = float(np.mean(fold_means))
        std = float(np.std(fold_means)) if len(fold_means) > 1 else 0.0
        record.update(
            auc=round(mean, 4),
            fold_std=round(std, 4),
            criterion=round(mean - std, 4),
            per_transform={t: round(float(np.nanmean([f[t] for f in per_fold])), 4) for t in used},
            per_fold=[round(m, 4) for m in fold_means],
        )
        records.append(record)
    judged = [i for i, r in enumerate(records) if r["criterion"] is not None]
    if not judged:
        raise ModelError("evidence: no candidate could be judged on the training clips")
    best = max(judged, key=lambda i: (records[i]["criterion"], -i))
    return Evidence(records, [best], len(X), folds, list(used), time.perf_counter() - start)
