"""``asdkit download``, ``prepare``, ``recipes`` and ``submit``: the challenge workflow around ``run``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def download(
    dataset: Annotated[str, typer.Argument(help="2020 to 2026, or mimii.")],
    to: Annotated[Path, typer.Option("--to", help="Download root (the trees land in DIR/dcaseYEAR/...).")],
    split: Annotated[
        str | None,
        typer.Option("--split", help="dev, additional (eval training) or eval (eval test); default all."),
    ] = None,
    machine: Annotated[
        list[str] | None, typer.Option("--machine", help="Machine type(s) (repeat); default all.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be fetched and how big; fetch nothing.")
    ] = False,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="Server instead of https://zenodo.org (or $ASDKIT_DOWNLOAD_URL)."),
    ] = None,
    retries: Annotated[int, typer.Option("--retries", help="Resumes after a cut connection.")] = 3,
    keep_archives: Annotated[
        bool, typer.Option("--keep-archives", help="Keep the zips in DIR/.asdkit-download.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Download a DCASE Task 2 data set (or MIMII) from Zenodo and unpack it where `asdkit scan` reads it.

    Interrupted downloads resume (run the command again); each file is checked against the size and MD5
    its Zenodo record publishes; a tree is only renamed into place once its archive unpacked completely.
    Development sets land in DIR/dcaseYEAR/dev_data, the additional training and evaluation sets together
    in DIR/dcaseYEAR/eval_data, MIMII in DIR/mimii/<snr>_dB_<machine>.

    Examples:

        asdkit download 2023 --split dev --to data --dry-run

        asdkit download 2023 --split dev --machine fan --machine valve --to data

        asdkit download 2024 --split additional --to data && asdkit download 2024 --split eval --to data

        asdkit download 2026 --to data --dry-run
    """
    from asdkit.data import download as dl

    selected = dl.select(dataset, split, machine)
    base = dl.base_url(base_url)
    if dry_run:
        total = 0
        unknown = 0
        for a, remote in dl.describe(selected, base):
            state = "complete" if dl.is_complete(to, a) else "to fetch"
            typer.echo(
                f"{a.split:10s} {a.machine:19s} {dl.size_text(remote.size):>12s}  {state:8s}  {a.url(base)}"
            )
            if remote.size is None:
                unknown += 1
            elif not dl.is_complete(to, a):
                total += remote.size
        more = f" (+{unknown} of unknown size)" if unknown else ""
        typer.echo(f"{len(selected)} archive(s); to fetch: {dl.size_text(total)}{more} into {to}")
        return
    console = None if quiet else _say()
    fetched = dl.fetch_all(
        selected, to, base=base, retries=retries, keep_archives=keep_archives, progress=not quiet, say=console
    )
    new = [f for f in fetched if not f.skipped]
    typer.echo(
        f"{len(new)} archive(s) fetched, {len(fetched) - len(new)} already complete; "
        f"data: {', '.join(sorted({str(f.path) for f in fetched}))}"
    )


def prepare(
    year: Annotated[str, typer.Argument(help="The challenge year whose evaluation set this truth labels.")],
    ground_truth: Annotated[
        Path,
        typer.Option(
            "--ground-truth", help="The evaluator's ground-truth files (a folder or file the user has)."
        ),
    ],
    to: Annotated[Path, typer.Option("--to", help="Download root used with `asdkit download`.")],
) -> None:
    """Copy an evaluator's ground-truth files beside the downloaded evaluation set, checked as readable.

    They land in DIR/dcaseYEAR/ground_truth, the folder to give to `--ground-truth`.

    Examples:

        asdkit prepare 2023 --ground-truth dcase2023_task2_evaluator/ground_truth_data --to data

        asdkit run --data data/dcase2023/eval_data --ground-truth data/dcase2023/ground_truth --out runs/eval
    """
    from asdkit.data.prepare import prepare_ground_truth

    dest, n = prepare_ground_truth(year, ground_truth, to)
    typer.echo(f"{n} ground-truth file(s) in {dest}: pass --ground-truth {dest}")


def _say() -> object:
    from rich.console import Console

    console = Console(stderr=True)
    return lambda message: console.print(f"[bold cyan]asdkit[/] {message}", highlight=False)


# -- run --config ---------------------------------------------------------------------------------------
CONFIG_META = "asdkit.run_config"


def config_callback(ctx: typer.Context, value: Path | None) -> Path | None:
    """Eager ``--config``: the file's settings become the defaults of the other options (flags win)."""
    if value is None:
        return None
    from asdkit.runconfig import cli_defaults, load_run_config

    config = load_run_config(value)
    ctx.default_map = {**(ctx.default_map or {}), **cli_defaults(config)}
    ctx.meta[CONFIG_META] = (str(value), config)
    return value


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Recipe YAML, a run's config.json or a recipe name (`asdkit recipes`); flags override it.",
        is_eager=True,
        callback=config_callback,
    ),
]


def run_params(ctx: typer.Context, cli_params: dict[str, Any], model: str, debug: bool) -> dict[str, Any]:
    """The configuration's detector parameters, each overridden by the same ``--param``.

    With ``--debug``, the detector's debug settings (few epochs, small network) win over the
    configuration's, so a recipe's debug run takes seconds; ``--param`` still wins over both.
    """
    if CONFIG_META not in ctx.meta:
        return cli_params
    from asdkit.detectors.registry import get_detector_class
    from asdkit.runconfig import check_params

    source, config = ctx.meta[CONFIG_META]
    check_params(model, {k: {**config.params, **cli_params}[k] for k in config.params}, source)
    shrunk = set(get_detector_class(model).debug_params()) if debug else set()
    return {**{k: v for k, v in config.params.items() if k not in shrunk}, **cli_params}


def run_features(ctx: typer.Context, features: Any) -> Any:
    """The configuration's feature settings, with the channel the command line gave (if it gave one)."""
    if CONFIG_META not in ctx.meta:
        return features
    from click.core import ParameterSource

    from asdkit.features.noise_aware import channel_features

    configured = ctx.meta[CONFIG_META][1].feature_config()
    if configured is None:
        return features
    if ctx.get_parameter_source("channel") in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP):
        return configured
    return channel_features(str(ctx.params["channel"]), configured)


def recipes(
    name: Annotated[str | None, typer.Argument(help="Print this recipe (to copy and edit).")] = None,
) -> None:
    """List the recipes shipped with asdkit, or print one.

    Examples:

        asdkit recipes

        asdkit recipes dcase2023_baseline_ae > my_recipe.yaml

        asdkit run --config dcase2023_baseline_ae --data data/dcase2023/dev_data --out runs/ae
    """
    from asdkit.runconfig import recipe_names, recipe_summary, recipe_text

    if name is not None:
        typer.echo(recipe_text(name), nl=False)
        return
    for recipe in recipe_names():
        typer.echo(f"{recipe}: {recipe_summary(recipe_text(recipe))}")


def submit(
    runs: Annotated[
        list[Path], typer.Argument(help="Run directories on the evaluation set (1 to 4 systems).")
    ],
    year: Annotated[int, typer.Option("--year", help="Challenge year: 2020 to 2026.")],
    team: Annotated[str, typer.Option("--team", help="Submission label prefix, Lastname_INST.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write OUT/task2/ into.")],
    dev_run: Annotated[
        list[Path] | None,
        typer.Option(
            "--dev-run", help="Each system's development-set run, for the metadata (repeat, in order)."
        ),
    ] = None,
    name: Annotated[
        list[str] | None, typer.Option("--name", help="Each system's display name (repeat, in order).")
    ] = None,
    eval_list: Annotated[
        Path | None,
        typer.Option(
            "--eval-list", help="The organisers' eval_data_list_YEAR.csv instead of the built-in list."
        ),
    ] = None,
) -> None:
    """Build the challenge's submission package: per-system score/decision files and metadata YAML.

    Each run must score exactly the clips of the year's evaluation list (built in for 2020-2025); a
    missing or extra file or clip is refused, naming them. 2026: the organisers' clip list was not
    available, so without --eval-list the machine types, sections and name pattern are checked (a warning
    says so). Fill in the FILL IN fields of each
    .meta.yaml (authors, report) before uploading.

    Examples:

        asdkit submit runs/eval_ae --year 2023 --team Doe_UNI --out submission --dev-run runs/dev_ae

        asdkit submit runs/eval_ae runs/eval_knn --year 2024 --team Doe_UNI --out submission
    """
    from asdkit.reports.challenge import build_submission, unlisted_warning

    packages = build_submission(runs, year, team, out, eval_list=eval_list, dev_runs=dev_run, names=name)
    if (warning := unlisted_warning(year, eval_list)) is not None:
        typer.echo(f"warning: {warning}", err=True)
    for p in packages:
        typer.echo(f"{p.label}: {p.files} files, {p.clips} clips from {p.run} -> {p.folder}")
    typer.echo(f"fill in the FILL IN fields of each {packages[0].label}.meta.yaml before uploading")
