"""Experiment tracking: each training run logged to MLflow, optionally TensorBoard curves, behind one hook.

``log_run(run)`` is the hook: it takes a finished run as ``api.run`` hands it on (the resolved
configuration, the per-epoch training histories, the thresholds, the evaluation) and logs it as one MLflow
run with the run folder's files as artifacts, so tracking never changes what a run computes. Given a
folder instead (a model directory of ``asdkit train``, or an old run logged later), it reads it back
through :func:`asdkit.run_result.load_run`. By default the
store is a SQLite database beside the run directories (``RUN_ROOT/mlflow.db``, artifacts in
``RUN_ROOT/mlartifacts/``): MLflow 3's own default backend, no server needed, and ``asdkit dashboard
RUN_ROOT`` opens it. MLflow is an optional extra; without it runs work and say how to turn tracking on.

TensorBoard curves are written during training by Lightning's logger, to the ``log_dir`` that
``api.train`` sets in a network detector's TrainerConfig (``detectors/deep.py``).
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asdkit.errors import AsdkitError

if TYPE_CHECKING:
    from asdkit.run_result import RunResult

log = logging.getLogger(__name__)

STORE_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
DEFAULT_EXPERIMENT = "asdkit"
INSTALL_HINT = (
    "experiment tracking is off (MLflow is not installed): pip install 'asdkit[tracking]' "
    "to log every run and compare runs in `asdkit dashboard`"
)
_BATCH_PARAMS = 100  # MLflow's limits per log_batch call
_BATCH_METRICS = 1000
_MAX_PARAM_LENGTH = 6000

#: ``ASDKIT_TRACKING=off`` (or 0/false/no) switches MLflow tracking off by default, e.g. on a CI machine.
TRACKING_ENV = "ASDKIT_TRACKING"


def tracking_wanted() -> bool:
    """MLflow tracking is on unless ``$ASDKIT_TRACKING`` says off."""
    return os.environ.get(TRACKING_ENV, "on").strip().lower() not in ("0", "off", "false", "no")


@dataclass(frozen=True)
class TrackingOptions:
    """How runs are tracked.

    ``mlflow`` defaults to on unless ``$ASDKIT_TRACKING`` is off. ``uri`` None: ``$MLFLOW_TRACKING_URI``
    when set, else the SQLite store in the run root (the folder holding the run directory), so runs written
    side by side are compared in one dashboard.
    """

    mlflow: bool = field(default_factory=tracking_wanted)
    uri: str | None = None
    experiment: str = DEFAULT_EXPERIMENT
    tensorboard: bool = False


def local_store_uri(root: Path | str) -> str:
    """The SQLite store of a run root, as an absolute URI (``sqlite:////abs/path/mlflow.db``)."""
    return f"sqlite:///{(Path(root).resolve() / STORE_FILE).as_posix()}"


def tracking_uri(run_dir: Path | str, options: TrackingOptions) -> str:
    return (
        options.uri
        or os.environ.get("MLFLOW_TRACKING_URI")
        or local_store_uri(Path(run_dir).resolve().parent)
    )


# -- MLflow --------------------------------------------------------------------------------------------------
def log_run(
    run: RunResult | Path | str,
    options: TrackingOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> str | None:
    """Log a finished run (in memory, or a run or model directory) as one MLflow run; returns its id,
    None if not tracked.

    A tracking failure (e.g. an unreachable server) is a warning: the run's own files are complete.
    """
    options = options or TrackingOptions()
    if not options.mlflow:
        return None
    try:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient
    except ImportError:
        _tell(progress, INSTALL_HINT)
        return None
    from asdkit.run_result import RunResult, load_run

    run_dir = run.run_dir if isinstance(run, RunResult) else Path(run)
    uri = tracking_uri(run_dir, options)
    unreachable = _unreachable(uri)
    if unreachable is not None:  # MLflow itself would retry for minutes
        log.warning("experiment tracking failed (%s); the run itself is complete", unreachable)
        return None
    record = run if isinstance(run, RunResult) else load_run(run_dir)
    for name in ("mlflow.store.db.utils", "alembic"):  # "creating tables" chatter on a new store
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        client = MlflowClient(tracking_uri=uri)
        experiment_id = _experiment_id(client, options.experiment, uri)
        run_id = _log_record(client, experiment_id, record)
    except ImportError as exc:  # a SQLite store needs SQLAlchemy, which mlflow-skinny lacks
        _tell(progress, f"{INSTALL_HINT} ({exc})")
        return None
    except (MlflowException, OSError) as exc:
        log.warning("experiment tracking failed (%s); the run itself is complete", str(exc).splitlines()[0])
        return None
    _tell(progress, f"tracked as MLflow run {run_id} in {uri}")
    return run_id


#: Seconds to wait for a tracking server to accept a connection.
CONNECT_TIMEOUT = 3.0


def _unreachable(uri: str) -> str | None:
    """Why an http(s) tracking server cannot be reached (no connection within seconds); None if it can."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return f"{uri}: not a valid port"
    try:
        socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        return f"cannot reach {parts.hostname}:{port} ({exc.strerror or type(exc).__name__})"
    return None


def _experiment_id(client: Any, name: str, uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    location = None
    if uri.startswith("sqlite:///"):
        # beside the database: MLflow's default would be ./mlartifacts of whatever folder we run in
        location = (Path(uri.removeprefix("sqlite:///")).parent / ARTIFACTS_DIR).as_uri()
    return str(client.create_experiment(name, artifact_location=location))


def _log_record(client: Any, experiment_id: str, record: RunResult) -> str:
    from mlflow.entities import Metric, Param, RunTag

    from asdkit.rundir import (
        CONFIG_FILE,
        MANIFEST_FILE,
        MODELS_DIR,
        PLOTS_DIR,
        REPORT_FILE,
        RESULT_FILE,
        SCORES_DIR,
    )

    config = record.config
    total = float((config.get("timings") or {}).get("total") or 0.0)
    now_ms = int(time.time() * 1000)
    run = client.create_run(
        experiment_id,
        start_time=now_ms - int(total * 1000),
        tags=_tags(record),
        run_name=record.name,
    )
    run_id = run.info.run_id
    try:
        params = [Param(k, v) for k, v in flatten_params(config).items()]
        for i in range(0, len(params), _BATCH_PARAMS):
            client.log_batch(run_id, params=params[i : i + _BATCH_PARAMS])
        metrics = [Metric(k, v, now_ms, step) for k, v, step in run_metrics(record)]
        for i in range(0, len(metrics), _BATCH_METRICS):
            client.log_batch(run_id, metrics=metrics[i : i + _BATCH_METRICS])
        for name in (CONFIG_FILE, MANIFEST_FILE, RESULT_FILE, REPORT_FILE):
            if (record.run_dir / name).is_file():
                client.log_artifact(run_id, str(record.run_dir / name))
        for folder in (SCORES_DIR, PLOTS_DIR, MODELS_DIR):
            if (record.run_dir / folder).is_dir():
                client.log_artifacts(run_id, str(record.run_dir / folder), folder)
        client.log_batch(run_id, tags=[RunTag("asdkit.status", str(config.get("status", "")))])
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED", end_time=now_ms)
    return str(run_id)


def _tags(record: RunResult) -> dict[str, str]:
    env = record.config.get("environment") or {}
    tags = {
        "mlflow.source.name": "asdkit",
        "mlflow.source.type": "LOCAL",
        "asdkit.run_dir": str(record.run_dir.resolve()),
        "asdkit.model": str(record.config.get("model", "")),
    }
    if env.get("git_commit"):
        tags["mlflow.source.git.commit"] = str(env["git_commit"])
    if env.get("command_line"):
        tags["asdkit.command_line"] = str(env["command_line"])
    return tags


def flatten_params(config: dict[str, Any]) -> dict[str, str]:
    """The resolved configuration as MLflow parameters: nested keys dotted, lists comma-joined."""
    out: dict[str, str] = {}
    for key in ("model", "data", "layout", "machines", "seed", "debug", "ground_truth", "params", "features"):
        _flatten(out, key, config.get(key))
    for key, value in (config.get("environment") or {}).items():
        if key not in ("command_line", "git_commit"):  # tags, where MLflow's UI shows them
            _flatten(out, f"environment.{key}", value)
    return {k: v[:_MAX_PARAM_LENGTH] for k, v in out.items()}


def _flatten(out: dict[str, str], key: str, value: Any) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(out, f"{key}.{k}", v)
    elif isinstance(value, (list, tuple)):
        out[key] = ",".join(map(str, value))
    elif value is not None:
        out[key] = str(value)


def metric_key(*parts: str) -> str:
    """MLflow-safe metric name: ``AUC (source)`` -> ``AUC_source``; parts joined by ``/`` (UI groups)."""
    clean = [re.sub(r"[^\w.\- ]", "", re.sub(r"\s*\((.*?)\)", r"_\1", p)).strip() for p in parts]
    return "/".join(c.replace(" ", "_") for c in clean if c)


def run_metrics(record: RunResult) -> list[tuple[str, float, int]]:
    """(name, value, step) of everything a run measured: curves per epoch, results, thresholds, timings."""
    out: list[tuple[str, float, int]] = []
    for machine, history in sorted(record.histories.items()):
        for row in history:
            step = int(row.get("epoch", 0))
            out += [(metric_key(machine, k), float(v), step) for k, v in row.items() if k != "epoch"]
    for machine, threshold in sorted(record.thresholds.items()):
        if math.isfinite(threshold):  # +inf: the detector refused to decide (too few training clips)
            out.append((metric_key(machine, "threshold"), threshold, 0))
    for key, seconds in (record.config.get("timings") or {}).items():
        if isinstance(seconds, (int, float)):
            out.append((metric_key("time", f"{key}_seconds"), float(seconds), 0))
    ev = record.evaluation
    if ev is None:
        return out
    unit = "id" if ev.scheme == "dcase2020" else "section"
    for machine in ev:
        for row in machine.rows:
            where = [machine.machine, f"{unit}_{row.section}"] + ([row.domain] if row.domain else [])
            out += [(metric_key(*where, c), float(v), 0) for c, v in row.values.items()]
        for mean_name, means in (("amean", machine.amean), ("hmean", machine.hmean)):
            out += [(metric_key(machine.machine, mean_name, c), float(v), 0) for c, v in means.items()]
    for mean_name, means in (("amean", ev.overall_amean), ("hmean", ev.overall_hmean)):
        out += [(metric_key("all", mean_name, c), float(v), 0) for c, v in means.items()]
    out.append(("official_score", float(ev.official_score), 0))
    if ev.jackknife is not None:
        out += [
            ("official_score_ci_low", ev.jackknife.low, 0),
            ("official_score_ci_high", ev.jackknife.high, 0),
        ]
    return out


def dashboard_command(root: Path | str, port: int = 5000) -> list[str]:
    """The ``mlflow ui`` command showing a run root's store, bound to 127.0.0.1 (this machine only)."""
    root = Path(root)
    if not (root / STORE_FILE).is_file():
        raise AsdkitError(
            f"{root}: no MLflow store ({STORE_FILE}); runs with tracking on create it in the folder "
            "that holds their run directories"
        )
    return [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        local_store_uri(root),
        "--default-artifact-root",
        (root.resolve() / ARTIFACTS_DIR).as_uri(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def _tell(progress: Callable[[str], None] | None, message: str) -> None:
    if progress is not None:
        progress(message)
    else:
        log.info(message)
