"""The ``asdkit`` command: a thin layer over :mod:`asdkit.api`. Bad input ends in one line, no traceback."""

from __future__ import annotations

import csv
import errno
import inspect
import io
import json
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from asdkit.cli import serve as serve_cli
from asdkit.cli.plot import plot_app
from asdkit.cli.report import dashboard, report
from asdkit.cli.workflow import ConfigOpt, download, prepare, recipes, run_features, run_params, submit
from asdkit.detectors.registry import DEFAULT_DETECTOR
from asdkit.errors import AsdkitError

#: exit code of a run that finished without every machine type (status "partial" in config.json)
PARTIAL_EXIT = 3

app = typer.Typer(
    name="asdkit",
    help="Unsupervised anomalous sound detection for machine condition monitoring (DCASE Task 2).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

DataOpt = Annotated[
    Path, typer.Option("--data", "-d", help="Data root (any DCASE Task 2 layout or a folder).")
]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Run directory to write (created).")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Detector name (see `asdkit detectors`).")]
MachineOpt = Annotated[
    list[str] | None, typer.Option("--machine", help="Machine type(s) to use (repeat); default all.")
]
LayoutOpt = Annotated[
    str | None,
    typer.Option("--layout", help="Force a layout: dcase2020, dcase2021, dcase2022, eval, folder, mimii."),
]
SeedOpt = Annotated[
    int, typer.Option("--seed", help="Random seed (runs repeat exactly on the same machine).")
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Tiny run in seconds: few clips, few epochs.")]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="Detector parameter KEY=VALUE (repeat), e.g. epochs=20."),
]
CacheOpt = Annotated[
    Path | None,
    typer.Option("--cache-dir", help="Feature cache folder (default $ASDKIT_CACHE_DIR or ~/.cache)."),
]
GroundTruthOpt = Annotated[
    Path | None, typer.Option("--ground-truth", help="Official ground-truth list(s) labelling an eval set.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
ChannelOpt = Annotated[
    str,
    typer.Option(
        "--channel",
        help="Channel of multi-channel files: an index (default 0), 'mix' (their mean), or both channels of "
        "DCASE2026 clips: 'pair' (near and far log-mel side by side) or 'noise_aware' (near, far as noise "
        "reference).",
    ),
]
SchemeOpt = Annotated[
    str | None,
    typer.Option(
        "--scheme",
        help="Force the evaluation rules: 2020, 2021 or 2022 (2022-2025). Default: the data's year.",
    ),
]
AllowPartialOpt = Annotated[
    bool,
    typer.Option(
        "--allow-partial",
        help="Evaluate even if clips the ground truth lists have no score (coverage is reported).",
    ),
]
NoTrackOpt = Annotated[bool, typer.Option("--no-track", help="Do not log the run to MLflow.")]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        help="torch/BLAS threads (default: 1 for small jobs, else the CPUs other load leaves idle).",
    ),
]
TrackingUriOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow store or server (default $MLFLOW_TRACKING_URI, else OUT's parent folder/mlflow.db).",
    ),
]
TensorboardOpt = Annotated[
    bool, typer.Option("--tensorboard", help="Also write TensorBoard curves to OUT/tensorboard/<machine>.")
]

JobsOpt = Annotated[
    int,
    typer.Option(
        "--jobs", "-j", help="Machine types (or --seeds) at a time, in worker processes; outputs as with 1."
    ),
]
OverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="Replace the run OUT holds (its outputs are removed first).")
]
ResumeOpt = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Continue the interrupted run in OUT: keep its trained machine types, train the rest.",
    ),
]


def _other_rank() -> bool:
    """True in the extra processes of a DDP launch: they compute alongside rank 0 and print nothing."""
    from asdkit.rundir import launch_rank

    return launch_rank() != 0


def _tracking(no_track: bool, tracking_uri: str | None, tensorboard: bool) -> Any:
    from asdkit.tracking import TrackingOptions

    if no_track:
        return TrackingOptions(mlflow=False, uri=tracking_uri, tensorboard=tensorboard)
    return TrackingOptions(uri=tracking_uri, tensorboard=tensorboard)  # on unless $ASDKIT_TRACKING=off


def _features(channel: str) -> Any:
    from asdkit.features.noise_aware import channel_features

    try:
        return channel_features(channel)
    except ValueError as exc:
        raise AsdkitError(str(exc)) from None


def _training_params(items: list[str] | None, quiet: bool, model: str) -> dict[str, Any]:
    """Detector parameters, plus a training progress bar unless --quiet (where the detector has one)."""
    from asdkit.detectors.params import validate_params
    from asdkit.detectors.registry import get_detector_class

    params = validate_params(model, _params(items))  # before any work: one line naming the parameter
    if not quiet and "progress" in get_detector_class(model)().get_params():
        params.setdefault("progress", True)
    return params


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _progress(quiet: bool) -> Any:
    if quiet or _other_rank():
        return None
    console = _console()
    return lambda message: console.print(f"[bold cyan]asdkit[/] {message}", highlight=False)


def _params(items: list[str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise AsdkitError(f"--param {item!r}: expected KEY=VALUE")
        try:
            params[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[key.strip()] = raw
    return params


def _print_evaluation(evaluation: Any) -> None:
    from asdkit.reports.console import print_evaluation

    print_evaluation(evaluation)


@app.command()
def run(
    ctx: typer.Context,
    data: DataOpt,
    out: OutOpt,
    model: ModelOpt = DEFAULT_DETECTOR,
    machine: MachineOpt = None,
    layout: LayoutOpt = None,
    ground_truth: GroundTruthOpt = None,
    seed: SeedOpt = 0,
    debug: DebugOpt = False,
    param: ParamOpt = None,
    cache_dir: CacheOpt = None,
    channel: ChannelOpt = "0",
    quiet: QuietOpt = False,
    no_track: NoTrackOpt = False,
    tracking_uri: TrackingUriOpt = None,
    tensorboard: TensorboardOpt = False,
    no_plots: Annotated[
        bool, typer.Option("--no-plots", help="Do not draw the figures in OUT/plots.")
    ] = False,
    seeds: Annotated[
        str | None,
        typer.Option(
            "--seeds", help="Run once per seed (0,1,2,3 or 0-3) in OUT/seed_N; report mean and std."
        ),
    ] = None,
    scheme: SchemeOpt = None,
    allow_partial: AllowPartialOpt = False,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = False,
    jobs: JobsOpt = 1,
    config: ConfigOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Train per machine type, score the test clips, write the submission files and print the results.

    A machine type that cannot be trained (e.g. one training clip) is named and left out while the others
    finish; the run is then "partial" in config.json and the exit code is 3.

    Examples:

        asdkit run --data dev_data --out runs/ae

        asdkit run --data dev_data --out runs/fan --model ae --machine fan --seed 1 --param epochs=20

        asdkit run --data dev_data --out runs/gmm4 --model gmm --seeds 0,1,2,3

        asdkit run --data eval_data --out runs/eval --ground-truth ground_truth/ --layout eval

        asdkit run --data mimii/ --out runs/mimii --model knn --channel mix

        asdkit run --data dev_data --out runs/ae2021 --scheme 2021

        asdkit run --data dev_data --out runs/ae --tensorboard --tracking-uri http://mlflow.lan:5000

        asdkit run --data dev_data --out runs/ae --resume      (after Ctrl-C: same settings, plus --resume)

        asdkit run --data dev_data --out runs/ae --overwrite   (start again in a folder that holds a run)

        asdkit run --data dev_data --out runs/knn --model knn --jobs 2   (two machine types at a time)

        asdkit run --data dev_data --out runs/ae2 --model ae --param devices=2 --param strategy=ddp

        asdkit run --config dcase2023_baseline_ae --data dev_data --out runs/ae --param epochs=20

        asdkit run --config runs/ae/config.json --out runs/ae_again
    """
    from asdkit import api

    result = api.run(
        data,
        out,
        model=model,
        params=run_params(ctx, _training_params(param, quiet, model), model, debug),
        features=run_features(ctx, _features(channel)),
        machines=machine,
        layout=layout,
        ground_truth=ground_truth,
        seed=seed,
        debug=debug,
        cache_dir=cache_dir,
        progress=_progress(quiet),
        command_line=shlex.join(["asdkit", *sys.argv[1:]]),
        tracking=_tracking(no_track, tracking_uri, tensorboard),
        plots=not no_plots,
        seeds=_seeds(seeds),
        scheme=scheme,
        allow_partial=allow_partial,
        overwrite=overwrite,
        resume=resume,
        jobs=jobs,
        threads=threads,
    )
    if _other_rank():
        return
    if seeds is None:
        _finish_run(result)
    else:
        _finish_seeds(result)


def _seeds(text: str | None) -> list[int] | None:
    from asdkit.seeds import parse_seeds

    return None if text is None else parse_seeds(text)


def _finish_seeds(result: Any) -> None:
    from rich.console import Console

    from asdkit.reports.compare import seeds_table

    if result.summary:
        Console().print(seeds_table(result.summary, result.seeds))
        typer.echo(f"summary: {result.seeds_csv}")
    else:
        typer.echo("no evaluation (unlabelled test clips): see each seed's run directory", err=True)
    typer.echo(f"run directories: {result.run_dir}/seed_{{{','.join(map(str, result.seeds))}}}")


def _finish_run(result: Any) -> None:
    from asdkit.rundir import CONFIG_FILE, MODELS_DIR, PLOTS_DIR, SCORES_DIR

    if result.evaluation is not None:
        _print_evaluation(result.evaluation)
    if result.skipped:
        counts = ", ".join(f"{k} {v}" for k, v in result.skip_counts.items() if v)
        typer.echo(f"skipped {len(result.skipped)} clip(s) ({counts}): see {CONFIG_FILE}", err=True)
    if result.truncated:
        typer.echo(
            f"{len(result.truncated)} truncated clip(s) scored as shorter: see {CONFIG_FILE}", err=True
        )
    typer.echo(f"run directory: {result.run_dir}")
    typer.echo(f"  submission files: {result.run_dir / SCORES_DIR}")
    if result.evaluation is not None:
        typer.echo(f"  results: {result.result_csv}")
    typer.echo(f"  models: {result.run_dir / MODELS_DIR}")
    if (result.run_dir / PLOTS_DIR).is_dir():
        typer.echo(f"  figures: {result.run_dir / PLOTS_DIR}  (one page: asdkit report {result.run_dir})")
    for reason in (result.config.get("decisions_refused") or {}).values():
        typer.echo(f"warning: decisions refused: {reason}", err=True)
    _exit_partial(result.failed)


def _exit_partial(failed: dict[str, str]) -> None:
    """Exit code 3 (partial) naming each machine type that could not be trained."""
    from asdkit.rundir import CONFIG_FILE

    if not failed:
        return
    for reason in failed.values():
        typer.echo(f"error: not trained: {reason}", err=True)
    typer.echo(
        f"partial: {len(failed)} machine type(s) not trained ({CONFIG_FILE}: failed_machines)", err=True
    )
    raise typer.Exit(PARTIAL_EXIT)


@app.command()
def train(
    data: DataOpt,
    out: OutOpt,
    model: ModelOpt = DEFAULT_DETECTOR,
    machine: MachineOpt = None,
    layout: LayoutOpt = None,
    seed: SeedOpt = 0,
    debug: DebugOpt = False,
    param: ParamOpt = None,
    cache_dir: CacheOpt = None,
    channel: ChannelOpt = "0",
    quiet: QuietOpt = False,
    no_track: NoTrackOpt = False,
    tracking_uri: TrackingUriOpt = None,
    tensorboard: TensorboardOpt = False,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = False,
    jobs: JobsOpt = 1,
    threads: ThreadsOpt = None,
) -> None:
    """Train one model per machine type on the normal training clips (saved in OUT/models/MACHINE).

    OUT is kept as `asdkit run` keeps a run directory: locked while training, config.json saying whether
    it is complete, a rerun refused unless --overwrite or --resume.

    Examples:

        asdkit train --data dev_data --out models_dir --machine fan

        asdkit train --data my_pump_recordings --out pump_model --layout folder --model ae --param epochs=50

        asdkit train --data dev_data --out models_dir --resume   (after Ctrl-C: same settings, plus --resume)
    """
    from asdkit import api

    failures: dict[str, str] = {}
    detectors = api.train(
        data,
        out,
        model=model,
        params=_training_params(param, quiet, model),
        features=_features(channel),
        machines=machine,
        layout=layout,
        seed=seed,
        debug=debug,
        cache_dir=cache_dir,
        progress=_progress(quiet),
        command_line=shlex.join(["asdkit", *sys.argv[1:]]),
        tracking=_tracking(no_track, tracking_uri, tensorboard),
        overwrite=overwrite,
        resume=resume,
        jobs=jobs,
        threads=threads,
        failures=failures,
    )
    if _other_rank():
        return
    from asdkit.rundir import model_dir

    for name, detector in detectors.items():
        typer.echo(f"{name}: threshold {detector.threshold_:.6g} -> {model_dir(out, name)}")
        if refused := getattr(detector, "threshold_refused_", None):
            typer.echo(f"warning: decisions refused: {refused}", err=True)
    _exit_partial(failures)


@app.command()
def score(
    model: Annotated[Path, typer.Argument(help="A model folder or a run directory.")],
    paths: Annotated[list[Path], typer.Argument(help="Wav files or folders of them.")],
    machine: Annotated[
        str | None, typer.Option("--machine", help="Which machine type's model to use.")
    ] = None,
    section: Annotated[
        str | None,
        typer.Option(
            "--section",
            help="Section of the clips, for section-conditioned models (default: from DCASE file names).",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write CSV here instead of stdout.")
    ] = None,
    cache_dir: CacheOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Score recordings with a trained model: prints (or writes) file,machine,score,decision,threshold.

    Examples:

        asdkit score runs/ae fan_recordings/ --machine fan

        asdkit score runs/ae/models/fan new_clip.wav --output scores.csv

        asdkit score runs/made/models/fan new_clip.wav --section 01
    """
    from asdkit import api
    from asdkit.utils.io import atomic_write_text

    scored, skipped = api.score(
        model, paths, machine=machine, section=section, cache_dir=cache_dir, threads=threads
    )
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", "machine", "score", "decision", "threshold"])
    for s in scored:
        writer.writerow([str(s.path), s.machine, repr(s.score), s.decision, repr(s.threshold)])
    if output is None:
        typer.echo(buf.getvalue(), nl=False)
    else:
        atomic_write_text(output, buf.getvalue())
        typer.echo(f"wrote {len(scored)} scores to {output}", err=True)
    for _path, reason in skipped:
        typer.echo(f"skipped: {reason}", err=True)
    if not scored:
        raise AsdkitError(f"none of the {len(skipped)} file(s) could be scored")


@app.command()
def evaluate(
    scores_dir: Annotated[
        Path, typer.Argument(help="Folder of anomaly_score_*.csv files (or a run directory).")
    ],
    ground_truth: GroundTruthOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write result.csv into this folder.")
    ] = None,
    scheme: SchemeOpt = None,
    allow_partial: AllowPartialOpt = False,
) -> None:
    """Compute the official metrics of submission files, by the rules of the data's year.

    The year comes from --scheme, else the ground truth's lists, else the score files' names (a run
    directory: its own layout). Clips the ground truth lists without a score are an error unless
    --allow-partial.

    Examples:

        asdkit evaluate runs/ae/scores

        asdkit evaluate my_submission/ --ground-truth dcase2023_task2_evaluator/ground_truth_data --out .

        asdkit evaluate my_submission/ --ground-truth dcase2021_task2_evaluator --scheme 2021
    """
    from asdkit import api
    from asdkit.rundir import RESULT_FILE, warn_if_incomplete

    warn_if_incomplete(scores_dir, "evaluating")
    evaluation = api.evaluate(
        scores_dir, ground_truth=ground_truth, out=out, scheme=scheme, allow_partial=allow_partial
    )
    _print_evaluation(evaluation)
    if out is not None:
        typer.echo(f"results: {Path(out) / RESULT_FILE}")


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Run directories or multi-seed directories.")],
    csv_out: Annotated[
        Path | None, typer.Option("--csv", help="Also write the table as CSV (means and stds).")
    ] = None,
    html_out: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML page (table, figure).")
    ] = None,
) -> None:
    """Compare runs on one data set: official score and its parts, mean ± std over seeds, best marked.

    Examples:

        asdkit compare runs/ae runs/knn runs/arcface

        asdkit compare runs/ae4 runs/arcface4 --csv comparison.csv

        asdkit compare runs/ae4 runs/arcface4 --html comparison.html
    """
    from rich.console import Console

    from asdkit.reports.compare import compare_runs, comparison_table, write_comparison_csv
    from asdkit.rundir import warn_if_incomplete

    for run_dir in runs:
        warn_if_incomplete(run_dir, "comparing")
    rows = compare_runs(runs)
    Console(width=None if sys.stdout.isatty() else 200).print(comparison_table(rows))
    if csv_out is not None:
        write_comparison_csv(rows, csv_out)
        typer.echo(f"comparison: {csv_out}")
    if html_out is not None:
        from asdkit.reports.html_compare import write_comparison_html

        typer.echo(f"comparison page: {write_comparison_html(rows, html_out)}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the data and the run.")] = Path(
        "asdkit-demo"
    ),
    seed: SeedOpt = 0,
    debug: DebugOpt = False,
    cache_dir: CacheOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Generate synthetic machine sounds, train the default detector, score, evaluate and print the results.

    Examples:

        asdkit demo

        asdkit demo --out /tmp/asd --debug
    """
    from asdkit.demo import demo as run_demo

    result = run_demo(out, seed=seed, debug=debug, cache_dir=cache_dir, progress=_progress(quiet))
    _finish_run(result)


@app.command()
def scan(
    root: Annotated[Path, typer.Argument(help="Data root to scan.")],
    layout: LayoutOpt = None,
    ground_truth: GroundTruthOpt = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the manifest as CSV.")] = None,
) -> None:
    """Show which layout a data tree has and what it holds (optionally write its manifest).

    Examples:

        asdkit scan dev_data

        asdkit scan eval_data --layout eval --ground-truth ground_truth/ --output manifest.csv
    """
    from asdkit import api

    manifest = api.scan_data(root, layout=layout, ground_truth=ground_truth)
    typer.echo(manifest.summary())
    if output is not None:
        manifest.to_csv(output)
        typer.echo(f"manifest: {output}")


@app.command()
def detectors() -> None:
    """List the registered detectors and their parameters.

    Example:

        asdkit detectors
    """
    from asdkit.detectors.deep import DeepDetector
    from asdkit.detectors.params import RANGES
    from asdkit.detectors.registry import available_detectors, get_detector_class

    trainer_words = DeepDetector.choices  # every network detector's: listed once, at the end
    for name in available_detectors():
        cls = get_detector_class(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        typer.echo(f"{name}: {doc}")
        typer.echo(f"    {cls().get_params()}")
        parameters = cls.parameters()
        words = [
            f"{k}: {'|'.join(v)}"
            for k, v in cls.parameter_choices().items()
            if k in parameters and v is not trainer_words.get(k)
        ]
        if words:
            typer.echo(f"    one of: {'; '.join(words)}")
        ranges = [f"{k} {RANGES[k].describe()}" for k in parameters if k in RANGES]
        if ranges:
            typer.echo(f"    ranges: {'; '.join(ranges)}")
    typer.echo("trainer settings of every network detector (with epochs), from the installed Lightning:")
    for key, words in trainer_words.items():
        typer.echo(f"    {key}: {'|'.join(words)}")


app.add_typer(
    plot_app, name="plot", help="Figures: training curves, score histograms, ROC curves, reconstruction view."
)
app.command()(report)
app.command()(dashboard)
app.command()(serve_cli.serve)
app.command()(serve_cli.watch)
app.command()(serve_cli.export)
app.command()(download)
app.command()(prepare)
app.command()(recipes)
app.command()(submit)


def _unwrapped(doc: str) -> str:
    """A docstring's prose paragraphs joined into single lines, which the help wraps to the terminal (Typer's
    rich help keeps each source line break); indented lines (the examples) are kept as they are."""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(
        p if any(line.startswith(" ") for line in p.splitlines()) else " ".join(p.split("\n"))
        for p in paragraphs
    )


for _app in (app, plot_app):
    for _info in _app.registered_commands:
        if _info.callback is not None and _info.callback.__doc__:
            _info.callback.__doc__ = _unwrapped(_info.callback.__doc__)


def _click_exceptions() -> tuple[type[Exception], ...]:
    """Click's exception base and that of the click copy inside typer (0.2x), which raises usage errors."""
    import click

    classes: list[type[Exception]] = [click.ClickException]
    try:
        from typer._click.exceptions import ClickException as TyperClickException
    except ImportError:  # a typer that uses click itself
        pass
    else:
        classes.append(TyperClickException)
    return tuple(classes)


def main() -> None:
    """Entry point: runs the app and turns errors into one line and an exit code."""
    # a DDP launch's other ranks repeat rank 0's work: only their errors are worth printing
    level = logging.ERROR if _other_rank() else logging.WARNING
    logging.basicConfig(level=level, format="warning: %(message)s", stream=sys.stderr)
    logging.captureWarnings(True)
    try:
        code = app(standalone_mode=False)
    except AsdkitError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        code = 130
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
    except Exception as exc:
        if isinstance(exc, _click_exceptions()):
            exc.show()  # a usage error: the usage line, a hint and the error, exit 2, as click does
            sys.exit(exc.exit_code)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            typer.echo(f"error: no space left on device writing {exc.filename or 'the output'}", err=True)
            sys.exit(2)
        if os.environ.get("ASDKIT_TRACEBACK"):
            raise
        typer.echo(f"error: {type(exc).__name__}: {exc} (set ASDKIT_TRACEBACK=1 for the traceback)", err=True)
        sys.exit(1)
    if code == 130:  # Typer turns Ctrl-C into exit code 130, which it returns in non-standalone mode
        typer.echo("interrupted: no file was left half-written", err=True)
    if code:
        sys.exit(code)
