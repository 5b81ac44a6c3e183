"""A run as one object: built once by ``api.run`` and handed on, in memory, to plots, the report and tracking.

:func:`load_run` builds the same object again from a run folder, for ``asdkit report``, ``plot run``,
``evaluate RUN``, the comparisons and tracking a run later (the folder's names are :mod:`asdkit.rundir`'s).
The score files are read by :mod:`asdkit.reports.submission` (which writes
them, and so owns their naming rules) and matched to the clips of manifest.csv, so labels and domains are
the ones the run evaluated with, also on evaluation sets labelled by ``--ground-truth``. Nothing needs the
data or the weights: a figure or a report can be made again later, on another machine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from asdkit.errors import DataError
from asdkit.rundir import (
    CONFIG_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    MODELS_DIR,
    RESULT_FILE,
    SCORES_DIR,
    seeds_hint,
)

if TYPE_CHECKING:
    from asdkit.data.manifest import Clip, Manifest
    from asdkit.metrics import Evaluation, ScoreTable


@dataclass
class MachineScores:
    """One machine type's scored test clips (in the manifest's order), their scores and 0/1 decisions."""

    clips: list[Clip]
    scores: np.ndarray
    decisions: np.ndarray | None = None


@dataclass
class RunResult:
    """What a run computed and wrote: configuration, manifest, per-machine scores, thresholds, training
    curves and the evaluation; also a model directory's (``asdkit train``: thresholds and curves only)."""

    run_dir: Path
    config: dict[str, Any]
    manifest: Manifest | None = None
    evaluation: Evaluation | None = None
    #: the rules' scheme the scores were evaluated by (None when nothing was scored)
    scheme: str | None = None
    scored: dict[str, MachineScores] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    histories: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    #: clips scored although their wav header declares more frames than the file holds
    truncated: list[tuple[Path, str]] = field(default_factory=list)
    #: how many clips were skipped where: scan (the tree), training, test
    skip_counts: dict[str, int] = field(default_factory=dict)
    #: machine types that could not be trained, with the one-line reason (the run's status is then partial)
    failed: dict[str, str] = field(default_factory=dict)
    #: machine types whose detector refused to decide (too few training clips), with the reason
    decisions_refused: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.run_dir.resolve().name

    @property
    def result_csv(self) -> Path:
        return self.run_dir / RESULT_FILE

    @property
    def scores(self) -> dict[str, np.ndarray]:
        """Test-clip scores by machine type."""
        return {machine: s.scores for machine, s in self.scored.items()}

    @property
    def table(self) -> ScoreTable | None:
        """The scores with labels and domains; None when nothing was scored or a clip has no label."""
        from asdkit.metrics import ScoreTable

        clips = [c for s in self.scored.values() for c in s.clips]
        if not clips or self.scheme is None or any(c.label is None for c in clips):
            return None
        scores = np.concatenate([s.scores for s in self.scored.values()])
        parts = [s.decisions for s in self.scored.values()]
        decisions = None if any(d is None for d in parts) else np.concatenate(parts)  # type: ignore[arg-type]
        return ScoreTable.from_clips(clips, scores, decisions, scheme=self.scheme)


# -- reading a run folder back ------------------------------------------------------------------------------
def load_run(run_dir: Path | str) -> RunResult:
    """Read a run directory (``asdkit run``), a model directory (``asdkit train``: models/ only) or one
    model folder (``models/<machine>/``, holding model.json)."""
    from asdkit.detectors.base import read_model_config
    from asdkit.detectors.model_file import model_threshold

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: no such run directory")
    model_dirs = sorted(p.parent for p in (run_dir / MODELS_DIR).glob(f"*/{MODEL_FILE}"))
    config_path = run_dir / CONFIG_FILE
    if not model_dirs and not config_path.is_file() and (run_dir / MODEL_FILE).is_file():
        model_dirs = [run_dir]  # one model folder: its training curve
    if not config_path.is_file() and not model_dirs:
        raise DataError(
            f"{run_dir}: not a run directory (no {CONFIG_FILE}, no {MODELS_DIR}/*/{MODEL_FILE}, "
            f"no {MODEL_FILE}){seeds_hint(run_dir)}"
        )
    model_configs = {p.name: read_model_config(p) for p in model_dirs}
    config = read_config(run_dir) if config_path.is_file() else _config_from_models(model_configs)
    manifest = read_manifest(run_dir, config)
    scored = _read_scored(run_dir / SCORES_DIR, manifest) if manifest is not None else {}
    result = RunResult(
        run_dir=run_dir,
        config=config,
        manifest=manifest,
        scheme=_run_scheme(config, manifest) if scored else None,
        scored=scored,
        thresholds={m: model_threshold(c) for m, c in model_configs.items()},
        histories={m: list(c.get("history", [])) for m, c in model_configs.items()},
        skipped=_pairs(config.get("skipped")),
        timings=dict(config.get("timings") or {}),
        truncated=_pairs(config.get("truncated")),
        skip_counts=dict(config.get("skipped_counts") or {}),
        failed=dict(config.get("failed_machines") or {}),
        decisions_refused=dict(config.get("decisions_refused") or {}),
    )
    result.evaluation = _evaluation(result.table, config)
    return result


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's config.json (resolved configuration, environment, status)."""
    path = run_dir / CONFIG_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data


def read_manifest(run_dir: Path, config: Mapping[str, Any]) -> Manifest | None:
    """The run's manifest.csv (clips with their labels and domains); None for a model directory."""
    from asdkit.data.manifest import Manifest

    path = run_dir / MANIFEST_FILE
    if not path.is_file():
        return None
    return Manifest.from_csv(path, layout=str(config.get("layout") or "folder"))


def _pairs(items: Any) -> list[tuple[Path, str]]:
    return [(Path(p), str(reason)) for p, reason in items or []]


def _config_from_models(model_configs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A model directory has no config.json; its models' files say what was trained, and how."""
    first = next(iter(model_configs.values()))
    return {
        "status": "complete",
        "model": first["detector"],
        "params": first["params"],
        "features": first["features"],
        "machines": sorted(model_configs),
        "seed": first.get("metadata", {}).get("seed"),
        "layout": first.get("metadata", {}).get("layout"),
        "environment": dict(first.get("versions", {})),
        "timings": {
            f"train_{m}": c.get("metadata", {}).get("train_seconds") for m, c in model_configs.items()
        },
    }


def _read_scored(folder: Path, manifest: Manifest) -> dict[str, MachineScores]:
    """The score (and decision) files, matched to the manifest's test clips, in the manifest's order."""
    from asdkit.data.manifest import TEST
    from asdkit.reports.submission import SCORE_PREFIX, read_score_files

    if not folder.is_dir() or not any(folder.glob(f"{SCORE_PREFIX}*.csv")):
        return {}
    order = {(c.machine, c.name): i for i, c in enumerate(manifest) if c.split == TEST}
    found: dict[int, tuple[float, int | None]] = {}
    for file in read_score_files(folder):
        for name, score in file.rows:
            index = order.get((file.info.machine, name))
            if index is None:
                raise DataError(f"{file.path}: clip {name} is not a test clip of the run's {MANIFEST_FILE}")
            found[index] = (score, file.decision(name))
    scored: dict[str, MachineScores] = {}
    for machine in manifest.machines():
        rows = [(i, *found[i]) for i in sorted(found) if manifest[i].machine == machine]
        if not rows:
            continue
        decisions = [d for _, _, d in rows]
        scored[machine] = MachineScores(
            clips=[manifest[i] for i, _, _ in rows],
            scores=np.array([s for _, s, _ in rows], dtype=float),
            decisions=None if None in decisions else np.array(decisions, dtype=np.int64),
        )
    return scored


def _evaluation(table: ScoreTable | None, config: Mapping[str, Any]) -> Evaluation | None:
    """The run's evaluation again, under the rules it recorded; None when its scores cannot be evaluated
    (the run said so already)."""
    from asdkit.metrics import evaluate
    from asdkit.metrics.scheme import Rules

    if table is None:
        return None
    try:
        evaluation = evaluate(table)
    except DataError:
        return None
    recorded = config.get("scheme")
    if isinstance(recorded, Mapping) and recorded.get("scheme"):
        rules = Rules(
            recorded["scheme"],
            recorded.get("year"),
            str(recorded.get("reason", "")),
            bool(recorded.get("forced")),
        )
        evaluation = replace(evaluation, rules=rules)
    return evaluation


def _run_scheme(config: Mapping[str, Any], manifest: Any) -> str:
    """The scheme config.json records (``asdkit run`` decides it from the data's year), else the layout's."""
    from asdkit.metrics.scheme import choose_rules, year_of_manifest

    recorded = config.get("scheme")
    if isinstance(recorded, Mapping) and recorded.get("scheme"):
        return str(recorded["scheme"])
    year, source = year_of_manifest(manifest)
    return choose_rules(data_year=year, data_source=source).scheme
