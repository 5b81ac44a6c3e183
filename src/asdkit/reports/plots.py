"""The run's figures: training curves, score histograms with the threshold, ROC curves with the pAUC region.

They answer what a table of AUCs does not: did training converge (or overfit: validation loss), where
the decision threshold sits between normal and anomalous scores, and which part of the ROC curve the
pAUC (FPR <= 0.1) rewards. One PNG per machine type (curves) and per machine type and section (scores,
ROC); a section's panels and curves are split by domain. Matplotlib's Figure API on the Agg canvas: no
pyplot state, no display. Files are written atomically into ``RUN/plots/``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from asdkit.errors import DataError
from asdkit.metrics import MAX_FPR, ScoreRecord, pauc
from asdkit.run_result import RunResult, load_run
from asdkit.rundir import PLOTS_DIR
from asdkit.utils.io import atomic_open

#: What ``write_run_plots`` can draw; each name is also the file-name prefix.
KINDS = ("loss", "scores", "roc")
DPI = 100
_NORMAL, _ANOMALY = "tab:blue", "tab:red"


def loss_figure(machine: str, history: Sequence[dict[str, float]]) -> Any:
    """Training (and validation) loss per epoch; the learning rate on a second axis when it changed."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if not history:
        raise DataError(f"{machine}: the model has no training history (not an iteratively trained detector)")
    epochs = np.array([row["epoch"] for row in history]) + 1
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for key, colour, label in (
        ("train_loss", "tab:blue", "training"),
        ("val_loss", "tab:orange", "validation"),
    ):
        values = np.array([row.get(key, np.nan) for row in history], dtype=float)
        if np.isfinite(values).any():
            ax.plot(epochs, values, marker="o", markersize=3, color=colour, label=f"{label} loss")
    positive = [row[k] for row in history for k in ("train_loss", "val_loss") if row.get(k, 0) > 0]
    if positive and max(positive) / min(positive) > 30:
        ax.set_yscale("log")  # the first epochs of a raw-dB AE are orders of magnitude above the rest
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    rates = np.array([row.get("lr", np.nan) for row in history], dtype=float)
    handles, labels = ax.get_legend_handles_labels()
    if np.isfinite(rates).any() and np.nanmax(rates) > np.nanmin(rates):
        ax_lr = ax.twinx()
        (line,) = ax_lr.step(epochs, rates, where="mid", color="grey", linestyle=":", label="learning rate")
        ax_lr.set_ylabel("learning rate")
        handles, labels = [*handles, line], [*labels, "learning rate"]
    ax.legend(handles, labels, loc="upper right", fontsize=8)
    ax.set_title(f"{machine}: training curve ({len(history)} epochs)", loc="left", fontsize=10)
    return fig


def _domain_sets(
    records: Sequence[ScoreRecord], scheme: str
) -> list[tuple[str, np.ndarray, np.ndarray, bool]]:
    """(name, labels, scores, is a pAUC set) of the test sets the official scheme evaluates in a section.

    2022+: AUC(source) and AUC(target) each take that domain's normals with ALL anomalies; pAUC takes every
    clip. 2021: one set per domain (AUC and pAUC each). 2020: the machine id's clips.
    """
    y = np.array([r.label for r in records], dtype=int)
    s = np.array([r.score for r in records], dtype=float)
    domains = np.array([r.domain for r in records])
    if scheme == "dcase2020":
        return [("all clips", y, s, True)]
    sets = []
    for domain in sorted(set(domains.tolist())):
        mask = domains == domain
        if scheme == "dcase2022":
            mask = mask | (y == 1)
        sets.append((domain, y[mask], s[mask], scheme == "dcase2021"))
    if scheme == "dcase2022":
        sets.append(("all clips", y, s, True))
    return sets


def score_histogram_figure(
    machine: str, section: str, records: Sequence[ScoreRecord], threshold: float | None, scheme: str
) -> Any:
    """Normal vs anomalous score histograms, one panel per domain, with the decision threshold."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    domains = ["all clips"] if scheme == "dcase2020" else sorted({r.domain for r in records})
    scores = np.array([r.score for r in records], dtype=float)
    edges = np.histogram_bin_edges(np.append(scores, threshold) if threshold is not None else scores, bins=30)
    fig = Figure(figsize=(4.8 * len(domains) + 1, 4), layout="constrained")
    axes = fig.subplots(1, len(domains), sharey=True, squeeze=False)[0]
    for ax, domain in zip(axes, domains, strict=True):
        inside = [r for r in records if scheme == "dcase2020" or r.domain == domain]
        for label, colour, name in ((0, _NORMAL, "normal"), (1, _ANOMALY, "anomalous")):
            values = [r.score for r in inside if r.label == label]
            ax.hist(values, bins=edges, color=colour, alpha=0.55, label=f"{name} ({len(values)})")
        if threshold is not None:
            ax.axvline(
                threshold, color="black", linestyle="--", linewidth=1.2, label=f"threshold {threshold:.4g}"
            )
        ax.set_title(domain, loc="left", fontsize=10)
        ax.set_xlabel("anomaly score")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("clips")
    axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"{machine} {_unit(scheme)} {section}: anomaly scores", fontsize=11)
    return fig


def roc_figure(
    machine: str, section: str, records: Sequence[ScoreRecord], scheme: str, max_fpr: float = MAX_FPR
) -> Any:
    """ROC curve of each official test set of a section; the pAUC region (FPR <= max_fpr) is shaded."""
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_auc_score, roc_curve

    fig = Figure(figsize=(5.6, 5.2), layout="constrained")
    ax = fig.add_subplot()
    ax.axvspan(0.0, max_fpr, color="gold", alpha=0.18, label=f"pAUC region (FPR ≤ {max_fpr:g})")
    for name, y, s, is_pauc_set in _domain_sets(records, scheme):
        if len(set(y.tolist())) < 2:
            continue  # one class only: no curve (the evaluation names such a set as an error)
        fpr, tpr, _ = roc_curve(y, s)
        text = f"{name}: AUC {roc_auc_score(y, s):.3f}"
        if is_pauc_set:
            text += f", pAUC {pauc(y, s, max_fpr=max_fpr):.3f}"
        (line,) = ax.plot(fpr, tpr, linewidth=1.6, label=text)
        if is_pauc_set:
            grid = np.linspace(0.0, max_fpr, 100)
            ax.fill_between(grid, np.interp(grid, fpr, tpr), color=line.get_color(), alpha=0.3)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(f"{machine} {_unit(scheme)} {section}: ROC", loc="left", fontsize=10)
    return fig


def _unit(scheme: str) -> str:
    return "id" if scheme == "dcase2020" else "section"


def run_figures(record: RunResult, kinds: Sequence[str] = KINDS) -> dict[str, Any]:
    """Figures of a run by file stem (``loss_<machine>``, ``scores_<machine>_section_XX``, ``roc_...``)."""
    _check_kinds(kinds)
    figures: dict[str, Any] = {}
    if "loss" in kinds:
        for machine, history in sorted(record.histories.items()):
            if history:
                figures[f"loss_{machine}"] = loss_figure(machine, history)
    table = record.table
    if table is not None and table.scheme is not None and {"scores", "roc"} & set(kinds):
        for machine in table.machines():
            for section in table.sections(machine):
                records = list(table.filter(machines=[machine], sections=[section]))
                stem = f"{machine}_{_unit(table.scheme)}_{section}"
                if "scores" in kinds:
                    threshold = record.thresholds.get(machine)
                    if threshold is not None and not np.isfinite(threshold):
                        threshold = None  # a refused threshold (too few held-out scores): no line
                    figures[f"scores_{stem}"] = score_histogram_figure(
                        machine, section, records, threshold, table.scheme
                    )
                if "roc" in kinds:
                    figures[f"roc_{stem}"] = roc_figure(machine, section, records, table.scheme)
    return figures


def _check_kinds(kinds: Sequence[str]) -> None:
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise DataError(f"unknown plot kind {unknown[0]!r} (known: {', '.join(KINDS)})")


def png_bytes(figure: Any) -> bytes:
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def write_run_plots(
    run: RunResult | Path | str, out_dir: Path | str | None = None, kinds: Sequence[str] = KINDS
) -> list[Path]:
    """Write the run's figures as PNGs (default ``RUN/plots/``); returns the paths written.

    ``run`` is the run ``api.run`` just made, or a run folder to read back (``asdkit plot run``).
    """
    _check_kinds(kinds)
    record = run if isinstance(run, RunResult) else load_run(run)
    out = Path(out_dir) if out_dir is not None else record.run_dir / PLOTS_DIR
    written = []
    for stem, figure in run_figures(record, kinds).items():
        path = out / f"{stem}.png"
        with atomic_open(path, "wb") as f:
            figure.savefig(f, format="png", dpi=DPI)
        written.append(path)
    return written
