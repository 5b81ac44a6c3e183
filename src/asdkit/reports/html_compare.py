"""Self-contained HTML pages: a multi-seed folder (``asdkit report``), a comparison (``asdkit compare``).

Like the run report (:mod:`asdkit.reports.html`), each page is one file: inline CSS, figures as base64
PNG, so it renders offline and can be mailed. Cells show 4 decimals; their ``data-value`` carries the
exact number. The figures show every seed's value beside the mean, so a reader sees the spread and not
only the summary.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from asdkit.errors import DataError
from asdkit.reports.compare import RunRow, best_rows, columns, overall_metrics
from asdkit.reports.html import _STYLE, _e, _key_value_table
from asdkit.reports.plots import png_bytes
from asdkit.rundir import REPORT_FILE, SEEDS_JSON, seed_dir
from asdkit.seeds import OFFICIAL, MetricSummary, summarise
from asdkit.utils.io import atomic_write_text

_EXTRA_STYLE = "td.best { font-weight: bold; background: #eef6ee; }\n"


def is_seeds_folder(path: Path | str) -> bool:
    return (Path(path) / SEEDS_JSON).is_file()


def write_seeds_report(folder: Path | str, out: Path | str | None = None) -> Path:
    """Write the multi-seed folder's page (default ``FOLDER/report.html``); returns its path."""
    folder = Path(folder)
    path = Path(out) if out is not None else folder / REPORT_FILE
    atomic_write_text(path, render_seeds_report(folder))
    return path


def render_seeds_report(folder: Path) -> str:
    record = _read_json(folder / SEEDS_JSON)
    seeds = [int(s) for s in record.get("seeds", [])]
    if not seeds:
        raise DataError(f"{folder}: {SEEDS_JSON} lists no seeds")
    per_seed: list[dict[str, float]] = []
    for s in seeds:
        run = seed_dir(folder, s)
        try:
            per_seed.append(_seed_metrics(run))
        except DataError as exc:
            raise DataError(f"{folder}: seed {s}: {exc}") from None
    summary = summarise(seeds, per_seed)
    title = f"asdkit report: {folder.resolve().name} ({len(seeds)} seeds)"
    links = "".join(
        f'<li><a href="{_e(seed_dir(folder, s).name)}/{REPORT_FILE}">seed {s}</a> ({_e(_official(m))})</li>'
        for s, m in zip(seeds, per_seed, strict=True)
    )
    parts = [
        *_head(title),
        f'<p class="muted">{_e(record.get("model", "?"))} on {_e(record.get("data", "?"))}, '
        f"status {_e(record.get('status', '?'))}</p>",
        _official_line(summary),
        "<h2>Over the seeds</h2>",
        _seeds_table(summary, seeds),
        "<h2>Figures</h2>",
        _figure(_seeds_figure(summary, seeds), "per-seed values"),
        "<h2>Seeds</h2>",
        f"<ul>{links}</ul>",
        '<p class="muted">Each seed\'s own page: asdkit report FOLDER/seed_N.</p>',
        "<h2>Configuration</h2>",
        _key_value_table(
            [("model", record.get("model")), ("data", record.get("data")), ("seeds", seeds)]
            + [(f"params.{k}", v) for k, v in (record.get("params") or {}).items()],
            "configuration",
        ),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_comparison_html(rows: Sequence[RunRow], path: Path | str) -> Path:
    path = Path(path)
    atomic_write_text(path, render_comparison(rows))
    return path


def render_comparison(rows: Sequence[RunRow]) -> str:
    if not rows:
        raise DataError("no runs to compare")
    cols = columns(rows)
    best = {c: best_rows(rows, c) for c in cols}
    head = "".join(f"<th>{_e(c)}</th>" for c in ["run", "detector", "seeds", *cols])
    body = []
    for i, row in enumerate(rows):
        cells = [
            f"<td>{_e(row.name)}</td>",
            f"<td>{_e(row.model)}</td>",
            f'<td class="num">{row.n_seeds}</td>',
        ]
        for c in cols:
            m = row.metrics[c]
            cls = "num best" if i in best[c] else "num"
            text = f"{m.mean:.4f} ± {m.std:.4f}" if len(m.values) > 1 else f"{m.mean:.4f}"
            cells.append(
                f'<td class="{cls}" data-value="{m.mean!r}" data-std="{m.std!r}" '
                f'title="values: {_e(", ".join(map(repr, m.values)))}">{text}</td>'
            )
        body.append("<tr>" + "".join(cells) + "</tr>")
    parts = [
        *_head(f"asdkit comparison of {len(rows)} runs"),
        '<p class="muted">Mean ± sample standard deviation over seeds; the best mean per column is in bold '
        "(every column: higher is better).</p>",
        f'<table id="comparison"><tr>{head}</tr>{"".join(body)}</table>',
        "<h2>Figures</h2>",
        _figure(_comparison_figure(rows, cols), "official score and its parts, every seed"),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


# -- pieces ---------------------------------------------------------------------------------------------
def _head(title: str) -> list[str]:
    return [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title>",
        f"<style>{_STYLE}{_EXTRA_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
    ]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None


def _seed_metrics(run: Path) -> dict[str, float]:
    """A seed's official score, its overall parts, and per-machine values when evaluable from the run."""
    metrics = overall_metrics(run)
    try:
        from asdkit.run_result import load_run
        from asdkit.seeds import evaluation_metrics

        evaluation = load_run(run).evaluation
        if evaluation is not None:
            metrics.update({k: v for k, v in evaluation_metrics(evaluation).items() if k not in metrics})
    except DataError:
        pass  # the overall numbers still stand
    return metrics


def _official(metrics: dict[str, float]) -> str:
    return f"official score {metrics[OFFICIAL]:.4f}" if OFFICIAL in metrics else "not evaluated"


def _official_line(summary: Sequence[MetricSummary]) -> str:
    official = next((m for m in summary if m.name == OFFICIAL), None)
    if official is None:
        return '<p class="score">No official score in every seed.</p>'
    return (
        f'<p class="score" id="official-score" data-value="{official.mean!r}">Official score: '
        f"<b>{official.mean:.4f}</b> ± {official.std:.4f} "
        f"(mean ± sample std over {len(official.values)} seeds; "
        f"min {min(official.values):.4f}, max {max(official.values):.4f})</p>"
    )


def _seeds_table(summary: Sequence[MetricSummary], seeds: Sequence[int]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in ["metric", "mean", "std", *(f"seed {s}" for s in seeds)])
    rows = []
    for m in summary:
        cells = [f"<td>{_e(m.name)}</td>"] + [
            f'<td class="num" data-value="{v!r}" title="{v!r}">{v:.4f}</td>'
            for v in (m.mean, m.std, *m.values)
        ]
        cls = ' class="mean"' if m.name == OFFICIAL else ""
        rows.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    return f'<table id="seeds"><tr>{head}</tr>{"".join(rows)}</table>'


def _figure(fig: Any, caption: str) -> str:
    encoded = base64.b64encode(png_bytes(fig)).decode("ascii")
    return (
        f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{encoded}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _overall(names: Sequence[str]) -> list[str]:
    """The official score and the overall parts (not the per-machine rows), at most 6, for the figures."""
    return [n for n in names if ":" not in n][:6]


def _seeds_figure(summary: Sequence[MetricSummary], seeds: Sequence[int]) -> Any:
    from matplotlib.figure import Figure

    shown = [m for m in summary if m.name in _overall([s.name for s in summary])]
    fig = Figure(figsize=(7, 0.5 + 0.55 * max(len(shown), 1)), layout="constrained")
    ax = fig.add_subplot()
    for y, m in enumerate(shown):
        ax.scatter(
            m.values, [y] * len(m.values), color="#2c6db4", alpha=0.7, label="seeds" if y == 0 else None
        )
        ax.errorbar(
            m.mean, y, xerr=m.std, fmt="D", color="#c0392b", capsize=4, label="mean ± std" if y == 0 else None
        )
    ax.set_yticks(range(len(shown)), [m.name for m in shown])
    ax.invert_yaxis()
    ax.set_xlabel(f"value ({len(seeds)} seeds)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return fig


def _comparison_figure(rows: Sequence[RunRow], cols: Sequence[str]) -> Any:
    from matplotlib.figure import Figure

    shown = _overall(cols)
    fig = Figure(figsize=(1.6 + 1.3 * len(shown) * max(len(rows), 2) / 2, 4.2), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(rows)
    x = np.arange(len(shown))
    for i, row in enumerate(rows):
        pos = x - 0.4 + width * (i + 0.5)
        means = [row.metrics[c].mean for c in shown]
        stds = [row.metrics[c].std for c in shown]
        ax.bar(
            pos, means, width, yerr=stds, capsize=3, label=f"{Path(row.name).name} ({row.model})", alpha=0.8
        )
        for p, c in zip(pos, shown, strict=True):
            values = row.metrics[c].values
            ax.scatter([p] * len(values), values, color="black", s=8, zorder=3)
    ax.set_xticks(x, shown, rotation=20, ha="right")
    low = min(min(r.metrics[c].values) for r in rows for c in shown)
    ax.set_ylim(max(0.0, low - 0.05), 1.0)
    ax.set_ylabel("mean ± std (dots: seeds)")
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return fig


__all__ = [
    "is_seeds_folder",
    "render_comparison",
    "render_seeds_report",
    "write_comparison_html",
    "write_seeds_report",
]
