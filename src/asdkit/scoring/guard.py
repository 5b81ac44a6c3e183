"""Scoring that never lets one bad clip spoil a batch: a clip the detector cannot score (shorter than its
window) or whose score is not finite (NaN, inf: e.g. a float wav with a peak of 1e18) is skipped and named,
never read as "normal" and never aborting the others."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from asdkit.detectors.base import ClipFeatures, Detector

#: What a detector raises for a clip it cannot score (too few frames for its window, an empty array); an
#: AsdkitError (e.g. an unknown section) concerns the whole request and is left to propagate.
CLIP_ERRORS = (ValueError, RuntimeError, IndexError)


def not_finite_reason(path: Path | str, value: float) -> str:
    return f"{path}: score is {value} (not finite); is the audio level out of range?"


def not_finite_features_reason(path: Path | str) -> str:
    return f"{path}: features are not finite (NaN or inf); is the audio level out of range?"


def score_guarded(
    detector: Detector, X: ClipFeatures, show: bool = False, chunk: int = 256
) -> tuple[np.ndarray, list[int], list[tuple[Path, str]]]:
    """Scores of the clips that could be scored, their indices in ``X``, and (path, reason) of the others.

    Chunks of clips are scored together; a chunk that fails is scored clip by clip to name the culprit.
    """
    from tqdm.auto import tqdm

    values = np.full(len(X), np.nan)
    reasons: dict[int, str] = {}
    for arrays in (X.arrays, *(given.arrays for given in X.inputs.values())):
        for i, array in enumerate(arrays):  # overflowed audio: its features (and any score) are inf/NaN
            if not np.all(np.isfinite(array)):
                reasons[i] = not_finite_features_reason(X.clips[i].path)
    scorable = [i for i in range(len(X)) if i not in reasons]
    with tqdm(total=len(scorable), unit="clip", desc="scoring", file=sys.stderr, disable=not show) as bar:
        for start in range(0, len(scorable), chunk):
            idx = scorable[start : start + chunk]
            try:
                values[idx] = detector.anomaly_score(X.subset(idx))
            except CLIP_ERRORS:
                for i in idx:
                    try:
                        values[i] = detector.anomaly_score(X.subset([i]))[0]
                    except CLIP_ERRORS as exc:
                        frames = np.shape(X.arrays[i])[-1]
                        hint = "; shorter than its window?"
                        detail = str(exc).splitlines()[0][:200] if str(exc) else repr(exc)
                        name = f"{X.clips[i].path}: cannot be scored by {detector.name}"
                        reasons[i] = f"{name} ({frames} frames{hint}): {detail}"
            bar.update(len(idx))
    for i in np.flatnonzero(~np.isfinite(values)):
        reasons.setdefault(int(i), not_finite_reason(X.clips[i].path, float(values[i])))
    kept = [i for i in range(len(X)) if i not in reasons]
    skipped = [(Path(X.clips[i].path), reasons[i]) for i in sorted(reasons)]
    return values[kept], kept, skipped
