"""Figures and the HTML report of a tiny run; the report opened in headless Chromium."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asdkit import api
from asdkit.data.synthetic import SyntheticSpec, generate
from asdkit.errors import DataError
from asdkit.metrics import ScoreRecord, pauc
from asdkit.reports.plots import loss_figure, roc_figure, score_histogram_figure, write_run_plots
from asdkit.tracking import TrackingOptions

CHROMIUM = "/usr/bin/chromium"
FIGURES = {
    "loss_fan",
    "scores_fan_section_00",
    "scores_fan_section_01",
    "roc_fan_section_00",
    "roc_fan_section_01",
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reports")
    data = generate(root / "data", layout="dcase2022", spec=SyntheticSpec.tiny(machines=("fan",)))
    result = api.run(
        data,
        root / "runs" / "tiny",
        model="ae",
        params={"accelerator": "cpu", "epochs": 3},
        debug=True,
        cache_dir=root / "cache",
        tracking=TrackingOptions(mlflow=False),
    )
    return result.run_dir


def _check_png(path: Path, min_size: tuple[int, int], max_size: tuple[int, int]) -> np.ndarray:
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    assert min_size[0] <= width <= max_size[0] and min_size[1] <= height <= max_size[1], (width, height)
    assert image[..., :3].std() > 0.05, f"{path.name} looks blank"
    return image


def test_run_draws_every_figure_as_a_valid_png(run_dir):
    pngs = sorted((run_dir / "plots").iterdir())
    assert {p.stem for p in pngs} == FIGURES and all(p.suffix == ".png" for p in pngs)
    for path in pngs:
        _check_png(path, (400, 300), (2000, 1500))


def _records(scheme: str = "dcase2022") -> list[ScoreRecord]:
    rng = np.random.default_rng(0)
    out = []
    for domain, shift in (("source", 0.0), ("target", 0.5)):
        out += [ScoreRecord("fan", "00", domain, 0, float(s)) for s in rng.normal(shift, 1, 20)]
        out += [ScoreRecord("fan", "00", domain, 1, float(s)) for s in rng.normal(shift + 1.5, 1, 10)]
    return out


def test_roc_figure_shades_the_pauc_region_and_reports_the_official_pauc():
    records = _records()
    fig = roc_figure("fan", "00", records, "dcase2022", max_fpr=0.1)
    ax = fig.axes[0]
    band = ax.patches[0]  # axvspan: the band FPR <= 0.1
    assert band.get_x() == 0.0 and band.get_width() == pytest.approx(0.1)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [label.split(":")[0] for label in labels[1:]] == ["source", "target", "all clips"]
    y = np.array([r.label for r in records])
    s = np.array([r.score for r in records])
    assert labels[-1].endswith(f"pAUC {pauc(y, s, max_fpr=0.1):.3f}")
    assert len(ax.collections) == 1  # the area under the pAUC curve, filled up to FPR 0.1
    filled = ax.collections[0].get_paths()[0].vertices
    assert filled[:, 0].max() == pytest.approx(0.1)


def test_histogram_splits_domains_and_marks_the_threshold():
    fig = score_histogram_figure("fan", "00", _records(), 1.23, "dcase2022")
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["source", "target"]
    for ax in fig.axes:
        assert [line.get_xdata()[0] for line in ax.get_lines()] == [1.23]
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels[:2] == ["normal (20)", "anomalous (10)"]


def test_loss_figure_needs_a_history():
    with pytest.raises(DataError, match="fan: the model has no training history"):
        loss_figure("fan", [])


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asdkit", *args], capture_output=True, text=True, timeout=120
    )


def test_plot_command_draws_the_kinds_asked_for(run_dir, tmp_path):
    proc = _cli("plot", "run", str(run_dir), "--kind", "roc", "--out", str(tmp_path / "figs"))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "roc_fan_section_00.png",
        "roc_fan_section_01.png",
    ]
    with pytest.raises(DataError, match="unknown plot kind 'violin' \\(known: loss, scores, roc\\)"):
        write_run_plots(run_dir, tmp_path / "x", kinds=["violin"])
    assert not (tmp_path / "x").exists()


def _result_numbers(run_dir: Path) -> list[str]:
    """Every number of result.csv, as the file writes it (repr of the float)."""
    with open(run_dir / "result.csv", newline="") as f:
        cells = [c for row in csv.reader(f) for c in row[1:]]
    numbers = [c for c in cells if re.fullmatch(r"-?\d+(\.\d+)?(e-?\d+)?", c)]
    assert len(numbers) >= 12
    return numbers


@pytest.fixture(scope="module")
def report(run_dir) -> Path:
    proc = _cli("report", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    path = run_dir / "report.html"
    assert proc.stdout.strip() == f"report: {path}"
    return path


def test_report_holds_the_numbers_of_result_csv_and_embeds_every_figure(report, run_dir):
    text = report.read_text()
    assert "<title>asdkit report: tiny</title>" in text
    values = re.findall(r'data-value="([^"]+)"', text.split('id="results"')[1].split("</table>")[0])
    assert sorted(values) == sorted(_result_numbers(run_dir))
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', text)
    assert set(images) == FIGURES
    assert "95% interval" not in text  # 2 sections: too few for an interval, so none is shown
    assert not re.search(r'(src|href)="(https?:)?//', text), "the page must not fetch anything"


def test_report_of_a_missing_run_is_a_one_line_error(tmp_path):
    proc = _cli("report", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'nope'}: no such run directory"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed here when missing and possible; the decision is made once per session."""
    found = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).is_file() else None)
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("headless Chromium is missing and cannot be installed here (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    proc = subprocess.run(install, capture_output=True, text=True, env=env, timeout=1200)
    if proc.returncode != 0:  # a fresh image may have no package lists yet
        subprocess.run(["apt-get", "update"], capture_output=True, text=True, env=env, timeout=600)
        proc = subprocess.run(install, capture_output=True, text=True, env=env, timeout=1200)
    if proc.returncode != 0 or not Path(CHROMIUM).is_file():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"could not install chromium with apt-get ({last})")
    return CHROMIUM


def _headless(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium,
        "--headless",
        "--no-sandbox",  # we run as root in CI containers
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_report_renders_in_headless_chromium(chromium, report, run_dir, tmp_path):
    url = report.resolve().as_uri()
    dom = _headless(chromium, tmp_path / "profile", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "<title>asdkit report: tiny</title>" in html
    table = html.split('id="results"')[1].split("</table>")[0]
    shown = re.findall(r'data-value="([^"]+)"[^>]*>([^<]+)</td>', table)
    assert sorted(v for v, _ in shown) == sorted(_result_numbers(run_dir))
    assert all(text == f"{float(v):.4f}" for v, text in shown)
    assert len(re.findall(r'<img alt="[^"]+" src="data:image/png;base64,', html)) == len(FIGURES)

    shot = tmp_path / "shot.png"
    proc = _headless(
        chromium,
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1280,1800",
        "--hide-scrollbars",
        url,
    )
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    image = _check_png(shot, (1280, 1800), (1280, 1800))
    ink = (image[..., :3].mean(axis=2) < 0.9).mean()
    assert ink > 0.02, f"the screenshot is almost blank ({ink:.1%} non-white)"


def test_terminal_table_ends_with_the_row_over_all_machine_types():
    from rich.console import Console

    from asdkit.metrics import ScoreTable, evaluate
    from asdkit.reports.console import print_evaluation

    records = _records() + [
        ScoreRecord("pump", r.section, r.domain, r.label, r.score * 0.5) for r in _records()
    ]
    evaluation = evaluate(ScoreTable(records, "dcase2022"))
    console = Console(record=True, width=120)
    print_evaluation(evaluation, console)
    lines = [line for line in console.export_text().splitlines() if line.startswith("│")]
    last = [cell.strip() for cell in lines[-1].strip("│").split("│")]
    overall = evaluation.overall_hmean
    assert last == ["all", "harmonic mean"] + [
        f"{overall[c]:.4f}" for c in ("AUC (source)", "AUC (target)", "pAUC")
    ]
