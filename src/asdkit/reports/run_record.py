"""What a finished run directory holds, read back once for plots, the HTML report and experiment tracking.

Everything comes from the files the run wrote (config.json, manifest.csv, scores/, models/*/model.json),
so a figure or a report can be made again later, on another machine, without the data or the weights.
Clip labels and domains come from manifest.csv, so runs on evaluation sets labelled by ``--ground-truth``
are read back as they were evaluated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asdkit.errors import DataError
from asdkit.metrics import Evaluation, ScoreTable, evaluate

CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.csv"
MODELS_DIR = "models"
SCORES_DIR = "scores"
PLOTS_DIR = "plots"


@dataclass(frozen=True)
class ManifestTruth:
    """Labels and domains of test clips keyed by (machine, clip name): what read_scores_dir looks up."""

    labels: Mapping[tuple[str, str], int]
    domains: Mapping[tuple[str, str], str]


@dataclass
class RunRecord:
    """A run directory's configuration, per-clip scores with labels, evaluation, thresholds and curves."""

    run_dir: Path
    config: dict[str, Any]
    table: ScoreTable | None
    evaluation: Evaluation | None
    thresholds: dict[str, float] = field(default_factory=dict)
    histories: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    model_configs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.run_dir.resolve().name


def load_run(run_dir: Path | str) -> RunRecord:
    """Read a run directory (``asdkit run``), a model directory (``asdkit train``: models/ only) or one
    model folder (``models/<machine>/``, holding model.json)."""
    from asdkit.detectors.base import CONFIG_NAME, read_model_config

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: no such run directory")
    model_dirs = sorted(p.parent for p in (run_dir / MODELS_DIR).glob(f"*/{CONFIG_NAME}"))
    config_path = run_dir / CONFIG_FILE
    if not model_dirs and not config_path.is_file() and (run_dir / CONFIG_NAME).is_file():
        model_dirs = [run_dir]  # one model folder: its training curve
    if not config_path.is_file() and not model_dirs:
        raise DataError(
            f"{run_dir}: not a run directory (no {CONFIG_FILE}, no {MODELS_DIR}/*/{CONFIG_NAME}, "
            f"no {CONFIG_NAME})"
        )
    model_configs = {p.name: read_model_config(p) for p in model_dirs}
    config = _read_json(config_path) if config_path.is_file() else _config_from_models(model_configs)
    table = _score_table(run_dir, config)
    return RunRecord(
        run_dir=run_dir,
        config=config,
        table=table,
        evaluation=_evaluation(table),
        thresholds={m: float(c["threshold"]) for m, c in model_configs.items()},
        histories={m: list(c.get("history", [])) for m, c in model_configs.items()},
        model_configs=model_configs,
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data


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


def _evaluation(table: ScoreTable | None) -> Evaluation | None:
    """The run's evaluation again; None when its scores cannot be evaluated (the run said so already)."""
    if table is None:
        return None
    try:
        return evaluate(table)
    except DataError:
        return None


def _score_table(run_dir: Path, config: Mapping[str, Any]) -> ScoreTable | None:
    """Scores with the labels and domains the manifest knows, under the rules the run evaluated them by.

    None when there is nothing to evaluate.
    """
    from asdkit.data.manifest import TEST, Manifest
    from asdkit.reports.submission import read_scores_dir

    scores = run_dir / SCORES_DIR
    manifest_path = run_dir / MANIFEST_FILE
    if not scores.is_dir() or not any(scores.glob("anomaly_score_*.csv")) or not manifest_path.is_file():
        return None
    manifest = Manifest.from_csv(manifest_path, layout=str(config.get("layout") or "folder"))
    tests = [c for c in manifest if c.split == TEST]
    truth = ManifestTruth(
        labels={(c.machine, c.name): c.label for c in tests if c.label is not None},
        domains={(c.machine, c.name): c.domain for c in tests},
    )
    if len(truth.labels) < len(tests):
        return None  # an unlabelled evaluation set: submission files only, as the run itself did
    table = read_scores_dir(scores, ground_truth=truth)
    return ScoreTable(table.records, _run_scheme(config, manifest))


def _run_scheme(config: Mapping[str, Any], manifest: Any) -> str:
    """The scheme config.json records (``asdkit run`` decides it from the data's year), else the layout's."""
    from asdkit.metrics.scheme import choose_rules, year_of_manifest

    recorded = config.get("scheme")
    if isinstance(recorded, Mapping) and recorded.get("scheme"):
        return str(recorded["scheme"])
    year, source = year_of_manifest(manifest)
    return choose_rules(data_year=year, data_source=source).scheme
