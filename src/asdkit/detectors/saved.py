"""Saved models on disk: a model folder or a run's ``models/<machine>/``, and which model a clip goes to.

Here rather than in ``asdkit.api`` so that detectors (an ensemble reusing a trained run), the service and
the watcher find saved models the same way without importing the API.
"""

from __future__ import annotations

from pathlib import Path

from asdkit.detectors.base import CONFIG_NAME, Detector
from asdkit.errors import AsdkitError, ModelError
from asdkit.rundir import MODELS_DIR, seeds_hint


def load_models(model_or_run: Path | str) -> dict[str, Detector]:
    """Models by machine type, from a model folder or from a run directory holding ``models/<machine>/``."""
    path = Path(model_or_run)
    problem = models_problem(path)
    if problem:
        raise ModelError(problem)
    if (path / CONFIG_NAME).is_file():
        detector = Detector.load(path)
        machine = detector.metadata_.get("machine") or path.name
        return {machine: detector}
    return {p.name: Detector.load(p) for p in _run_models(path)}


def models_problem(path: Path) -> str:
    """Empty when ``path`` is a model folder or a run directory with models (none is loaded), else why not."""
    if not path.exists():
        return f"{path}: no such model folder or run directory"
    if not (path / CONFIG_NAME).is_file() and not _run_models(path):
        return (
            f"{path}: neither a model folder ({CONFIG_NAME}) nor a run directory ({MODELS_DIR}/*/)"
            + seeds_hint(path)
        )
    return ""


def _run_models(path: Path) -> list[Path]:
    models_dir = path / MODELS_DIR
    return sorted(p.parent for p in models_dir.glob(f"*/{CONFIG_NAME}")) if models_dir.is_dir() else []


def machine_for(path: Path, models: dict[str, Detector], machine: str | None = None) -> str:
    """The machine type whose model scores the clip at ``path``: ``machine`` if given, else the only model,
    else the nearest folder of the clip's path named like a model; an AsdkitError asking for ``machine``
    otherwise."""
    if machine is not None:
        if machine not in models:
            raise AsdkitError(f"no model for machine {machine!r}; the run has: {', '.join(sorted(models))}")
        return machine
    if len(models) == 1:
        return next(iter(models))
    for part in reversed(Path(path).resolve().parts[:-1]):
        if part in models:
            return part
    raise AsdkitError(
        f"{path}: cannot tell which machine type's model to use; pass --machine ({', '.join(sorted(models))})"
    )
