"""The Python API: what the CLI, the service and users call. Each function does one verb end to end."""

from __future__ import annotations

import functools
import logging
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from asdkit.data.debug import DEBUG_TEST_CLIPS_PER_SET, DEBUG_TRAIN_CLIPS_PER_SECTION
from asdkit.data.debug import debug_subset as _debug_subset
from asdkit.data.files import expand_wavs as _expand_wavs
from asdkit.data.files import truncated_clips
from asdkit.data.manifest import TEST, TRAIN, Clip, Manifest
from asdkit.data.training_coverage import training_coverage_warnings
from asdkit.demo import DEMO_PARAMS, demo
from asdkit.detectors.base import ClipFeatures, Detector, environment_versions
from asdkit.detectors.deep import DeepDetector
from asdkit.detectors.inputs import fit_bundle, score_bundle
from asdkit.detectors.registry import DEFAULT_DETECTOR
from asdkit.detectors.saved import MODELS_DIR, load_models, machine_for
from asdkit.errors import AsdkitError, DataError
from asdkit.features.config import FeatureConfig
from asdkit.run_result import (
    CONFIG_FILE,
    MANIFEST_FILE,
    PLOTS_DIR,
    SCORES_DIR,
    MachineScores,
    RunResult,
)
from asdkit.rundir import COMPLETE, PARTIAL, check_resume, kept_model, locked_run_directory, one_line
from asdkit.scoring.guard import score_guarded
from asdkit.threads import check_threads, frames_of, thread_limit, threads_for
from asdkit.tracking import TrackingOptions, log_run
from asdkit.utils.git import git_commit
from asdkit.utils.io import write_json

if TYPE_CHECKING:
    from asdkit.seeds import SeedsResult

log = logging.getLogger(__name__)

DEFAULT_MODEL = DEFAULT_DETECTOR  # what the CLI and the demo use without --model


@dataclass
class ScoredClip:
    path: Path
    machine: str
    score: float
    decision: int
    threshold: float


Progress = Callable[[str], None]


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


# -- data ---------------------------------------------------------------------------------------------------
def scan_data(
    root: Path | str,
    layout: str | None = None,
    machines: Sequence[str] | None = None,
    ground_truth: Path | str | None = None,
) -> Manifest:
    """The manifest of a data tree (layout detected unless forced), optionally labelled by ground truth."""
    from asdkit.data.layouts import scan

    return scan(
        Path(root),
        layout=layout,
        machines=list(machines) if machines else None,
        ground_truth=Path(ground_truth) if ground_truth else None,
    )


def load_features(
    clips: Sequence[Clip],
    config: FeatureConfig = FeatureConfig(),
    cache_dir: Path | None = None,
    progress: bool = False,
    on_error: str = "skip",
    inputs: Mapping[str, Any] | None = None,
) -> tuple[ClipFeatures, list[tuple[Path, str]]]:
    """Log-mel arrays of ``clips`` from the on-disk cache (computed once); unreadable clips are skipped.

    With ``inputs`` (a detector's ``input_configs(config)``: front-end name -> config), each clip's arrays
    of those front ends come along too, cached the same way (:func:`asdkit.detectors.inputs.load_bundle`).
    """
    from asdkit.detectors.inputs import load_bundle

    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    return load_bundle(clips, config, inputs, cache_dir, progress, on_error)  # type: ignore[arg-type]


# -- models -------------------------------------------------------------------------------------------------
def make_detector(
    model: str, params: dict[str, Any] | None = None, seed: int = 0, debug: bool = False
) -> Detector:
    from asdkit.detectors.params import validate_params
    from asdkit.detectors.registry import create_detector, get_detector_class

    cls = get_detector_class(model)
    merged: dict[str, Any] = cls.debug_params() if debug else {}
    merged.update(params or {})
    merged = validate_params(model, merged)
    if "seed" in cls.parameters():
        merged.setdefault("seed", seed)
    return create_detector(model, **merged)  # type: ignore[return-value]


# -- verbs --------------------------------------------------------------------------------------------------
def train(
    data: Path | str | Manifest,
    out: Path | str | None = None,
    *,
    model: str = DEFAULT_MODEL,
    params: dict[str, Any] | None = None,
    machines: Sequence[str] | None = None,
    layout: str | None = None,
    seed: int = 0,
    debug: bool = False,
    features: FeatureConfig = FeatureConfig(),
    cache_dir: Path | None = None,
    progress: Progress | None = None,
    tracking: TrackingOptions | None = None,
    resume: bool = False,
    failures: dict[str, str] | None = None,
    threads: int | None = None,
) -> dict[str, Detector]:
    """Train one detector per machine type on its normal training clips; saved under ``out/models/``.

    With ``out``, the training is logged to MLflow (``tracking``; see :mod:`asdkit.tracking`). With
    ``resume``, a machine type whose model an interrupted run completed in ``out`` is kept, not trained.
    With ``failures`` (a dict), a machine type that cannot be trained (too few or unreadable clips, a fit
    that fails on its data) is recorded there with the one-line reason and the others are trained; without
    it, the first such machine type raises. ``threads``: torch/BLAS threads of each fit (None: by the size
    of the work, :mod:`asdkit.threads`).
    """
    tracking = tracking or TrackingOptions()
    manifest = data if isinstance(data, Manifest) else scan_data(data, layout, machines)
    if isinstance(data, Manifest) and machines:
        manifest = manifest.filter(machine=machines)
    train_clips = manifest.filter(split=TRAIN)
    if debug:
        train_clips = _debug_subset(train_clips, DEBUG_TRAIN_CLIPS_PER_SECTION)
    detectors: dict[str, Detector] = {}
    # every machine type's normal training clips, read once and only for detectors whose tags ask for them
    proxy_pool = functools.cache(lambda: _normal_training_clips_of_tree(manifest, debug))
    for machine in manifest.machines():
        clips = train_clips.filter(machine=machine, label=0).clips + [
            c for c in train_clips.filter(machine=machine) if c.label is None
        ]
        if resume and (kept := kept_model(out, machine)) is not None:
            _say(progress, f"{machine}: keeping the model the interrupted run trained (--resume)")
            detectors[machine] = kept
            continue
        detector = make_detector(model, params, seed, debug)
        try:
            detectors[machine] = _train_machine(
                detector,
                machine,
                clips,
                manifest,
                out,
                seed,
                features,
                cache_dir,
                progress,
                tracking,
                proxy_pool,
                threads,
            )
        except (AsdkitError, ValueError, ArithmeticError) as exc:
            if failures is None:
                raise
            reason = one_line(exc)
            failures[machine] = reason if reason.startswith(f"{machine}:") else f"{machine}: {reason}"
            log.error("%s: not trained (%s); the other machine types go on", machine, reason)
    if out is not None:
        log_run(out, tracking, progress)
    return detectors


def _train_machine(
    detector: Detector,
    machine: str,
    clips: list[Clip],
    manifest: Manifest,
    out: Path | str | None,
    seed: int,
    features: FeatureConfig,
    cache_dir: Path | None,
    progress: Progress | None,
    tracking: TrackingOptions,
    proxy_pool: Callable[[], Sequence[Clip]],
    threads: int | None = None,
) -> Detector:
    """``detector`` fitted on one machine type's normal training ``clips`` (and saved under ``out``)."""
    if not clips:
        raise DataError(f"{machine}: no normal training clips in {manifest.root or 'the data'}")
    for message in training_coverage_warnings(clips, manifest.filter(split=TEST, machine=machine)):
        log.warning("%s", message)
    _say(progress, f"{machine}: features of {len(clips)} training clips")
    X, skipped = fit_bundle(
        detector, clips, features, proxy_pool, cache_dir, progress=progress is not None, say=progress
    )
    _warn_skipped(machine, "training", skipped)
    if len(X) == 0:
        raise DataError(f"{machine}: every training clip was unreadable ({skipped[0][1]})")
    _say(progress, f"{machine}: training {detector.name} on {len(X)} clips")
    start = time.perf_counter()
    if isinstance(detector, DeepDetector):
        detector.trainer.log_dir = _tensorboard_dir(out, machine, tracking)
    with thread_limit(threads_for(frames_of(X.arrays), threads)):
        detector.fit(X)
    detector.train_seconds_ = time.perf_counter() - start
    detector.metadata_ = {
        "machine": machine,
        "n_train_clips": len(X),
        "layout": manifest.layout,
        "train_seconds": round(detector.train_seconds_, 3),
        "seed": seed,
        "skipped_train_clips": [[str(p), reason] for p, reason in skipped],
    }
    if out is not None:
        detector.save(Path(out) / MODELS_DIR / machine, metadata=detector.metadata_)
    return detector


def score(
    model_or_run: Path | str | dict[str, Detector],
    paths: Sequence[Path | str],
    *,
    machine: str | None = None,
    section: str | None = None,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
    threads: int | None = None,
) -> tuple[list[ScoredClip], list[tuple[Path, str]]]:
    """Score wav files (or folders of them) with a trained model; returns scored and skipped clips.

    Section-aware detectors need each clip's section: ``section`` if given, else the one in a DCASE file
    name (``section_01_...``, ``id_01_...``), else unknown (""): memory-bank detectors then search every
    section's banks, section-conditioned ones refuse with a message asking for ``section``.
    """
    from asdkit.data.layouts.common import section_from_name

    models = model_or_run if isinstance(model_or_run, dict) else load_models(model_or_run)
    files = _expand_wavs(paths)
    truncated_clips(files)
    by_machine: dict[str, list[Path]] = {}
    for f in files:
        by_machine.setdefault(machine_for(f, models, machine), []).append(f)
    scored: list[ScoredClip] = []
    skipped: list[tuple[Path, str]] = []
    for name, group in by_machine.items():
        detector = models[name]
        clips = [
            Clip(path=f, machine=name, section=section or section_from_name(f.name) or "") for f in group
        ]
        X, bad = score_bundle(detector, clips, cache_dir, progress is not None)
        skipped += bad
        if len(X):
            with thread_limit(threads_for(frames_of(X.arrays), threads)):
                values, kept, unscored = score_guarded(detector, X)
            skipped += unscored
            scored += [
                ScoredClip(
                    Path(X.clips[i].path), name, float(s), int(s > detector.threshold_), detector.threshold_
                )
                for i, s in zip(kept, values, strict=True)
            ]
    return scored, skipped


def evaluate(
    scores_dir: Path | str,
    ground_truth: Path | str | None = None,
    out: Path | str | None = None,
    *,
    scheme: str | None = None,
    allow_partial: bool = False,
) -> Any:
    """Official metrics of a folder of submission files; writes ``result.csv`` into ``out`` if given.

    The rules follow the data's year (:mod:`asdkit.metrics.scheme`; ``scheme`` forces them). With a
    ground truth, every clip it lists for the machine types scored must have a score, unless
    ``allow_partial``. A run directory is evaluated with its own manifest's labels and layout unless a
    ground truth is given, so that ``evaluate RUN`` repeats what ``run`` computed.
    """
    from asdkit.evaluation_paths import evaluate_scores

    return evaluate_scores(scores_dir, ground_truth, out, scheme=scheme, allow_partial=allow_partial)


@locked_run_directory
def run(
    data: Path | str,
    out: Path | str,
    *,
    model: str = DEFAULT_MODEL,
    params: dict[str, Any] | None = None,
    machines: Sequence[str] | None = None,
    layout: str | None = None,
    ground_truth: Path | str | None = None,
    seed: int = 0,
    debug: bool = False,
    features: FeatureConfig = FeatureConfig(),
    cache_dir: Path | None = None,
    progress: Progress | None = None,
    command_line: str | None = None,
    tracking: TrackingOptions | None = None,
    plots: bool = True,
    seeds: Sequence[int] | None = None,
    scheme: str | None = None,
    allow_partial: bool = False,
    overwrite: bool = False,
    resume: bool = False,
    threads: int | None = None,
) -> RunResult | SeedsResult:
    """Train per machine type, score the test clips, write the challenge's files and evaluate them.

    Everything lands in ``out``: config.json (resolved configuration and environment), manifest.csv,
    models/<machine>/, scores/anomaly_score_*.csv and decision_result_*.csv, result.csv. Each file is
    written atomically; ``config.json`` says ``"status": "complete"`` only after the last one. Figures go
    to plots/ (unless ``plots`` is False) and the finished run is logged to MLflow (``tracking``).
    The evaluation follows the data's year (``scheme`` forces it; see :func:`evaluate`); with a ground
    truth, clips it lists that the tree or the scores lack are an error unless ``allow_partial``.
    With ``seeds``, one such run per seed in ``out/seed_<n>/`` and their mean/std (:mod:`asdkit.seeds`).
    ``out`` is locked while the run writes it; a run already there is refused unless ``overwrite`` (it is
    removed first) or ``resume`` (its complete models are kept, the rest trained): :mod:`asdkit.rundir`.
    """
    if seeds is not None:
        from asdkit.seeds import run_seeds

        return run_seeds(
            run,
            data,
            out,
            seeds,
            model=model,
            params=params,
            machines=machines,
            layout=layout,
            ground_truth=ground_truth,
            debug=debug,
            features=features,
            cache_dir=cache_dir,
            progress=progress,
            command_line=command_line,
            tracking=tracking,
            plots=plots,
            scheme=scheme,
            allow_partial=allow_partial,
            resume=resume,
            threads=threads,
        )
    tracking = tracking or TrackingOptions()
    check_threads(threads)
    out = Path(out)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    manifest = scan_data(data, layout, machines, ground_truth)
    _say(progress, manifest.summary())
    from asdkit.evaluation_paths import RunEvaluation

    judge = RunEvaluation.prepare(manifest, ground_truth, scheme, allow_partial=allow_partial or debug)
    _say(progress, f"evaluation: {judge.rules}")
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "status": "running",
        "data": str(Path(data).resolve()),
        "layout": manifest.layout,
        "machines": manifest.machines(),
        "model": model,
        "params": make_detector(model, params, seed, debug).get_params(),
        "features": features.to_dict(),
        "seed": seed,
        "debug": debug,
        "ground_truth": str(ground_truth) if ground_truth else None,
        "scheme": judge.rules.to_dict(),
        "environment": {
            **environment_versions(),
            "git_commit": git_commit(),
            "command_line": command_line or shlex.join(sys.argv),
        },
    }
    if resume:
        check_resume(out, config)
    write_json(out / CONFIG_FILE, config)
    manifest.to_csv(out / MANIFEST_FILE)
    timings["scan"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    failures: dict[str, str] = {}
    detectors = train(
        manifest,
        out,
        model=model,
        params=params,
        seed=seed,
        debug=debug,
        features=features,
        cache_dir=cache_dir,
        progress=progress,
        tracking=replace(tracking, mlflow=False),  # the whole run is logged once, at its end
        resume=resume,
        failures=failures,
        threads=threads,
    )
    if not detectors:
        raise DataError(f"no machine type could be trained: {'; '.join(failures.values())}")
    timings["train"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    test = manifest.filter(split=TEST)
    if debug:
        test = _debug_subset(test, DEBUG_TEST_CLIPS_PER_SET)
    skipped: list[tuple[Path, str]] = []
    scored: dict[str, MachineScores] = {}
    for machine, detector in detectors.items():
        clips = test.filter(machine=machine).clips
        if not clips:
            log.warning("%s: no test clips; nothing to score", machine)
            continue
        _say(progress, f"{machine}: scoring {len(clips)} test clips")
        X, bad = score_bundle(detector, clips, cache_dir, progress is not None)
        _warn_skipped(machine, "test", bad)
        skipped += bad
        with thread_limit(threads_for(frames_of(X.arrays), threads)):
            values, kept, unscored = score_guarded(detector, X, show=progress is not None)
        _warn_skipped(machine, "unscorable test", unscored)
        skipped += unscored
        if len(kept):  # as the loader reads it back: a machine type appears once it has a scored clip
            decisions = (values > detector.threshold_).astype(np.int64)
            scored[machine] = MachineScores(list(X.subset(kept).clips), values, decisions)
    timings["score"] = time.perf_counter() - t2

    result = RunResult(
        run_dir=out,
        config=config,
        manifest=manifest,
        scheme=judge.rules.scheme,
        scored=scored,
        thresholds={m: float(d.threshold_) for m, d in detectors.items()},
        histories={m: d.training_history() for m, d in detectors.items()},
        timings=timings,
    )
    if scored:
        from asdkit.reports.submission import write_scores

        all_clips = [c for s in scored.values() for c in s.clips]
        scores = np.concatenate([s.scores for s in scored.values()])
        decisions = np.concatenate([s.decisions for s in scored.values() if s.decisions is not None])
        write_scores(out / SCORES_DIR, all_clips, scores, decisions)
        result.evaluation = judge.evaluate(all_clips, scores, decisions, out)
    if plots:
        from asdkit.reports.plots import write_run_plots

        t3 = time.perf_counter()
        paths = write_run_plots(result)
        timings["plots"] = time.perf_counter() - t3
        _say(progress, f"{len(paths)} figures in {out / PLOTS_DIR}")
    timings["total"] = time.perf_counter() - t0
    stages = {
        "scan": list(manifest.skipped),
        "training": [
            (Path(p), r) for d in detectors.values() for p, r in d.metadata_.get("skipped_train_clips", [])
        ],
        "test": skipped,
    }
    result.skipped = [item for items in stages.values() for item in items]
    result.truncated = truncated_clips([c.path for c in manifest])
    result.skip_counts = {stage: len(items) for stage, items in stages.items()}
    result.failed = failures
    config.update(
        status=PARTIAL if failures else COMPLETE,
        failed_machines=failures,
        decisions_refused={
            m: d.threshold_refused_ for m, d in detectors.items() if getattr(d, "threshold_refused_", None)
        },
        timings={k: round(v, 3) for k, v in timings.items()},
        skipped=[[str(p), reason] for p, reason in result.skipped],
        skipped_counts=result.skip_counts,
        truncated=[[str(p), reason] for p, reason in result.truncated],
    )
    if result.evaluation is not None:
        config["official_score"] = result.evaluation.official_score
    result.config = write_json(out / CONFIG_FILE, config)
    log_run(result, tracking, progress)
    return result


# -- helpers ------------------------------------------------------------------------------------------------
def _tensorboard_dir(out: Path | str | None, machine: str, tracking: TrackingOptions) -> Path | None:
    """``OUT/tensorboard/<machine>`` with --tensorboard (``tensorboard --logdir OUT/tensorboard``)."""
    return Path(out) / "tensorboard" / machine if tracking.tensorboard and out is not None else None


def _normal_training_clips_of_tree(manifest: Manifest, debug: bool) -> list[Clip]:
    """Normal training clips of every machine type in the tree (also those a ``machines`` filter left out)."""
    pool = manifest
    if manifest.root is not None:
        try:
            pool = scan_data(manifest.root, manifest.layout)
        except AsdkitError:
            pool = manifest
    pool = pool.filter(split=TRAIN)
    if debug:
        pool = _debug_subset(pool, DEBUG_TRAIN_CLIPS_PER_SECTION)
    return [c for c in pool if c.label in (0, None)]


def _warn_skipped(machine: str, what: str, skipped: list[tuple[Path, str]]) -> None:
    if skipped:
        log.warning(
            "%s: skipped %d unreadable %s clip(s); first: %s", machine, len(skipped), what, skipped[0][1]
        )


# -- figures ------------------------------------------------------------------------------------------------
def plot_reconstruction(
    run_or_model: Path | str | dict[str, Detector],
    clip_path: Path | str,
    out_png: Path | str,
    machine: str | None = None,
    *,
    cache_dir: Path | None = None,
) -> Path:
    """PNG of one clip's log-mel, the model's reconstruction and the error over time; returns its path.

    The model is picked as ``score`` picks it (``machine``, or the only one, or a folder name in the clip's
    path). A model that does not reconstruct its input (not ae, vae, conv_ae, idnn...) is an AsdkitError.
    """
    from asdkit.reports.reconstruction_plot import plot_reconstruction as draw
    from asdkit.reports.reconstruction_plot import require_reconstruction

    models = run_or_model if isinstance(run_or_model, dict) else load_models(run_or_model)
    clip_path = Path(clip_path)
    if not clip_path.is_file():
        raise DataError(f"{clip_path}: no such audio file")
    name = machine_for(clip_path, models, machine)
    detector = models[name]
    require_reconstruction(detector)
    clip = Clip(path=clip_path, machine=name, section="00")
    X, skipped = load_features([clip], detector.feature_config_, cache_dir)
    if len(X) == 0:
        raise DataError(skipped[0][1] if skipped else f"{clip_path}: unreadable")
    return draw(detector, np.asarray(X.arrays[0]), Path(out_png), title=f"{name}: {clip_path.name}")


__all__ = [
    "DEMO_PARAMS",
    "RunResult",
    "ScoredClip",
    "demo",
    "evaluate",
    "load_features",
    "load_models",
    "make_detector",
    "plot_reconstruction",
    "run",
    "scan_data",
    "score",
    "train",
]
