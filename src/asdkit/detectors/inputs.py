"""The fit/score bundle: the :class:`ClipFeatures` a detector's tags ask for, built one way for everyone.

``asdkit.api`` (train, score, run), the service and the watcher (clips in memory) and the ensemble (its
members share its bundle) all get a detector's features here: the log-mel of ``feature_config_``, every
input the tags declare (each config from :meth:`Detector.input_configs`), and, for fitting a detector
whose tags ask for ``machines`` proxies, other machine types' normal training clips with the same inputs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from asdkit.data.manifest import Clip
from asdkit.detectors.base import ClipFeatures, Detector, InputArrays
from asdkit.errors import DataError, ModelError
from asdkit.features.config import FeatureConfig
from asdkit.features.frontends import LOGMEL, FrontEnd, front_end_for

log = logging.getLogger(__name__)

Skipped = list[tuple[Path, str]]


def feature_device(front_end: FrontEnd, device: str | None = None) -> str:
    """Where a front end computes: ``device`` when given, else the GPU for a front end worth one (a
    pretrained encoder, ``accelerated``) when there is one, else the CPU."""
    return device if device is not None else front_end.preferred_device()


def load_bundle(
    clips: Sequence[Clip],
    config: FeatureConfig,
    inputs: Mapping[str, Any] | None = None,
    cache_dir: Path | None = None,
    progress: bool = False,
    on_error: Literal["skip", "raise"] = "skip",
    device: str | None = None,
    batch_size: int = 32,
) -> tuple[ClipFeatures, Skipped]:
    """Log-mel arrays of ``clips`` and those of every front end in ``inputs`` (name -> config), from the
    on-disk cache (computed once, each front end on :func:`feature_device`, ``batch_size`` clips of equal
    length at a time on a GPU); a clip any front end cannot read is skipped (listed with the reason)."""
    from asdkit.features.cache import FeatureCache

    kept = list(clips)
    skipped: Skipped = []
    found: dict[str, tuple[Any, list[np.ndarray]]] = {}
    for name, cfg in {LOGMEL: config, **(inputs or {})}.items():
        where = feature_device(front_end_for(cfg), device)
        result = FeatureCache(cfg, cache_dir=cache_dir, device=where, batch_size=batch_size).extract(
            [Path(c.path) for c in kept], progress=progress, on_error=on_error
        )
        skipped += result.skipped
        readable = {Path(p) for p in result.kept}
        keep = [i for i, c in enumerate(kept) if Path(c.path) in readable]
        kept = [kept[i] for i in keep]
        found = {n: (g, [arrays[i] for i in keep]) for n, (g, arrays) in found.items()}
        found[name] = (cfg, list(result.arrays))
    logmel = found.pop(LOGMEL)[1]
    extra = {name: InputArrays(cfg, arrays) for name, (cfg, arrays) in found.items()}
    return ClipFeatures(logmel, kept, config, extra), skipped


#: What the reason of a clip shorter than a detector's window says (the run's warnings count them by it).
TOO_SHORT = "too short"


def skip_summary(what: str, skipped: Skipped) -> str:
    """ "3 too short training clip(s)", "2 unusable test clip(s) (1 too short)": what the skips were."""
    short = sum(TOO_SHORT in reason for _, reason in skipped)
    if short == len(skipped):
        return f"{short} too short {what} clip(s)"
    also = f" ({short} too short)" if short else ""
    return f"{len(skipped)} unusable {what} clip(s){also}"


def short_clip_reason(detector: Detector, path: Path | str, frames: int) -> str:
    need = detector.tags().min_frames
    return (
        f"{path}: {frames} frame(s), shorter than the {need}-frame window of {detector.name}; "
        f"{TOO_SHORT} to be fitted or scored"
    )


def drop_short_clips(detector: Detector, X: ClipFeatures) -> tuple[ClipFeatures, Skipped]:
    """``X`` without the clips shorter than the detector's window (``tags().min_frames``), and those
    clips with the reason: a too-short clip is a named, counted skip, for every detector alike."""
    need = detector.tags().min_frames
    frames = [int(np.shape(a)[-1]) for a in X.arrays]
    short = [i for i, n in enumerate(frames) if n < need]
    if not short:
        return X, []
    keep = [i for i, n in enumerate(frames) if n >= need]
    paths = [Path(X.clips[i].path) for i in short]
    skipped = [(p, short_clip_reason(detector, p, frames[i])) for p, i in zip(paths, short, strict=True)]
    return X.subset(keep), skipped


def score_bundle(
    detector: Detector,
    clips: Sequence[Clip],
    cache_dir: Path | None = None,
    progress: bool = False,
    device: str | None = None,
    batch_size: int = 32,
) -> tuple[ClipFeatures, Skipped]:
    """What a trained ``detector`` scores ``clips`` from: its own feature config and declared inputs;
    unreadable clips and clips shorter than its window are skipped (listed with the reason)."""
    config = detector.feature_config_
    inputs = detector.input_configs(config)
    X, skipped = load_bundle(clips, config, inputs, cache_dir, progress, device=device, batch_size=batch_size)
    X, short = drop_short_clips(detector, X)
    return X, skipped + short


def fit_bundle(
    detector: Detector,
    clips: Sequence[Clip],
    config: FeatureConfig,
    proxy_pool: Callable[[], Sequence[Clip]] | None = None,
    cache_dir: Path | None = None,
    progress: bool = False,
    say: Callable[[str], None] | None = None,
    device: str | None = None,
    batch_size: int = 32,
) -> tuple[ClipFeatures, Skipped]:
    """What ``detector`` is fitted on: ``clips`` with its declared inputs and, when its tags ask for
    ``machines`` proxies, the clips of ``proxy_pool()`` (called only then) of other machine types than
    ``clips``'; unreadable or too short clips are skipped (listed with the reason; proxy clips are
    logged, not returned)."""
    inputs = detector.input_configs(config)
    where = {"device": device, "batch_size": batch_size}
    X, skipped = load_bundle(clips, config, inputs, cache_dir, progress, **where)
    X, short = drop_short_clips(detector, X)
    skipped += short
    if not detector.tags().wants_machines or proxy_pool is None:
        return X, skipped
    own = {c.machine for c in clips}
    others = [c for c in proxy_pool() if c.machine not in own]
    if not others:
        return X, skipped
    if say is not None:
        say(f"{'/'.join(sorted(own))}: features of {len(others)} proxy clips of other machine types")
    proxy, bad = load_bundle(others, config, inputs, cache_dir, progress, **where)
    proxy, short = drop_short_clips(detector, proxy)
    bad += short
    if bad:
        log.warning("skipped %s; first: %s", skip_summary("proxy", bad), bad[0][1])
    return (replace(X, proxy=proxy) if len(proxy) else X), skipped


def bundle_of_waves(detector: Detector, waves: Sequence[np.ndarray], clips: Sequence[Clip]) -> ClipFeatures:
    """The score bundle of waveforms in memory (decoded at the log-mel config's rate and channel), as the
    service and the watcher score clips: nothing is cached; a clip shorter than the detector's window is
    a DataError naming it (the service answers 4xx)."""
    config = detector.feature_config_
    extra = {}
    for name, cfg in detector.input_configs(config).items():
        if (cfg.sample_rate, cfg.channel) != (config.sample_rate, config.channel):
            raise ModelError(f"{detector.name}: input {name!r} reads the audio unlike the log-mel")
        extra[name] = InputArrays(cfg, front_end_for(cfg).compute(waves))
    logmel = front_end_for(config).compute(waves)  # the log-mel or a variant of it (noise_aware)
    X = ClipFeatures(logmel, list(clips), config, extra)
    _, short = drop_short_clips(detector, X)
    if short:
        raise DataError(short[0][1])
    return X
