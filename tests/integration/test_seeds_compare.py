"""Multi-seed runs (API and CLI), the comparison table, and embedding detectors end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from asdkit import api
from asdkit.data.synthetic import SyntheticSpec, generate
from asdkit.detectors.base import Detector
from asdkit.errors import AsdkitError, DataError
from asdkit.metrics import ScoreTable, evaluate, write_result_csv
from asdkit.reports.compare import (
    best_rows,
    compare_runs,
    comparison_csv_text,
    detector_label,
    overall_metrics,
)
from asdkit.seeds import OFFICIAL, parse_seeds
from tests.helpers.cli import asdkit_cli as cli

SPEC = SyntheticSpec.tiny(machines=("pump", "fan"))


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("d22") / "data", layout="dcase2022", spec=SPEC)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def test_parse_seeds():
    assert parse_seeds("0,1,2,3") == [0, 1, 2, 3] == parse_seeds("0-3")
    assert parse_seeds("5, 7-8") == [5, 7, 8]
    for bad in ("", "a", "1,1", "-2"):
        with pytest.raises(AsdkitError, match="--seeds"):
            parse_seeds(bad)


def test_api_run_with_seeds_runs_each_seed_in_its_folder(tree, cache_dir, tmp_path, caplog):
    out = tmp_path / "knn"
    with caplog.at_level("WARNING"):
        result = api.run(tree, out, model="knn", params={"k": 2}, seeds=[3, 5], cache_dir=cache_dir)
    # knn has no seed: the runs are the same, which the user who asked for a spread is told
    assert "--seeds: knn takes no seed (it is deterministic)" in caplog.text
    assert [r.run_dir for r in result.runs] == [out / "seed_3", out / "seed_5"]
    assert all(
        json.loads((r.run_dir / "config.json").read_text())["seed"] == s
        for r, s in zip(result.runs, [3, 5], strict=True)
    )
    record = json.loads((out / "seeds.json").read_text())
    assert record["status"] == "complete" and record["seeds"] == [3, 5] and record["model"] == "knn"
    rows = {r["metric"]: r for r in csv.DictReader((out / "seeds.csv").open())}
    assert {OFFICIAL, "AUC (source)", "AUC (target)", "pAUC", "fan: AUC (target)"} <= set(rows)
    official = [r.evaluation.official_score for r in result.runs]
    assert float(rows[OFFICIAL]["seed_3"]) == official[0]
    assert float(rows[OFFICIAL]["mean"]) == pytest.approx(np.mean(official))
    assert float(rows[OFFICIAL]["std"]) == pytest.approx(np.std(official, ddof=1))


def test_scoring_a_file_uses_its_sections_memory_banks(tree, cache_dir, tmp_path):
    result = api.run(tree, tmp_path / "maha", model="mahalanobis", machines=["fan"], cache_dir=cache_dir)
    score_file = result.run_dir / "scores" / "anomaly_score_fan_section_01_test.csv"
    name, expected = next(csv.reader(score_file.open()))
    (scored,), _ = api.score(result.run_dir, [tree / "fan" / "test" / name], cache_dir=cache_dir)
    assert scored.score == pytest.approx(float(expected), rel=1e-9)


def _fake_run(run_dir: Path, official_shift: float, model: str = "x") -> None:
    """A run directory as api.run leaves it: config.json and result.csv of a small evaluated table."""
    rng = np.random.default_rng(int(official_shift * 100))
    from asdkit.metrics import ScoreRecord

    records = [
        ScoreRecord("fan", s, d, label, float(rng.normal() + label * (1 + official_shift)))
        for s in ("00", "01")
        for d in ("source", "target")
        for label in (0, 1)
        for _ in range(10)
    ]
    evaluation = evaluate(ScoreTable(records, "dcase2022"))
    run_dir.mkdir(parents=True)
    write_result_csv(evaluation, run_dir / "result.csv")
    config = {"status": "complete", "model": model, "official_score": evaluation.official_score}
    (run_dir / "config.json").write_text(json.dumps(config))


def test_compare_reads_runs_and_seed_folders_and_marks_the_best(tmp_path):
    _fake_run(tmp_path / "weak", 0.0, "ae")
    for seed, shift in ((0, 1.0), (1, 2.0)):
        _fake_run(tmp_path / "strong" / f"seed_{seed}", shift, "knn")
    (tmp_path / "strong" / "seeds.json").write_text(json.dumps({"seeds": [0, 1], "model": "knn"}))
    rows = compare_runs([tmp_path / "weak", tmp_path / "strong"])
    assert [r.model for r in rows] == ["ae", "knn"] and [r.n_seeds for r in rows] == [1, 2]
    strong = [overall_metrics(tmp_path / "strong" / f"seed_{s}") for s in (0, 1)]
    summary = rows[1].metrics["AUC (target)"]
    assert summary.values == [m["AUC (target)"] for m in strong]
    assert summary.std == pytest.approx(np.std(summary.values, ddof=1))
    assert best_rows(rows, OFFICIAL) == {1}
    text = comparison_csv_text(rows)
    header, weak, strong_row = list(csv.reader(text.splitlines()))
    assert header[:5] == ["run", "detector", "seeds", "official score mean", "official score std"]
    assert "official score" in strong_row[-1].split(";") and "official score" not in weak[-1]


def test_an_ensemble_is_labelled_with_its_members():
    params = {"members": ["runs/arcface", "knn", {"model": "gmm"}, {"path": "runs/x/"}]}
    assert detector_label("ensemble", params) == "ensemble(arcface, knn, gmm, x)"
    assert detector_label("knn", {"k": 1}) == "knn"


def test_overall_metrics_match_the_evaluation(tmp_path):
    _fake_run(tmp_path / "r", 0.5)
    metrics = overall_metrics(tmp_path / "r")
    assert set(metrics) == {OFFICIAL, "AUC (source)", "AUC (target)", "pAUC"}
    assert all(0 <= v <= 1 for v in metrics.values())


def test_compare_refuses_what_is_not_an_evaluated_run(tmp_path):
    with pytest.raises(DataError, match="no such run directory"):
        compare_runs([tmp_path / "nope"])
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text('{"status": "running"}')
    (tmp_path / "half" / "result.csv").write_text("")
    with pytest.raises(DataError, match="did not complete"):
        compare_runs([tmp_path / "half"])


@pytest.mark.slow
def test_cli_seeds_then_compare_with_an_ensemble_and_a_classifier(tree, cache_dir, tmp_path):
    env_args = ("--cache-dir", str(cache_dir), "--quiet")
    seeds = cli(
        "run",
        "--data",
        str(tree),
        "--out",
        str(tmp_path / "knn"),
        "--model",
        "knn",
        "--seeds",
        "0,1",
        *env_args,
    )
    assert seeds.returncode == 0, seeds.stderr
    assert "Over 2 seeds" in seeds.stdout and "official score" in seeds.stdout
    arc = api.run(
        tree,
        tmp_path / "adacos",
        model="adacos",
        params={"epochs": 1, "base_channels": 4, "embedding_dim": 16, "accelerator": "cpu"},
        cache_dir=cache_dir,
    )
    assert Detector.load(arc.run_dir / "models" / "fan").classes_[-1][0] == "pump"  # proxy machine classes
    ens = api.run(
        tree,
        tmp_path / "ens",
        model="ensemble",
        params={"members": [str(tmp_path / "adacos"), "mahalanobis"]},
        cache_dir=cache_dir,
    )
    assert [m.name for m in Detector.load(ens.run_dir / "models" / "pump").members_] == [
        "adacos",
        "mahalanobis",
    ]
    out_csv = tmp_path / "cmp.csv"
    cmp = cli(
        "compare",
        str(tmp_path / "knn"),
        str(tmp_path / "adacos"),
        str(tmp_path / "ens"),
        "--csv",
        str(out_csv),
    )
    assert cmp.returncode == 0, cmp.stderr
    assert "±" in cmp.stdout and "*" in cmp.stdout
    assert len(list(csv.reader(out_csv.open()))) == 4
    bad = cli("compare", str(tmp_path / "missing"))
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "missing" in bad.stderr


def test_a_seeds_folder_where_one_run_is_expected_names_its_runs(tmp_path):
    """`asdkit run --seeds` writes OUT/seed_<n>/; score, serve, export, plot and evaluate given OUT say so."""
    from asdkit.detectors.saved import load_models
    from asdkit.errors import ModelError
    from asdkit.run_result import load_run

    out = tmp_path / "maha"
    for n in (0, 1, 10):
        (out / f"seed_{n}" / "scores").mkdir(parents=True)
    (out / "seeds.json").write_text(json.dumps({"status": "complete", "seeds": [0, 1, 10]}))
    runs = r"a --seeds folder: give one of its runs \(seed_0, seed_1, seed_10\)"
    with pytest.raises(ModelError, match=runs):
        load_models(out)
    with pytest.raises(DataError, match=runs):
        load_run(out)
    with pytest.raises(DataError, match=runs):
        api.evaluate(out)
    with pytest.raises(ModelError, match=r"neither a model folder") as plain:
        load_models(tmp_path / "maha" / "seed_0")  # a folder that is not a --seeds folder: no hint
    assert "--seeds" not in str(plain.value)
