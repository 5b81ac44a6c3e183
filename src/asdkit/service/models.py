"""Trained models as a service holds them, and the one-clip scoring path the service and the watcher share.

A clip goes audio bytes -> waveform (resampled to the model's rate) -> log-mel -> ``anomaly_score``: the
same front end and detector code as ``asdkit score``, but in memory (monitored clips are not cached).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from asdkit.data.audio import decode_audio
from asdkit.data.layouts.common import section_from_name
from asdkit.data.manifest import Clip
from asdkit.detectors.base import ARRAYS_NAME, CONFIG_NAME, WEIGHTS_NAME, Detector, read_model_config
from asdkit.detectors.saved import load_models
from asdkit.errors import DataError, ModelError
from asdkit.rundir import CONFIG_FILE, MODELS_DIR, RESULT_FILE, run_status
from asdkit.scoring.guard import not_finite_features_reason, not_finite_reason


@dataclass
class ServedModel:
    """One machine type's detector with what a client may ask about it."""

    name: str
    detector: Detector
    folder: Path
    version: str
    config: dict[str, Any]
    metrics: dict[str, Any] | None = None
    #: The status of the run directory the model came from ("complete", "interrupted", ...), if any.
    run_status: str | None = None

    def describe(self) -> dict[str, Any]:
        """The model's configuration, threshold and (from its run directory) the results it reached."""
        described: dict[str, Any] = {
            "name": self.name,
            "detector": self.detector.name,
            "model_version": self.version,
            "threshold": _json_threshold(self.detector.threshold_),
            "params": self.config.get("params", {}),
            "features": self.config.get("features", {}),
            "metadata": self.config.get("metadata", {}),
            "versions": self.config.get("versions", {}),
            "saved_at": self.config.get("saved_at"),
            "path": str(self.folder),
            "metrics": self.metrics,
            "run_status": self.run_status,
        }
        if self.run_status not in (None, "complete"):
            described["warning"] = f"the run this model came from is not complete (status: {self.run_status})"
        return described


def load_served_models(model_or_run: Path | str) -> dict[str, ServedModel]:
    """``load_models`` plus each model's folder, content hash (its version) and run metrics."""
    path = Path(model_or_run)
    detectors = load_models(path)
    served: dict[str, ServedModel] = {}
    for name, detector in detectors.items():
        folder = path if (path / CONFIG_NAME).is_file() else path / MODELS_DIR / name
        run_dir = folder.parents[1] if folder.parent.name == MODELS_DIR else None
        served[name] = ServedModel(
            name=name,
            detector=detector,
            folder=folder,
            version=model_version(folder),
            config=read_model_config(folder),
            metrics=run_metrics(run_dir, name) if run_dir is not None else None,
            run_status=run_status(run_dir) if run_dir is not None else None,
        )
    return served


def model_version(folder: Path) -> str:
    """A short hash of model.json, weights.pt and arrays.npz: two services answer alike iff their versions
    match (sub-models such as an ensemble's members are saved with it, so model.json's time covers them)."""
    digest = hashlib.sha256()
    for name in (CONFIG_NAME, WEIGHTS_NAME, ARRAYS_NAME):
        if (folder / name).is_file():
            digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:12]


def run_metrics(run_dir: Path, machine: str) -> dict[str, Any] | None:
    """The official score and this machine type's rows of result.csv, when the run wrote them."""
    config_path, result_path = run_dir / CONFIG_FILE, run_dir / RESULT_FILE
    metrics: dict[str, Any] = {}
    try:
        if config_path.is_file():
            config = json.loads(config_path.read_text())
            if "official_score" in config:
                metrics["official_score"] = config["official_score"]
        if result_path.is_file():
            rows = _machine_rows(result_path.read_text(), machine)
            if rows:
                metrics["result_csv"] = rows
    except (OSError, ValueError):
        return None  # a damaged run directory does not stop the model from serving
    return metrics or None


def _machine_rows(text: str, machine: str) -> list[dict[str, str]]:
    """The block of result.csv that starts with a line holding only ``machine``, as dicts by header."""
    lines = list(csv.reader(io.StringIO(text)))
    for i, line in enumerate(lines):
        if line == [machine] and i + 1 < len(lines):
            header = lines[i + 1]
            rows = []
            for row in lines[i + 2 :]:
                if not row:
                    break
                rows.append(dict(zip(header, row, strict=False)))
            return rows
    return []


def score_audio(
    model: ServedModel, source: str | BinaryIO, filename: str, section: str | None = None
) -> dict[str, Any]:
    """Score one clip (a path or an open binary stream); raises AudioError / DataError on bad input.

    Another sample rate is resampled to the model's (as training data would be) and the result says
    so in ``note``; the decision compares the score with the model's threshold (score > threshold). The
    clip's section is ``section``, else the one in a DCASE-style file name, else unknown ("").
    """
    from asdkit.detectors.inputs import bundle_of_waves

    if section is not None and not section.isdigit():
        raise DataError(f"section {section!r}: expected digits such as 00 or 01")
    section = section.zfill(2) if section is not None else section_from_name(filename)
    detector = model.detector
    config = detector.feature_config_
    t0 = time.perf_counter()
    wave, rate = decode_audio(source, filename, config.sample_rate, config.channel)
    t1 = time.perf_counter()
    clip = Clip(path=Path(filename), machine=model.name, section=section or "")
    features = bundle_of_waves(detector, [wave], [clip])
    t2 = time.perf_counter()
    every_input = (features.arrays, *(given.arrays for given in features.inputs.values()))
    if not all(np.all(np.isfinite(arrays[0])) for arrays in every_input):
        raise DataError(not_finite_features_reason(filename))
    try:
        value = float(detector.anomaly_score(features)[0])
    except ValueError as exc:  # e.g. a clip shorter than the frames one network input needs
        raise DataError(f"{filename}: cannot be scored ({exc})") from None
    if not math.isfinite(value):
        raise DataError(not_finite_reason(filename, value))
    t3 = time.perf_counter()
    result: dict[str, Any] = {
        "file": filename,
        "model": model.name,
        "machine": model.name,
        "section": section,
        "score": value,
        "threshold": _json_threshold(detector.threshold_),
        "decision": int(value > detector.threshold_),
        "detector": detector.name,
        "model_version": model.version,
        "duration_s": round(len(wave) / config.sample_rate, 3),
        "timing_ms": {
            "decode": round((t1 - t0) * 1e3, 3),
            "features": round((t2 - t1) * 1e3, 3),
            "network": round((t3 - t2) * 1e3, 3),
            "total": round((t3 - t0) * 1e3, 3),
        },
    }
    if rate != config.sample_rate:
        result["note"] = f"resampled from {rate} Hz to {config.sample_rate} Hz (the model's rate)"
    return result


def pick_model(models: dict[str, ServedModel], name: str | None) -> ServedModel:
    """The model called ``name``, or the only one; a ModelError naming the choices otherwise."""
    if name is None:
        if len(models) == 1:
            return next(iter(models.values()))
        names = ", ".join(sorted(models))
        raise ModelError(f"several models are served ({names}); choose one with model=NAME (--machine)")
    if name not in models:
        raise UnknownModelError(f"unknown model {name!r}; this service has: {', '.join(sorted(models))}")
    return models[name]


class UnknownModelError(ModelError):
    """A model name that the service or watcher does not hold."""


def _json_threshold(threshold: float) -> float | None:
    """The threshold as JSON allows it: None where the detector refused to decide (+inf, model.json's
    ``threshold_refused`` says why; no clip is flagged)."""
    return threshold if math.isfinite(threshold) else None
