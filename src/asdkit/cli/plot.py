"""``asdkit plot ...``: figures drawn from a trained run (each a thin layer over :mod:`asdkit.api`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

plot_app = typer.Typer(
    help="Figures: training curves, score histograms, ROC curves, reconstruction view.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@plot_app.command()
def reconstruction(
    run: Annotated[
        Path, typer.Argument(help="A run directory or a model folder of a reconstruction detector.")
    ],
    clip: Annotated[Path, typer.Argument(help="The wav file to show.")],
    machine: Annotated[
        str | None,
        typer.Option("--machine", help="Which machine type's model to use (if the run has several)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="PNG to write (default: RUN/plots/reconstruction_<clip stem>.png)."),
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", help="Feature cache folder (default $ASDKIT_CACHE_DIR or ~/.cache)."),
    ] = None,
) -> None:
    """Draw a clip's log-mel, the model's reconstruction of it and the error over time, as a PNG.

    For reconstruction detectors (ae, vae, conv_ae, idnn); the error panel marks score and threshold.

    Examples:

        asdkit plot reconstruction runs/fan dev_data/fan/test/anomaly_id_00_00000000.wav

        asdkit plot reconstruction runs/idnn valve_clip.wav --machine valve --out valve.png
    """
    from asdkit import api
    from asdkit.rundir import PLOTS_DIR

    target = out if out is not None else run / PLOTS_DIR / f"reconstruction_{clip.stem}.png"
    path = api.plot_reconstruction(run, clip, target, machine=machine, cache_dir=cache_dir)
    typer.echo(f"reconstruction view: {path}")


@plot_app.command("run")
def run_plots(
    run: Annotated[
        Path,
        typer.Argument(
            help="A run directory, or a model directory (asdkit train) or one model folder: training curves."
        ),
    ],
    kind: Annotated[
        list[str] | None,
        typer.Option("--kind", "-k", help="loss, scores or roc (repeat); default all three."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for the PNGs (default: RUN/plots).")
    ] = None,
) -> None:
    """Draw a run's figures as PNGs: loss curves, score histograms with the threshold, ROC with pAUC region.

    One loss curve per machine type; one histogram and one ROC figure per machine type and section, split
    by domain. `asdkit run` draws them already unless --no-plots.

    Examples:

        asdkit plot run runs/ae

        asdkit plot run runs/ae --kind roc --out roc_figures/

        asdkit plot run runs/fan/models/fan --out fan_curve/   (a model folder of an ae run: its loss curve)
    """
    from asdkit.errors import AsdkitError
    from asdkit.reports.plots import KINDS, write_run_plots

    paths = write_run_plots(run, out, kinds=kind or KINDS)
    if not paths:
        raise AsdkitError(
            f"{run}: nothing to draw for --kind {','.join(kind or KINDS)}: no training curve "
            "(only iteratively trained detectors record one) and no evaluated scores"
        )
    for path in paths:
        typer.echo(str(path))
    typer.echo(f"{len(paths)} figure(s)", err=True)
