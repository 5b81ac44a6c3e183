"""A run in stages, each doing one job: scan, record, features, fit, score, write, evaluate, publish.

``api.run`` and ``api.train`` turn their arguments into one :class:`RunPlan` and call :func:`execute_run`
or :func:`execute_train`; what comes out is the in-memory :class:`~asdkit.run_result.RunResult` (or the
trained detectors). The run directory's names are :mod:`asdkit.rundir`'s.

Machine types are independent (the features, model and scores of one never read another's), so with
``jobs`` > 1 they go to worker processes (joblib's loky) while this process keeps the lock, the one
progress display and every file but the models, which each worker saves itself. A worker sees the same
plan, its thread counts included (chosen here, before any work), so its outputs equal a serial run's.
A machine type that cannot be trained is a named failure (status "partial") while the others finish.

Under a DDP launch (Lightning's ``ddp`` strategy runs the command again per device) only rank 0 writes:
the other ranks scan, read features and fit alongside it (each fit is one collective training), then stop
before scoring. They never take the lock nor touch the run directory (:func:`asdkit.rundir.launch_rank`).
"""

from __future__ import annotations

import functools
import logging
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf

from asdkit.data.debug import DEBUG_TEST_CLIPS_PER_SET, DEBUG_TRAIN_CLIPS_PER_SECTION, debug_subset
from asdkit.data.files import truncated_clips
from asdkit.data.manifest import TEST, TRAIN, Clip, Manifest
from asdkit.data.training_coverage import training_coverage_warnings
from asdkit.detectors.base import Detector, environment_versions
from asdkit.detectors.deep import DeepDetector
from asdkit.detectors.inputs import fit_bundle, score_bundle, skip_summary
from asdkit.errors import AsdkitError, DataError
from asdkit.features.config import FeatureConfig
from asdkit.run_result import MachineScores, RunResult
from asdkit.rundir import (
    COMPLETE,
    CONFIG_FILE,
    MANIFEST_FILE,
    PARTIAL,
    PLOTS_DIR,
    SCORES_DIR,
    check_resume,
    kept_model,
    launch_rank,
    model_dir,
    one_line,
    tensorboard_dir,
)
from asdkit.scoring.guard import score_guarded
from asdkit.threads import check_threads, thread_limit, threads_for
from asdkit.tracking import TrackingOptions, log_run
from asdkit.utils.git import git_commit
from asdkit.utils.io import write_json

if TYPE_CHECKING:
    from asdkit.evaluation_paths import RunEvaluation

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
Skipped = list[tuple[Path, str]]
#: Detector parameters that only change what a training prints, not what it learns.
DISPLAY_PARAMS = ("progress",)


@dataclass(frozen=True)
class RunPlan:
    """Everything a run or a training does, resolved once: the stages read it and nothing else.

    ``params`` are the detector's resolved parameters (:func:`resolved_params`); ``out`` None trains in
    memory; ``writer`` is False in a DDP launch's other ranks, which compute and write nothing.
    """

    data: Path | Manifest
    out: Path | None
    model: str
    params: Mapping[str, Any]
    machines: tuple[str, ...] | None = None
    layout: str | None = None
    ground_truth: Path | None = None
    seed: int = 0
    debug: bool = False
    features: FeatureConfig = field(default_factory=FeatureConfig)
    cache_dir: Path | None = None
    command_line: str | None = None
    tracking: TrackingOptions = field(default_factory=TrackingOptions)
    plots: bool = True
    scheme: str | None = None
    allow_partial: bool = False
    resume: bool = False
    jobs: int = 1
    #: torch and BLAS threads of each machine type's fit and scoring (``--threads``); None: chosen per
    #: machine type by the size of its work (:func:`asdkit.threads.threads_for`) in the parent process,
    #: before any work, and kept in ``machine_threads``, so that a worker computes what a serial run does
    threads: int | None = None
    machine_threads: Mapping[str, int] = field(default_factory=dict)
    writer: bool = field(default_factory=lambda: launch_rank() == 0)

    @property
    def writes(self) -> bool:
        """Whether this process writes the run directory (there is one, and this is not another rank)."""
        return self.out is not None and self.writer

    def stage_threads(self, machine: str) -> int:
        """Threads of one machine type's stages: a training's numbers depend on them, never on ``jobs``."""
        return self.threads or self.machine_threads.get(machine) or 1

    def detector(self) -> Detector:
        from asdkit.detectors.registry import create_detector

        return create_detector(self.model, **dict(self.params))  # type: ignore[return-value]


@dataclass
class MachineOutcome:
    """One machine type through features, fit and score: what the parent process needs of it."""

    machine: str
    detector: Detector | None  # None: the machine type could not be trained (``failure`` says why)
    failure: str | None = None
    scored: MachineScores | None = None
    skipped_test: Skipped = field(default_factory=list)
    fit_seconds: float = 0.0
    score_seconds: float = 0.0


# -- plan ---------------------------------------------------------------------------------------------------
def check_jobs(jobs: int, params: Mapping[str, Any] | None, threads: int | None = None) -> None:
    """``jobs`` (and ``threads``) are positive counts, and ``jobs`` not combined with a DDP training."""
    if jobs < 1:
        raise AsdkitError(f"--jobs {jobs}: give a number of worker processes, 1 or more")
    check_threads(threads)
    params = params or {}
    devices = params.get("devices", 1)
    if jobs > 1 and (devices not in (1, "1") or "ddp" in str(params.get("strategy", ""))):
        raise AsdkitError(
            f"--jobs {jobs} with devices={devices} strategy={params.get('strategy', 'auto')}: a DDP "
            "training already uses every device; give one or the other"
        )


def make_detector(
    model: str, params: Mapping[str, Any] | None = None, seed: int = 0, debug: bool = False
) -> Detector:
    """The detector ``model`` with ``params`` (over its debug settings with ``debug``), seeded by ``seed``."""
    from asdkit.detectors.params import validate_params
    from asdkit.detectors.registry import create_detector, get_detector_class

    cls = get_detector_class(model)
    merged: dict[str, Any] = cls.debug_params() if debug else {}
    merged.update(params or {})
    merged = validate_params(model, merged)
    if "seed" in cls.parameters():
        merged.setdefault("seed", seed)
    return create_detector(model, **merged)  # type: ignore[return-value]


def resolved_params(model: str, params: Mapping[str, Any] | None, seed: int, debug: bool) -> dict[str, Any]:
    """Every parameter of the detector the run trains, members of an ensemble spelled out in full.

    An ensemble's members (its default ones when none are given) are recorded with all their parameters,
    and its weights (the default's own, if any), so that a rerun from config.json trains the same members
    with the same weights even after a default changed. Their seed and progress stay the ensemble's.
    """
    detector = make_detector(model, params, seed, debug)
    resolved = detector.get_params()
    if "members" in resolved:
        if resolved.get("select") == "auto":  # what "auto" meant with no members listed, kept when they are
            resolved["select"] = detector._mode()  # type: ignore[attr-defined]
        resolved["members"] = [_resolved_member(spec) for spec in detector._specs()]  # type: ignore[attr-defined]
        resolved["weights"] = detector._given_weights()  # type: ignore[attr-defined]
    return resolved


def _resolved_member(spec: Mapping[str, Any] | str) -> dict[str, Any] | str:
    """A member to train with all its parameters; a trained model reused (a path) as it was given."""
    if isinstance(spec, str):
        if Path(spec).exists():  # the ensemble's own rule: an existing path, else a detector name
            return spec
        spec = {"model": spec}
    if "model" not in spec:
        return dict(spec)
    given = dict(spec.get("params") or {})
    full = make_detector(spec["model"], given).get_params()
    kept = {k: v for k, v in full.items() if k not in ("seed", *DISPLAY_PARAMS) or k in given}
    return {**{k: v for k, v in spec.items() if k != "params"}, "params": kept}


# -- stages -------------------------------------------------------------------------------------------------
def scan_stage(plan: RunPlan) -> Manifest:
    """The manifest the plan's data and machine types give (labelled by the ground truth, if any)."""
    from asdkit.data.layouts import scan

    if isinstance(plan.data, Manifest):
        manifest = plan.data
        return manifest.filter(machine=list(plan.machines)) if plan.machines else manifest
    return scan(
        Path(plan.data),
        layout=plan.layout,
        machines=list(plan.machines) if plan.machines else None,
        ground_truth=plan.ground_truth,
    )


def warn_tensorboard_unused(plan: RunPlan) -> None:
    """``--tensorboard`` with a detector that trains no network of its own writes no curves: said once,
    rather than an empty OUT/tensorboard that TensorBoard shows as nothing."""
    if plan.tracking.tensorboard and plan.writes and not isinstance(plan.detector(), DeepDetector):
        log.warning(
            "--tensorboard: %s trains no network of its own, so no TensorBoard curves are written "
            "(network detectors such as ae or arcface write them)",
            plan.model,
        )


def record_stage(plan: RunPlan, manifest: Manifest, judge: RunEvaluation | None) -> dict[str, Any]:
    """The run's configuration (status "running"), written with the manifest; a resume must match it."""
    data = manifest.root if isinstance(plan.data, Manifest) else plan.data
    config: dict[str, Any] = {
        "status": "running",
        "data": str(Path(data).resolve()) if data is not None else None,
        "layout": manifest.layout,
        "machines": manifest.machines(),
        "model": plan.model,
        "params": dict(plan.params),
        "features": plan.features.to_dict(),
        "seed": plan.seed,
        "debug": plan.debug,
    }
    if judge is not None:
        config["ground_truth"] = str(plan.ground_truth) if plan.ground_truth else None
        config["scheme"] = judge.rules.to_dict()
    config["environment"] = {
        **environment_versions(),
        "git_commit": git_commit(),
        "command_line": plan.command_line or shlex.join(sys.argv),
    }
    if plan.writes:
        assert plan.out is not None
        if plan.resume:
            check_resume(plan.out, config)
        write_json(plan.out / CONFIG_FILE, config)
        manifest.to_csv(plan.out / MANIFEST_FILE)
    return config


def training_clips(manifest: Manifest, machine: str, debug: bool) -> list[Clip]:
    """A machine type's normal (or unlabelled) training clips."""
    train = manifest.filter(split=TRAIN, machine=machine)
    if debug:
        train = debug_subset(train, DEBUG_TRAIN_CLIPS_PER_SECTION)
    return [c for c in train if c.label in (0, None)]


def test_clips(manifest: Manifest, machine: str, debug: bool) -> list[Clip]:
    test = manifest.filter(split=TEST, machine=machine)
    if debug:
        test = debug_subset(test, DEBUG_TEST_CLIPS_PER_SET)
    return test.clips


def features_stage(
    plan: RunPlan,
    detector: Detector,
    clips: Sequence[Clip],
    proxy_pool: Callable[[], Sequence[Clip]],
    progress: Progress | None,
) -> tuple[Any, Skipped]:
    """The detector's training inputs of ``clips`` (from the feature cache, computed once)."""
    machine = clips[0].machine
    _say(progress, f"{machine}: features of {len(clips)} training clips")
    X, skipped = fit_bundle(
        detector,
        clips,
        plan.features,
        proxy_pool,
        plan.cache_dir,
        progress=progress is not None,
        say=progress,
    )
    if len(X) == 0:
        raise DataError(f"{machine}: every training clip was unreadable ({skipped[0][1]})")
    return X, skipped


def fit_stage(
    plan: RunPlan,
    manifest: Manifest,
    machine: str,
    proxy_pool: Callable[[], Sequence[Clip]],
    progress: Progress | None,
) -> Detector:
    """One machine type's fitted detector, saved in ``models/<machine>`` (or kept, on --resume)."""
    clips = training_clips(manifest, machine, plan.debug)
    if not clips:
        raise DataError(f"{machine}: no normal training clips in {manifest.root or 'the data'}")
    if plan.resume and (kept := kept_model(plan.out, machine)) is not None:
        _say(progress, f"{machine}: keeping the model the interrupted run trained (--resume)")
        return kept
    if plan.writer:
        for message in training_coverage_warnings(clips, test_clips(manifest, machine, plan.debug)):
            log.warning("%s", message)
    detector = plan.detector()
    X, skipped = features_stage(plan, detector, clips, proxy_pool, progress)
    _say(progress, f"{machine}: training {plan.model} on {len(X)} clips")
    start = time.perf_counter()
    if isinstance(detector, DeepDetector) and plan.tracking.tensorboard and plan.writes:
        assert plan.out is not None
        detector.trainer.log_dir = tensorboard_dir(plan.out, machine)
    detector.fit(X)
    detector.train_seconds_ = time.perf_counter() - start
    if (note := getattr(detector, "selection_note", lambda: None)()) is not None:
        _say(progress, f"{machine}: {note}")
    detector.metadata_ = {
        "machine": machine,
        "n_train_clips": len(X),
        "layout": manifest.layout,
        "train_seconds": round(detector.train_seconds_, 3),
        "seed": plan.seed,
        "skipped_train_clips": [[str(p), reason] for p, reason in skipped],
    }
    if plan.writes:
        assert plan.out is not None
        detector.save(model_dir(plan.out, machine), metadata=detector.metadata_)
    return detector


def score_stage(
    detector: Detector, clips: Sequence[Clip], cache_dir: Path | None, progress: Progress | None
) -> tuple[MachineScores | None, Skipped]:
    """Scores and decisions of a machine type's test clips; unreadable or unscorable ones are skipped."""
    if not clips:
        return None, []
    _say(progress, f"{clips[0].machine}: scoring {len(clips)} test clips")
    X, skipped = score_bundle(detector, clips, cache_dir, progress is not None)
    values, kept, unscored = score_guarded(detector, X, show=progress is not None)
    skipped = skipped + unscored
    if not len(kept):  # as the loader reads it back: a machine type appears once it has a scored clip
        return None, skipped
    decisions = (values > detector.threshold_).astype(np.int64)
    return MachineScores(list(X.subset(kept).clips), values, decisions), skipped


def machine_stage(
    plan: RunPlan,
    manifest: Manifest,
    machine: str,
    score: bool,
    progress: Progress | None = None,
    proxy_pool: Callable[[], Sequence[Clip]] | None = None,
) -> MachineOutcome:
    """Features, fit and (with ``score``, on the writing rank) scores of one machine type; a machine type
    that cannot be trained (too few or unusable clips, a fit that fails on its data) is an outcome with the
    one-line reason, for the others to go on."""
    pool = proxy_pool or functools.cache(lambda: normal_training_clips_of_tree(manifest, plan.debug))
    with thread_limit(plan.stage_threads(machine)):
        start = time.perf_counter()
        try:
            detector = fit_stage(plan, manifest, machine, pool, progress)
        except (AsdkitError, ValueError, ArithmeticError) as exc:
            return MachineOutcome(machine, None, failure=_failure(machine, exc))
        outcome = MachineOutcome(machine, detector, fit_seconds=time.perf_counter() - start)
        if score and plan.writer:
            start = time.perf_counter()
            clips = test_clips(manifest, machine, plan.debug)
            outcome.scored, outcome.skipped_test = score_stage(detector, clips, plan.cache_dir, progress)
            outcome.score_seconds = time.perf_counter() - start
    return outcome


def _failure(machine: str, exc: BaseException) -> str:
    reason = one_line(exc)
    reason = reason if reason.startswith(f"{machine}:") else f"{machine}: {reason}"
    log.error("%s: not trained (%s); the other machine types go on", machine, reason)
    return reason


def machine_threads(plan: RunPlan, manifest: Manifest) -> dict[str, int]:
    """Threads of each machine type, chosen once here by the log-mel frames of its training clips (read
    from the files' headers), so that they are the same whichever process, and however many, fit it."""
    if plan.threads is not None:
        return {}
    if plan.machine_threads:  # chosen already (the seeds of one run share them)
        return dict(plan.machine_threads)
    frames = {
        m: work_frames(training_clips(manifest, m, plan.debug), plan.features) for m in manifest.machines()
    }
    return {m: threads_for(n) for m, n in frames.items()}


def work_frames(clips: Sequence[Clip], features: FeatureConfig) -> int:
    """Log-mel frames of ``clips`` by their audio files' lengths (an unreadable file counts none)."""
    total = 0
    for clip in clips:
        try:
            info = sf.info(str(clip.path))
        except (OSError, RuntimeError):
            continue
        samples = int(info.frames * features.sample_rate / max(info.samplerate, 1))
        total += 1 + samples // features.hop_length
    return total


def _in_worker(plan: RunPlan, manifest: Manifest, machine: str, score: bool) -> MachineOutcome:
    """:func:`machine_stage` in a worker process: silent (the parent shows progress)."""
    quiet = {k: False for k in DISPLAY_PARAMS if k in plan.params}
    return machine_stage(replace(plan, params={**plan.params, **quiet}), manifest, machine, score)


def machines_stage(
    plan: RunPlan, manifest: Manifest, score: bool, progress: Progress | None
) -> dict[str, MachineOutcome]:
    """:func:`machine_stage` for every machine type, in the manifest's order; ``plan.jobs`` at a time.

    A machine type that cannot be trained is an outcome with its reason; none trained is an error."""
    machines = manifest.machines()
    plan = replace(plan, machine_threads=machine_threads(plan, manifest))
    outcomes = _machine_outcomes(plan, manifest, machines, score, progress)
    failures = {m: o.failure for m, o in outcomes.items() if o.failure is not None}
    if len(failures) == len(machines):
        by_reason: dict[str, list[str]] = {}  # one setting wrong for all: said once, not once per machine
        for machine, failure in failures.items():
            by_reason.setdefault(failure.removeprefix(f"{machine}: "), []).append(machine)
        reasons = "; ".join(f"{', '.join(ms)}: {reason}" for reason, ms in by_reason.items())
        raise DataError(f"no machine type could be trained: {reasons}")
    return outcomes


def _machine_outcomes(
    plan: RunPlan, manifest: Manifest, machines: Sequence[str], score: bool, progress: Progress | None
) -> dict[str, MachineOutcome]:
    jobs = min(plan.jobs, len(machines))
    if jobs <= 1:
        pool = functools.cache(lambda: normal_training_clips_of_tree(manifest, plan.debug))
        outcomes = {}
        for machine in machines:
            outcomes[machine] = outcome = machine_stage(plan, manifest, machine, score, progress, pool)
            _warn_outcome(outcome)
        return outcomes
    from joblib import Parallel, delayed

    _say(progress, f"{len(machines)} machine types in {jobs} worker processes (--jobs {plan.jobs})")
    done: dict[str, MachineOutcome] = {}
    tasks = (delayed(_in_worker)(plan, manifest, m, score) for m in machines)
    with Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered") as parallel:
        for outcome in parallel(tasks):
            done[outcome.machine] = outcome
            _warn_outcome(outcome)
            what = "not trained" if outcome.failure else "trained and scored" if score else "trained"
            _say(progress, f"{outcome.machine}: {what} ({len(done)}/{len(machines)})")
    return {m: done[m] for m in machines}


def write_stage(plan: RunPlan, result: RunResult) -> None:
    """The challenge's score and decision files of every scored machine type."""
    from asdkit.reports.submission import write_scores

    if not result.scored or not plan.writes:
        return
    assert plan.out is not None
    write_scores(plan.out / SCORES_DIR, *_all_scores(result))


def evaluate_stage(plan: RunPlan, judge: RunEvaluation, result: RunResult) -> None:
    """The official metrics of the scores (result.csv), under the rules the scan stage chose."""
    if not result.scored:
        return
    assert plan.out is not None
    result.evaluation = judge.evaluate(*_all_scores(result), plan.out)


def _all_scores(result: RunResult) -> tuple[list[Clip], np.ndarray, np.ndarray]:
    """Every scored clip, its score and its decision, machine type after machine type."""
    clips = [c for s in result.scored.values() for c in s.clips]
    scores = np.concatenate([s.scores for s in result.scored.values()])
    decisions = np.concatenate([s.decisions for s in result.scored.values() if s.decisions is not None])
    return clips, scores, decisions


def publish_stage(plan: RunPlan, result: RunResult, progress: Progress | None, started: float) -> None:
    """Figures, the final record (status "complete" only now, or "partial" with the machine types that
    could not be trained; refused decisions with their reasons) and the tracking of the finished run."""
    if plan.plots:
        from asdkit.reports.plots import write_run_plots

        start = time.perf_counter()
        paths = write_run_plots(result)
        result.timings["plots"] = time.perf_counter() - start
        _say(progress, f"{len(paths)} figures in {result.run_dir / PLOTS_DIR}")
    result.timings["total"] = time.perf_counter() - started
    result.config.update(
        status=PARTIAL if result.failed else COMPLETE,
        failed_machines=result.failed,
        decisions_refused=result.decisions_refused,
        timings={k: round(v, 3) for k, v in result.timings.items()},
        skipped=[[str(p), reason] for p, reason in result.skipped],
        skipped_counts=result.skip_counts,
        truncated=[[str(p), reason] for p, reason in result.truncated],
    )
    if result.evaluation is not None:
        result.config["official_score"] = result.evaluation.official_score
    assert plan.out is not None
    result.config = write_json(plan.out / CONFIG_FILE, result.config)
    log_run(result, plan.tracking, progress)


# -- the verbs ----------------------------------------------------------------------------------------------
def execute_run(plan: RunPlan, progress: Progress | None = None) -> RunResult:
    """Scan, record, fit and score every machine type, write, evaluate, publish: ``asdkit run``."""
    from asdkit.evaluation_paths import RunEvaluation

    assert plan.out is not None
    started = time.perf_counter()
    manifest = scan_stage(plan)
    warn_tensorboard_unused(plan)
    _say(progress, manifest.summary())
    judge = RunEvaluation.prepare(
        manifest, plan.ground_truth, plan.scheme, allow_partial=plan.allow_partial or plan.debug
    )
    _say(progress, f"evaluation: {judge.rules}")
    if plan.writes:
        plan.out.mkdir(parents=True, exist_ok=True)
    config = record_stage(plan, manifest, judge)
    timings = {"scan": time.perf_counter() - started}
    start = time.perf_counter()
    outcomes = machines_stage(plan, manifest, score=True, progress=progress)
    timings["machines"] = time.perf_counter() - start  # wall time; train and score are summed over them
    timings["train"] = sum(o.fit_seconds for o in outcomes.values())
    timings["score"] = sum(o.score_seconds for o in outcomes.values())
    failed = {m: o.failure for m, o in outcomes.items() if o.failure is not None}
    outcomes = {m: o for m, o in outcomes.items() if o.detector is not None}
    result = RunResult(
        run_dir=plan.out,
        config=config,
        manifest=manifest,
        scheme=judge.rules.scheme,
        scored={m: o.scored for m, o in outcomes.items() if o.scored is not None},
        thresholds={m: float(o.detector.threshold_) for m, o in outcomes.items()},
        histories={m: o.detector.training_history() for m, o in outcomes.items()},
        timings=timings,
        failed=failed,
        decisions_refused=_decisions_refused(outcomes),
    )
    record_selection(config, {m: o.detector for m, o in outcomes.items() if o.detector is not None})
    if not plan.writer:  # another rank of a DDP launch: its share of the training is done
        return result
    for machine, outcome in outcomes.items():
        if outcome.scored is None and not test_clips(manifest, machine, plan.debug):
            log.warning("%s: no test clips; nothing to score", machine)
    _count_skips(result, manifest, outcomes)
    write_stage(plan, result)
    evaluate_stage(plan, judge, result)
    publish_stage(plan, result, progress, started)
    return result


def execute_train(
    plan: RunPlan, progress: Progress | None = None
) -> tuple[dict[str, Detector], dict[str, str]]:
    """Scan, record, fit every machine type and mark the model directory complete (or partial, with the
    machine types that could not be trained): ``asdkit train``. Returns the detectors and the failures."""
    started = time.perf_counter()
    manifest = scan_stage(plan)
    warn_tensorboard_unused(plan)
    if plan.writes:
        assert plan.out is not None
        plan.out.mkdir(parents=True, exist_ok=True)
    config = record_stage(plan, manifest, None)
    outcomes = machines_stage(plan, manifest, score=False, progress=progress)
    detectors = {m: o.detector for m, o in outcomes.items() if o.detector is not None}
    failed = {m: o.failure for m, o in outcomes.items() if o.failure is not None}
    record_selection(config, detectors)
    if plan.writes:
        assert plan.out is not None
        timings = {f"train_{m}": round(o.fit_seconds, 3) for m, o in outcomes.items() if o.detector}
        timings["total"] = round(time.perf_counter() - started, 3)
        skipped = [
            [p, r]
            for d in detectors.values()
            for p, r in getattr(d, "metadata_", {}).get("skipped_train_clips", [])
        ]
        config.update(
            status=PARTIAL if failed else COMPLETE,
            failed_machines=failed,
            decisions_refused=_decisions_refused(outcomes),
            timings=timings,
            skipped=skipped,
        )
        write_json(plan.out / CONFIG_FILE, config)
        log_run(plan.out, plan.tracking, progress)
    return detectors, failed


# -- helpers ------------------------------------------------------------------------------------------------
def record_selection(config: dict[str, Any], detectors: Mapping[str, Detector]) -> None:
    """What the default chose per machine type, and the label-free evidence it rested on, in config.json."""
    selections = {m: d.selection_ for m, d in detectors.items() if getattr(d, "selection_", None)}
    if selections:
        config["selection"] = selections


def normal_training_clips_of_tree(manifest: Manifest, debug: bool) -> list[Clip]:
    """Normal training clips of every machine type in the tree (also those a ``machines`` filter left out)."""
    from asdkit.data.layouts import scan

    pool = manifest
    if manifest.root is not None:
        try:
            pool = scan(Path(manifest.root), layout=manifest.layout)
        except AsdkitError:
            pool = manifest
    pool = pool.filter(split=TRAIN)
    if debug:
        pool = debug_subset(pool, DEBUG_TRAIN_CLIPS_PER_SECTION)
    return [c for c in pool if c.label in (0, None)]


def _count_skips(result: RunResult, manifest: Manifest, outcomes: Mapping[str, MachineOutcome]) -> None:
    stages = {
        "scan": list(manifest.skipped),
        "training": [
            (Path(p), r)
            for o in outcomes.values()
            for p, r in getattr(o.detector, "metadata_", {}).get("skipped_train_clips", [])
        ],
        "test": [item for o in outcomes.values() for item in o.skipped_test],
    }
    result.skipped = [item for items in stages.values() for item in items]
    result.truncated = truncated_clips([c.path for c in manifest])
    result.skip_counts = {stage: len(items) for stage, items in stages.items()}


def _decisions_refused(outcomes: Mapping[str, MachineOutcome]) -> dict[str, str]:
    """Machine types whose detector refused to decide (too few clips for a threshold), with the reason."""
    refused = {m: getattr(o.detector, "threshold_refused_", None) for m, o in outcomes.items()}
    return {m: reason for m, reason in refused.items() if reason}


def _warn_outcome(outcome: MachineOutcome) -> None:
    trained = getattr(outcome.detector, "metadata_", {}).get("skipped_train_clips", [])
    warn_skipped(outcome.machine, "training", [(Path(p), r) for p, r in trained])
    warn_skipped(outcome.machine, "test", outcome.skipped_test)


def warn_skipped(machine: str, what: str, skipped: Sequence[tuple[Path, str]]) -> None:
    if skipped:
        log.warning("%s: skipped %s; first: %s", machine, skip_summary(what, skipped), skipped[0][1])


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)
