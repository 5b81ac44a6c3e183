"""``asdkit report`` and ``asdkit dashboard``: reading runs back (thin layers over reports and tracking)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from asdkit.errors import AsdkitError


def report(
    run_dir: Annotated[
        Path, typer.Argument(help="The run directory (written by `asdkit run`) or a --seeds folder.")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="HTML file to write (default: RUN_DIR/report.html).")
    ] = None,
) -> None:
    """Write one self-contained HTML page: results, official score with its 95% interval, figures, setup.

    The page needs no network and no other file (figures are embedded), so it can be mailed or archived.

    Examples:

        asdkit report runs/ae

        asdkit report runs/ae -o ae-report.html

        asdkit report runs/gmm4   (a --seeds folder: every seed's values, mean and std)
    """
    from asdkit.reports.html import write_report
    from asdkit.reports.html_compare import is_seeds_folder, write_seeds_report
    from asdkit.rundir import warn_if_incomplete

    if is_seeds_folder(run_dir):
        typer.echo(f"report: {write_seeds_report(run_dir, out)}")
        return
    warn_if_incomplete(run_dir, "reporting")
    typer.echo(f"report: {write_report(run_dir, out)}")


def dashboard(
    run_root: Annotated[
        Path, typer.Argument(help="The folder holding the run directories (and mlflow.db); default '.'.")
    ] = Path("."),
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1.")] = 5000,
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the mlflow command instead of running it.")
    ] = False,
) -> None:
    """Open the MLflow dashboard of the runs tracked under RUN_ROOT (http://127.0.0.1:PORT; Ctrl-C stops it).

    Runs write their MLflow entries to RUN_ROOT/mlflow.db, where RUN_ROOT is the folder holding the run
    directory (`asdkit run --out runs/ae` tracks into runs/). The server listens on this machine only.

    Examples:

        asdkit dashboard runs

        asdkit dashboard runs --port 5001 --print
    """
    import importlib.util
    import shlex

    from asdkit.cli.serve import check_port
    from asdkit.tracking import INSTALL_HINT, dashboard_command

    check_port(port)
    command = dashboard_command(run_root, port)
    if print_only:
        typer.echo(shlex.join(command))
        return
    if importlib.util.find_spec("mlflow") is None:
        raise AsdkitError(INSTALL_HINT)
    # The dashboard only browses runs: MLflow's background job workers (GenAI scorers) are not started,
    # since they would outlive the server (the user's own setting of the variable wins).
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    typer.echo(f"MLflow dashboard of {run_root} at http://127.0.0.1:{port} (Ctrl-C stops it)", err=True)
    try:
        subprocess.run(command, check=True, env=env)
    except subprocess.CalledProcessError as exc:
        raise AsdkitError(f"mlflow ui stopped with exit code {exc.returncode}") from None
    except KeyboardInterrupt:
        typer.echo("dashboard stopped", err=True)
