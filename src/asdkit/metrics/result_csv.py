"""result.csv in each year's official layout, and a plain-text table for the terminal.

The layout is copied from the files the official test scripts wrote, so that a result.csv from
asdkit can be compared line by line with a published one: ``\\n`` line ends, Python's shortest
round-trip float text, one block per machine type followed by a blank line, and (2021+) two final
rows over all machine types whose labels contain commas and are therefore quoted.

What asdkit knows beyond the official rows comes after them, in a last block that no official file
has (so the official rows stay byte-identical): ``evaluation rules,<scheme>,<data's year>`` when the
rules were chosen by ``asdkit.api`` (the evidence for the year is in config.json and on the console),
one ``left out,<test set>,<reason>`` row per set that could not be evaluated, and
``coverage,<scored>,<listed>,<list>`` after a partial evaluation (``--allow-partial``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path

from asdkit.metrics.evaluation import Evaluation
from asdkit.utils.io import atomic_write_text

OVERALL_AMEAN = "arithmetic mean over all machine types, sections, and domains"
OVERALL_HMEAN = "harmonic mean over all machine types, sections, and domains"
RULES_LABEL = "evaluation rules"
LEFT_OUT_LABEL = "left out"
COVERAGE_LABEL = "coverage"


def _numbers(values: Mapping[str, float], columns: tuple[str, ...]) -> list[float]:
    return [float(values[c]) for c in columns]


def result_csv_rows(evaluation: Evaluation) -> list[list[str | float]]:
    """The rows of result.csv (empty lists are the blank lines)."""
    ev = evaluation
    cols = ev.columns
    out: list[list[str | float]] = []
    if ev.scheme == "dcase2020":
        for m in ev.machines:
            out.append([m.machine])
            out.append(["id", *cols])
            out.extend([r.section, *_numbers(r.values, cols)] for r in m.rows)
            out.append(["Average", *_numbers(m.amean, cols)])
            out.append([])
        return out
    lead: list[str | float] = ["section", "domain"] if ev.scheme == "dcase2021" else ["section"]
    pad: list[str | float] = [""] if ev.scheme == "dcase2021" else []
    for m in ev.machines:
        out.append([m.machine])
        out.append([*lead, *cols])
        for r in m.rows:
            key: list[str | float] = [r.section, r.domain or ""] if ev.scheme == "dcase2021" else [r.section]
            out.append([*key, *_numbers(r.values, cols)])
        out.append(["arithmetic mean", *pad, *_numbers(m.amean, cols)])
        out.append(["harmonic mean", *pad, *_numbers(m.hmean, cols)])
        out.append([])
    out.append(["", *pad, *cols])
    out.append([OVERALL_AMEAN, *pad, *_numbers(ev.overall_amean, cols)])
    out.append([OVERALL_HMEAN, *pad, *_numbers(ev.overall_hmean, cols)])
    out.append([])
    return out


def notes_rows(evaluation: Evaluation) -> list[list[str | float]]:
    """The rows after the official ones: rules used, sets left out, coverage (none: no rows at all)."""
    ev = evaluation
    out: list[list[str | float]] = []
    if ev.rules is not None:
        out.append([RULES_LABEL, ev.rules.scheme, ev.rules.data])
    out.extend([LEFT_OUT_LABEL, what, reason] for what, reason in ev.left_out)
    if ev.coverage is not None and not ev.coverage.complete:
        out.append([COVERAGE_LABEL, str(ev.coverage.scored), str(ev.coverage.listed), ev.coverage.source])
    return [*out, []] if out else []


def result_csv_text(evaluation: Evaluation) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in result_csv_rows(evaluation) + notes_rows(evaluation):
        writer.writerow([repr(float(v)) if isinstance(v, float) else v for v in row])  # np.float64 too
    return buf.getvalue()


def write_result_csv(evaluation: Evaluation, path: Path | str) -> Path:
    """Write result.csv in the official layout of the evaluation's scheme (atomically)."""
    path = Path(path)
    atomic_write_text(path, result_csv_text(evaluation))
    return path


def summary_lines(evaluation: Evaluation) -> list[str]:
    """Rules, sets left out and coverage as lines for the terminal (what result.csv's last block says)."""
    ev = evaluation
    lines = [f"rules: {ev.rules}"] if ev.rules is not None else []
    lines += [f"left out: {what} ({reason})" for what, reason in ev.left_out]
    if ev.coverage is not None and not ev.coverage.complete:
        lines.append(f"coverage: {ev.coverage} (--allow-partial: not the official score of the whole set)")
    return lines


def format_table(evaluation: Evaluation, digits: int = 4) -> str:
    """A fixed-width text table of every row, the means and the official score, for the terminal."""
    ev = evaluation
    cols = ev.columns
    key_head = ["machine", "section", "domain"] if ev.scheme == "dcase2021" else ["machine", "section"]
    if ev.scheme == "dcase2020":
        key_head = ["machine", "id"]
    lines: list[list[str]] = [key_head + list(cols)]
    fmt = f"{{:.{digits}f}}"

    def nums(values: Mapping[str, float]) -> list[str]:
        return [fmt.format(values[c]) for c in cols]

    blank = [""] * (len(key_head) - 1)
    separators: list[int] = []
    for m in ev.machines:
        for r in m.rows:
            key = [m.machine, r.section] + ([r.domain or ""] if ev.scheme == "dcase2021" else [])
            lines.append(key + nums(r.values))
        lines.append([m.machine + " mean", *blank, *nums(m.amean)])
        if ev.scheme != "dcase2020":
            lines.append([m.machine + " hmean", *blank, *nums(m.hmean)])
        separators.append(len(lines))
    lines.append(["all mean", *blank, *nums(ev.overall_amean)])
    if ev.scheme != "dcase2020":
        lines.append(["all hmean", *blank, *nums(ev.overall_hmean)])

    widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]))]
    text = []
    for i, row in enumerate(lines):
        cells = [
            cell.ljust(w) if j < len(key_head) else cell.rjust(w)
            for j, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        text.append("  ".join(cells).rstrip())
        if i == 0 or i + 1 in separators:
            text.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
    score = f"official score ({ev.scheme}): {fmt.format(ev.official_score)}  [{ev.official_score_definition}]"
    text.append(score)
    if ev.jackknife is not None:
        jk = ev.jackknife
        text.append(
            f"{round(100 * jk.confidence)}% jackknife interval: {fmt.format(jk.low)} - {fmt.format(jk.high)}"
            f"  (SE {fmt.format(jk.se)}, {jk.n_units} machine/section units"
            f"{', clamped to [0, 1]' if jk.clamped else ''})"
        )
    text.extend(summary_lines(ev))
    return "\n".join(text) + "\n"
