"""``asdkit serve``, ``asdkit watch`` and ``asdkit export``: putting a trained model next to a machine."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer

from asdkit.errors import AsdkitError

ModelArg = Annotated[Path, typer.Argument(help="A model folder or a run directory (models/<machine>/).")]


def _require(extra: str, *modules: str) -> None:
    """A one-line error naming the extra to install when an optional dependency is missing."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise AsdkitError(f"{', '.join(missing)} not installed: pip install 'asdkit[{extra}]'")


def check_port(port: int) -> None:
    """A TCP port number: 1-65535 (a larger one would wrap around to another port)."""
    if not 1 <= port <= 65535:
        raise AsdkitError(f"--port {port}: expected a TCP port from 1 to 65535")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    model: ModelArg,
    host: Annotated[
        str, typer.Option("--host", help="Address to bind; other than loopback needs --token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="ASDKIT_TOKEN", help="Require 'Authorization: Bearer TOKEN'."),
    ] = None,
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", help="Largest request body accepted (413 above).")
    ] = 20.0,
    workers: Annotated[
        int, typer.Option("--workers", help="Clips scored at once (threads of one torch thread each).")
    ] = 2,
) -> None:
    """Serve the models over HTTP: POST /score, POST /score/batch, GET /model, GET /health, /docs.

    Binds to 127.0.0.1 unless --host says otherwise; any other address requires a token (--token or
    $ASDKIT_TOKEN), sent by clients as 'Authorization: Bearer TOKEN'. Clips at another sample rate are
    resampled to the model's, and the response says so in "note".

    Examples:

        asdkit serve runs/ae

        asdkit serve runs/ae --port 9000 --max-upload-mb 5

        ASDKIT_TOKEN=s3cret asdkit serve runs/ae/models/fan --host 0.0.0.0

        curl -F file=@clip.wav 'http://127.0.0.1:8000/score?model=fan'
    """
    check_port(port)
    _require("serve", "fastapi", "uvicorn", "multipart")
    import uvicorn

    from asdkit.rundir import warn_if_incomplete
    from asdkit.service.app import create_app
    from asdkit.service.models import load_served_models

    if not _loopback(host) and not token:
        raise AsdkitError(
            f"--host {host} exposes the service beyond this machine: give --token (or $ASDKIT_TOKEN)"
        )
    models = load_served_models(model)
    warn_if_incomplete(model, "serving the models of")
    app = create_app(models, token=token, max_upload_mb=max_upload_mb, workers=workers)
    typer.echo(f"serving {', '.join(sorted(models))} on http://{host}:{port} (docs: /docs)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def watch(
    folder: Annotated[Path, typer.Argument(help="Folder where new recordings appear (recursively).")],
    model: Annotated[Path, typer.Option("--model", "-m", help="A model folder or a run directory.")],
    log: Annotated[
        Path | None, typer.Option("--log", help="JSON-lines log (default FOLDER/asdkit-scores.jsonl).")
    ] = None,
    machine: Annotated[
        str | None, typer.Option("--machine", help="Model to use (default: the only one, or a folder name).")
    ] = None,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between looks at the folder.")] = 5.0,
    settle: Annotated[
        float, typer.Option("--settle", help="Seconds a file must be unchanged before it is read.")
    ] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="Score what is there, then exit.")] = False,
) -> None:
    """Score each new recording in FOLDER and append one JSON line per clip to a log.

    The log is also the watcher's position: restarted, it scores only clips the log does not hold. A file
    is read once it has been unchanged for --settle seconds; names ending in .part, .tmp, .partial or
    .crdownload and hidden files are never read. Unreadable clips get an "error" line and are counted. With
    several models, --machine or a folder named like one picks the model; a clip neither picks one for is
    named in a warning and left out of the log, so a rerun with --machine scores it.

    Examples:

        asdkit watch /data/incoming --model runs/ae --machine fan

        asdkit watch incoming/ --model runs/ae --log scores.jsonl --interval 2

        asdkit watch incoming/ --model runs/ae/models/pump --once
    """
    from asdkit.service.models import load_served_models
    from asdkit.service.watch import FolderWatcher, WatchCounts

    log_path = log if log is not None else folder / "asdkit-scores.jsonl"
    if interval <= 0:
        raise AsdkitError(f"--interval must be positive, got {interval}")
    watcher = FolderWatcher(folder, load_served_models(model), log_path, machine=machine, settle=settle)

    def report(counts: WatchCounts) -> None:
        unrouted = f", no model chosen {counts.unrouted} (pass --machine)" if counts.unrouted else ""
        typer.echo(
            f"scored {counts.scored}, unreadable {counts.failed}, still settling {counts.waiting}"
            f"{unrouted} -> {log_path}",
            err=True,
        )

    if not once:
        typer.echo(f"watching {folder} every {interval:g} s (Ctrl-C to stop) -> {log_path}", err=True)
    counts = watcher.run(interval=interval, once=once, on_pass=report)
    report(counts)


def export(
    model: ModelArg,
    format: Annotated[str, typer.Option("--format", help="Export format (onnx).")] = "onnx",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default MACHINE.onnx).")
    ] = None,
    machine: Annotated[str | None, typer.Option("--machine", help="Which model of a run directory.")] = None,
    precision: Annotated[
        str, typer.Option("--precision", help="Front end STFT precision: float64 (parity) or float32.")
    ] = "float64",
) -> None:
    """Export the scoring path (log-mel on ONNX STFT, the detector's clip score) as one ONNX model.

    Inputs: "waveform" (batch, samples), float32 mono at the model's sample rate, and for detectors with
    memory banks "section" (batch; int64 index into the metadata's "sections", -1 unknown). Output: "score"
    (batch). The threshold (anomalous when score > threshold), sections and feature settings are in the
    ONNX metadata. Detectors: ae, vae, idnn, knn, mahalanobis, gmm, patch_bank and ensembles of
    them (the default detector); the others get a one-line error saying why.

    Examples:

        asdkit export runs/ae --machine fan -o fan.onnx

        asdkit export runs/ae/models/pump --format onnx --precision float32
    """
    from asdkit.service.models import load_served_models, pick_model

    if format != "onnx":
        raise AsdkitError(f"--format {format!r}: only 'onnx' is supported")
    _require("onnx", "onnx")
    from asdkit.export.graph import bank_sections
    from asdkit.export.onnx import export_onnx

    served = pick_model(load_served_models(model), machine)
    out = output if output is not None else Path(f"{served.name}.onnx")
    metadata = {"machine": served.name, "model_version": served.version}
    export_onnx(served.detector, out, precision=precision, metadata=metadata)
    sections = bank_sections(served.detector)
    inputs = f"waveform, section (index into {', '.join(sections)}; -1 unknown)" if sections else "waveform"
    typer.echo(f"{served.name}: wrote {out} (inputs: {inputs}; threshold {served.detector.threshold_:.6g})")
