"""The compact results table printed at the end of a run (rich renders it; plain text when piped)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from asdkit.metrics import Evaluation
from asdkit.metrics.result_csv import summary_lines

_SHOWN = ("AUC", "pAUC", "AUC (source)", "AUC (target)")


def evaluation_table(evaluation: Evaluation) -> Table:
    columns = [c for c in evaluation.columns if c in _SHOWN]
    table = Table(title=f"Results ({evaluation.scheme})", title_justify="left")
    table.add_column("machine")
    table.add_column("section" if evaluation.scheme != "dcase2020" else "id")
    if evaluation.scheme == "dcase2021":
        table.add_column("domain")
    for c in columns:
        table.add_column(c, justify="right")
    for machine in evaluation:
        for row in machine.rows:
            cells = [machine.machine, row.section] + (
                [row.domain or ""] if evaluation.scheme == "dcase2021" else []
            )
            table.add_row(*cells, *(f"{row[c]:.4f}" for c in columns))
        mean_label = "average" if evaluation.scheme == "dcase2020" else "harmonic mean"
        means = machine.amean if evaluation.scheme == "dcase2020" else machine.hmean
        pad = [""] if evaluation.scheme == "dcase2021" else []
        table.add_row(
            f"[bold]{machine.machine}[/]",
            mean_label,
            *pad,
            *(f"[bold]{means[c]:.4f}[/]" for c in columns),
            end_section=True,
        )
    if len(evaluation.machines) > 1:  # one line that summarises every machine type
        overall = evaluation.overall_amean if evaluation.scheme == "dcase2020" else evaluation.overall_hmean
        pad = [""] if evaluation.scheme == "dcase2021" else []
        label = "average" if evaluation.scheme == "dcase2020" else "harmonic mean"
        table.add_row("[bold]all[/]", label, *pad, *(f"[bold]{overall[c]:.4f}[/]" for c in columns))
    return table


def print_evaluation(evaluation: Evaluation, console: Any | None = None) -> None:
    console = console or Console()
    console.print(evaluation_table(evaluation))
    line = f"official score: [bold]{evaluation.official_score:.4f}[/]"
    if evaluation.jackknife is not None:
        jk = evaluation.jackknife
        clamped = ", clamped to [0, 1]" if jk.clamped else ""
        line += f"  (95% CI {jk.low:.4f} to {jk.high:.4f}, jackknife over {jk.n_units} sections{clamped})"
    console.print(line, highlight=False)
    console.print(f"[dim]{evaluation.official_score_definition}[/]")
    for text in summary_lines(evaluation):
        console.print(text, highlight=False, soft_wrap=True)
