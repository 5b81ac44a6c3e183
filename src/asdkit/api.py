"""The Python API: what the CLI, the service and users call. Each function does one verb end to end."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from asdkit.data.files import expand_wavs as _expand_wavs
from asdkit.data.files import truncated_clips
from asdkit.data.manifest import Clip, Manifest
from asdkit.detectors.base import ClipFeatures, Detector
from asdkit.detectors.inputs import score_bundle
from asdkit.detectors.registry import DEFAULT_DETECTOR
from asdkit.detectors.saved import load_models, machine_for
from asdkit.errors import AsdkitError, DataError
from asdkit.features.config import FeatureConfig
from asdkit.pipeline import (
    RunPlan,
    check_jobs,
    execute_run,
    execute_train,
    machine_threads,
    make_detector,
    resolved_params,
    scan_stage,
)
from asdkit.run_result import RunResult
from asdkit.rundir import locked_run_directory, warn_if_incomplete
from asdkit.scoring.guard import score_guarded
from asdkit.threads import frames_of, thread_limit, threads_for
from asdkit.tracking import TrackingOptions, tracking_uri

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


def _plan(
    data: Path | Manifest,
    out: Path | None,
    *,
    model: str,
    params: dict[str, Any] | None,
    seed: int,
    debug: bool,
    machines: Sequence[str] | None,
    tracking: TrackingOptions | None,
    **fields: Any,
) -> RunPlan:
    """The RunPlan of :func:`train` and :func:`run`: their shared arguments normalised in one place."""
    return RunPlan(
        data=data,
        out=out,
        model=model,
        params=resolved_params(model, params, seed, debug),
        machines=tuple(machines) if machines else None,
        seed=seed,
        debug=debug,
        tracking=tracking or TrackingOptions(),
        **fields,
    )


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


# -- verbs --------------------------------------------------------------------------------------------------
@locked_run_directory
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
    command_line: str | None = None,
    tracking: TrackingOptions | None = None,
    overwrite: bool = False,
    resume: bool = False,
    jobs: int = 1,
    threads: int | None = None,
    failures: dict[str, str] | None = None,
) -> dict[str, Detector]:
    """Train one detector per machine type on its normal training clips; saved under ``out/models/``.

    ``out`` is a run directory as :func:`run` keeps it (lock, config.json with its status, ``overwrite``,
    ``resume``), and the training is logged to MLflow (``tracking``; see :mod:`asdkit.tracking`). Without
    ``out`` the detectors are trained in memory only. ``jobs`` machine types train at a time, each on
    ``threads`` torch/BLAS threads (None: chosen by the size of its work, :mod:`asdkit.threads`, once in
    this process), so their models equal a serial run's. A machine type that cannot be trained is
    recorded (config.json ``failed_machines``, status "partial") while the others train; it is put in
    ``failures`` (machine type -> one-line reason) when given, else the training raises once the others
    are done.
    """
    check_jobs(jobs, params, threads)
    plan = _plan(
        data if isinstance(data, Manifest) else Path(data),
        None if out is None else Path(out),
        model=model,
        params=params,
        seed=seed,
        debug=debug,
        machines=machines,
        tracking=tracking,
        layout=layout,
        features=features,
        cache_dir=cache_dir,
        command_line=command_line,
        resume=resume,
        jobs=jobs,
        threads=threads,
    )
    detectors, failed = execute_train(plan, progress)
    if failures is not None:
        failures.update(failed)
    elif failed:
        raise AsdkitError(f"not every machine type could be trained: {'; '.join(failed.values())}")
    return detectors


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

    Models of a run whose status is not "complete" (a killed or failed ``train`` or ``run``) score with
    a warning. Section-aware detectors need each clip's section: ``section`` if given, else the one in a
    DCASE file name (``section_01_...``, ``id_01_...``), else unknown (""): memory-bank detectors then
    search every section's banks, section-conditioned ones refuse with a message asking for ``section``.
    """
    from asdkit.data.layouts.common import section_from_name

    if isinstance(model_or_run, dict):
        models = model_or_run
    else:
        warn_if_incomplete(model_or_run, "scoring with the models of")
        models = load_models(model_or_run)
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
    jobs: int = 1,
    threads: int | Mapping[str, int] | None = None,
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
    ``jobs`` machine types (or seeds) run at a time, in worker processes, each on ``threads`` torch/BLAS
    threads (None: chosen by the size of its work, once in this process, also for every seed; a mapping:
    the count of each machine type): the outputs are those of ``jobs=1``. A machine type that cannot be
    trained is a named failure (status "partial").
    The stages are :mod:`asdkit.pipeline`'s.
    """
    settings = dict(locals())  # the arguments, as each seed's run takes them
    per_machine = dict(threads) if isinstance(threads, Mapping) else None
    count = None if isinstance(threads, Mapping) else threads
    check_jobs(jobs, params, count)
    if seeds is not None:
        from asdkit.detectors.registry import get_detector_class
        from asdkit.seeds import run_seeds

        if len(seeds) > 1 and "seed" not in get_detector_class(model).parameters():
            log.warning(
                "--seeds: %s takes no seed (it is deterministic), so every seed gives the same result",
                model,
            )
        for name in ("data", "out", "seeds", "seed", "overwrite"):
            settings.pop(name)
        # every seed's run is tracked beside OUT, with the runs written next to it, not in OUT/mlflow.db
        options = tracking or TrackingOptions()
        settings["tracking"] = replace(options, uri=tracking_uri(out, options))
        if threads is None:  # chosen here once, so that seeds in worker processes get the same counts
            scan = RunPlan(
                data=Path(data),
                out=None,
                model=model,
                params={},
                machines=tuple(machines) if machines else None,
                layout=layout,
                ground_truth=Path(ground_truth) if ground_truth else None,
                debug=debug,
                features=features,
            )
            settings["threads"] = machine_threads(scan, scan_stage(scan))
        return run_seeds(run, data, out, seeds, **settings)
    plan = _plan(
        Path(data),
        Path(out),
        model=model,
        params=params,
        seed=seed,
        debug=debug,
        machines=machines,
        tracking=tracking,
        layout=layout,
        ground_truth=Path(ground_truth) if ground_truth else None,
        features=features,
        cache_dir=cache_dir,
        command_line=command_line,
        plots=plots,
        scheme=scheme,
        allow_partial=allow_partial,
        resume=resume,
        jobs=jobs,
        threads=count,
        machine_threads=per_machine or {},
    )
    return execute_run(plan, progress)


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
    "RunResult",
    "ScoredClip",
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
