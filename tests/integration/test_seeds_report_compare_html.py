"""``asdkit report`` on a --seeds folder, ``asdkit compare --html``: self-contained pages, exact numbers."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from asdkit import api
from asdkit.data.synthetic import SyntheticSpec, generate
from asdkit.reports.compare import compare_runs
from tests.helpers.cli import asdkit_cli as cli

SPEC = SyntheticSpec.tiny(machines=("pump", "fan"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    tree = generate(root / "data", layout="dcase2022", spec=SPEC)
    cache = root / "cache"
    api.run(tree, root / "knn3", model="knn", params={"k": 1}, seeds=[0, 1, 2], cache_dir=cache, plots=False)
    api.run(
        tree, root / "knn_cos", model="knn", params={"k": 2, "metric": "cosine"}, cache_dir=cache, plots=False
    )
    return root / "knn3", root / "knn_cos"


def _self_contained(page: str) -> None:
    assert "<script" not in page
    for target in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert target.startswith("data:image/png;base64,") or re.fullmatch(r"seed_\d+/report\.html", target)


def test_report_of_a_seeds_folder_shows_every_seed(runs):
    folder, _ = runs
    res = cli("report", str(folder))
    assert res.returncode == 0, res.stderr
    page = (folder / "report.html").read_text()
    _self_contained(page)
    with open(folder / "seeds.csv", newline="") as f:
        official = next(r for r in csv.DictReader(f) if r["metric"] == "official score")
    assert f'data-value="{float(official["mean"])!r}"' in page  # the page's mean is seeds.csv's, exactly
    for s in (0, 1, 2):
        assert f'data-value="{float(official[f"seed_{s}"])!r}"' in page
        assert f'href="seed_{s}/report.html"' in page
    assert page.count("data:image/png;base64,") == 1


def test_compare_html_marks_the_best_and_keeps_exact_means(runs, tmp_path):
    folder, single = runs
    out = tmp_path / "cmp.html"
    res = cli("compare", str(folder), str(single), "--html", str(out))
    assert res.returncode == 0, res.stderr
    page = out.read_text()
    _self_contained(page)
    rows = compare_runs([folder, single])
    for row in rows:
        m = row.metrics["official score"]
        assert f'data-value="{m.mean!r}" data-std="{m.std!r}"' in page
    best = max(rows, key=lambda r: r.metrics["official score"].mean).metrics["official score"]
    assert re.search(rf'class="num best" data-value="{re.escape(repr(best.mean))}"', page)
    assert "± " in page and page.count("data:image/png;base64,") == 1
