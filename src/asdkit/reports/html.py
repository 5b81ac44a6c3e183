"""``report.html``: one self-contained page per run, to read or send on without the run directory.

Everything is inline (CSS, figures as base64 PNG), so the page renders offline and from an e-mail
attachment. It holds the official score with its jackknife 95% interval, the result.csv table (cells show
4 decimals; each cell's ``data-value`` and tooltip carry the exact number of result.csv), the figures of
:mod:`asdkit.reports.plots` plus any reconstruction views saved in plots/, the resolved configuration,
timings and environment from config.json.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from asdkit.metrics import result_csv_rows
from asdkit.reports.plots import png_bytes, run_figures
from asdkit.run_result import RunResult, load_run
from asdkit.rundir import PLOTS_DIR, REPORT_FILE
from asdkit.utils.io import atomic_write_text

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
.score { font-size: 1.3em; background: #f3f6fa; padding: 0.6em 1em; border-left: 4px solid #2c6db4; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; }
th { background: #f0f0f0; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.mean td { font-weight: bold; background: #fafafa; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; max-width: 47%; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.muted { color: #777; }
"""


def write_report(run: RunResult | Path | str, out: Path | str | None = None) -> Path:
    """Write the run's HTML report (default ``RUN/report.html``, atomically); returns its path.

    ``run`` is a run in memory (``api.run``'s result) or a run folder to read back (``asdkit report``).
    """
    record = run if isinstance(run, RunResult) else load_run(run)
    path = Path(out) if out is not None else record.run_dir / REPORT_FILE
    atomic_write_text(path, render_report(record))
    return path


def render_report(record: RunResult) -> str:
    title = f"asdkit report: {record.name}"
    config = record.config
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="muted">{_e(config.get("model", "?"))} on {_e(config.get("data", "?"))} '
        f"({_e(config.get('layout', '?'))} layout), status {_e(config.get('status', '?'))}</p>",
        _score_section(record),
        _results_section(record),
        _selection_section(config),
        _figures_section(record),
        "<h2>Configuration</h2>",
        _key_value_table(_configuration(config), "configuration"),
        "<h2>Timings</h2>",
        _key_value_table(
            ((k, f"{v:.2f} s" if isinstance(v, (int, float)) else v) for k, v in _timings(config)), "timings"
        ),
        "<h2>Environment</h2>",
        _key_value_table((config.get("environment") or {}).items(), "environment"),
        "<h2>config.json</h2>",
        f"<pre>{_e(json.dumps(config, indent=2, default=str))}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _score_section(record: RunResult) -> str:
    ev = record.evaluation
    if ev is None:
        return '<p class="score" id="official-score">No evaluation: the test clips have no labels.</p>'
    text = f"Official score: <b>{ev.official_score:.4f}</b>"
    if ev.jackknife is not None:
        jk = ev.jackknife
        text += f" &nbsp;(95% interval {jk.low:.4f} to {jk.high:.4f}, jackknife over {jk.n_units} sections)"
    return (
        f'<p class="score" id="official-score" data-value="{ev.official_score!r}">{text}</p>'
        f'<p class="muted">{_e(ev.official_score_definition)}</p>'
    )


def _results_section(record: RunResult) -> str:
    """result.csv as a table: blocks per machine type, means in bold, exact values in data-value."""
    ev = record.evaluation
    if ev is None:
        return ""
    rows = ["<h2>Results</h2>", f'<table id="results" data-scheme="{ev.scheme}">']
    header_next = False
    for row in result_csv_rows(ev):
        if not row:
            header_next = False
            continue
        if len(row) == 1:  # a machine type's name opens its block; its column header follows
            rows.append(f'<tr class="machine"><th colspan="99">{_e(str(row[0]))}</th></tr>')
            header_next = True
            continue
        if header_next or all(isinstance(v, str) for v in row):
            rows.append("<tr>" + "".join(f"<th>{_e(str(v))}</th>" for v in row) + "</tr>")
            header_next = False
            continue
        label = str(row[0])
        cls = ' class="mean"' if "mean" in label or label == "Average" else ""
        cells = "".join(
            f'<td class="num" data-value="{v!r}" title="{v!r}">{v:.4f}</td>'
            if isinstance(v, float)
            else f"<td>{_e(str(v))}</td>"
            for v in row
        )
        rows.append(f"<tr{cls}>{cells}</tr>")
    rows.append("</table>")
    return "\n".join(rows)


def _selection_section(config: dict[str, Any]) -> str:
    """What the default chose per machine type and the label-free evidence it chose on (config.json)."""
    selection = config.get("selection") or {}
    if not selection:
        return ""
    rows = [
        "<h2>Detector choice (label-free evidence)</h2>",
        '<table id="selection"><tr><th>machine</th><th>candidate</th><th>pseudo-anomaly AUC</th>'
        "<th>std over folds</th><th>chosen</th></tr>",
    ]
    for machine, record in selection.items():
        for c in record.get("candidates", []):
            chosen = "yes" if c["name"] in record.get("chosen", []) else ""
            auc = "-" if c.get("auc") is None else f"{c['auc']:.4f}"
            std = "-" if c.get("fold_std") is None else f"{c['fold_std']:.4f}"
            rows.append(
                f'<tr><td>{_e(machine)}</td><td>{_e(c["name"])}</td><td class="num">{auc}</td>'
                f'<td class="num">{std}</td><td>{chosen}</td></tr>'
            )
    rows.append("</table>")
    rule = next(iter(selection.values())).get("rule", "")
    rows.append(f'<p class="muted">Chosen by {_e(rule)}, on training clips only.</p>')
    return "\n".join(rows)


def _figures_section(record: RunResult) -> str:
    figures = [(stem, png_bytes(fig)) for stem, fig in run_figures(record).items()]
    for extra in sorted((record.run_dir / PLOTS_DIR).glob("reconstruction_*.png")):
        figures.append((extra.stem, extra.read_bytes()))
    if not figures:
        return ""
    out = ["<h2>Figures</h2>"]
    for stem, data in figures:
        encoded = base64.b64encode(data).decode("ascii")
        out.append(
            f'<figure><img alt="{_e(stem)}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{_e(stem)}</figcaption></figure>"
        )
    return "\n".join(out)


def _configuration(config: dict[str, Any]) -> list[tuple[str, Any]]:
    keys = ("model", "data", "layout", "machines", "seed", "debug", "ground_truth")
    items: list[tuple[str, Any]] = [(k, config.get(k)) for k in keys if k in config]
    items += [(f"params.{k}", v) for k, v in (config.get("params") or {}).items()]
    items += [(f"features.{k}", v) for k, v in (config.get("features") or {}).items()]
    return items


def _timings(config: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in (config.get("timings") or {}).items() if v is not None]


def _key_value_table(items: Iterable[tuple[str, Any]], table_id: str) -> str:
    rows = "".join(f"<tr><th>{_e(str(k))}</th><td>{_e(_text(v))}</td></tr>" for k, v in items)
    return f'<table id="{table_id}">{rows}</table>'


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return "" if value is None else str(value)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)
