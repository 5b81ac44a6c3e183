"""Every evaluation path gives the year's official numbers, or refuses clearly (issue 13).

Each year's evaluation tree is run (the cheapest detector, knn), then its score files are evaluated on
their own with the same ground truth: both must give the same result.csv, under that year's rules.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from sklearn.metrics import roc_auc_score

from asdkit import api
from asdkit.errors import DataError
from asdkit.metrics.result_csv import COVERAGE_LABEL, LEFT_OUT_LABEL, RULES_LABEL
from tests.helpers.cli import asdkit_cli as cli
from tests.helpers.eval_trees import make_mimii_tree, make_year_eval_tree
from tests.helpers.trees import make_tree

SCHEME_OF_YEAR = {
    2020: "dcase2020",
    2021: "dcase2021",
    2022: "dcase2022",
    2023: "dcase2022",
    2024: "dcase2022",
    2025: "dcase2022",
}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def notes(result_csv: Path) -> list[list[str]]:
    """The rows asdkit adds after the official ones."""
    rows = list(csv.reader(result_csv.open()))
    return [r for r in rows if r and r[0] in (RULES_LABEL, LEFT_OUT_LABEL, COVERAGE_LABEL)]


def knn_run(data: Path, out: Path, cache_dir: Path, **kwargs) -> api.RunResult:
    result = api.run(data, out, model="knn", cache_dir=cache_dir, plots=False, **kwargs)
    assert isinstance(result, api.RunResult)
    return result


@pytest.mark.parametrize("year", sorted(SCHEME_OF_YEAR))
def test_run_then_evaluate_give_the_same_numbers_under_the_years_rules(year, tmp_path, cache_dir):
    data, truth = make_year_eval_tree(tmp_path, year)
    result = knn_run(data, tmp_path / "run", cache_dir, ground_truth=truth)
    assert result.evaluation is not None
    assert result.evaluation.scheme == SCHEME_OF_YEAR[year]
    assert result.evaluation.rules.year == year
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["status"] == "complete"
    assert config["scheme"]["scheme"] == SCHEME_OF_YEAR[year] and config["scheme"]["year"] == year

    again = api.evaluate(result.run_dir / "scores", ground_truth=truth, out=tmp_path / "evaluated")
    assert (tmp_path / "evaluated" / "result.csv").read_text() == result.result_csv.read_text()
    assert again.official_score == result.evaluation.official_score
    assert notes(result.result_csv) == [
        [RULES_LABEL, SCHEME_OF_YEAR[year], "2022-2025 data" if year == 2022 else f"{year} data"]
    ]
    assert again.coverage is not None and again.coverage.complete


def _scores(path: Path) -> dict[str, float]:
    return {name: float(score) for name, score in csv.reader(path.open())}


def test_2021_official_score_by_hand_with_sklearn(tmp_path, cache_dir):
    """2021: every (section, domain) set on its own; the official score is the hmean of all AUC and pAUC."""
    data, truth = make_year_eval_tree(tmp_path, 2021)
    result = knn_run(data, tmp_path / "run", cache_dir, ground_truth=truth)
    values = []
    for gt_file in sorted(truth.glob("ground_truth_*_test.csv")):
        labels = {name: int(label) for name, label in csv.reader(gt_file.open())}
        group = gt_file.name.removeprefix("ground_truth_")
        scores = _scores(result.run_dir / "scores" / f"anomaly_score_{group}")
        y = np.array([labels[n] for n in scores])
        s = np.array(list(scores.values()))
        values += [roc_auc_score(y, s), roc_auc_score(y, s, max_fpr=0.1)]
    assert len(values) == 2 * 2 * 2 * 2  # machines x sections x domains x (AUC, pAUC)
    assert result.evaluation.official_score == pytest.approx(float(scipy.stats.hmean(values)), abs=1e-12)


def test_2023_official_score_by_hand_with_sklearn(tmp_path, cache_dir):
    """2022+: AUC(source) and AUC(target) each against ALL anomalies of the section, pAUC on every clip."""
    data, truth = make_year_eval_tree(tmp_path, 2023)
    result = knn_run(data, tmp_path / "run", cache_dir, ground_truth=truth)
    values = []
    for label_file in sorted((truth / "ground_truth_data").glob("*.csv")):
        labels = {n: int(v) for n, v in csv.reader(label_file.open())}
        domain_file = truth / "ground_truth_domain" / label_file.name
        target = {n: v == "1" for n, v in csv.reader(domain_file.open())}
        group = label_file.name.removeprefix("ground_truth_")
        scores = _scores(result.run_dir / "scores" / f"anomaly_score_{group}")
        names = list(scores)
        y = np.array([labels[n] for n in names])
        s = np.array([scores[n] for n in names])
        is_target = np.array([target[n] for n in names])
        src, tgt = (~is_target) | (y == 1), is_target | (y == 1)
        values += [roc_auc_score(y[src], s[src]), roc_auc_score(y[tgt], s[tgt])]
        values.append(roc_auc_score(y, s, max_fpr=0.1))
    assert result.evaluation.official_score == pytest.approx(float(scipy.stats.hmean(values)), abs=1e-12)


def test_scheme_flag_forces_the_rules_on_run_and_evaluate(tmp_path, cache_dir):
    data, truth = make_year_eval_tree(tmp_path, 2021)
    result = knn_run(data, tmp_path / "run", cache_dir, ground_truth=truth, scheme="2022")
    assert result.evaluation.scheme == "dcase2022" and result.evaluation.rules.forced
    assert notes(result.result_csv)[0] == [RULES_LABEL, "dcase2022", "forced by --scheme"]
    proc = cli(
        "evaluate", str(result.run_dir / "scores"), "--ground-truth", str(truth), "--scheme", "2022",
        "--out", str(tmp_path / "forced"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "forced" / "result.csv").read_text() == result.result_csv.read_text()
    # The run directory remembers that its rules were forced.
    assert api.evaluate(result.run_dir).scheme == "dcase2022"
    assert api.evaluate(result.run_dir / "scores", ground_truth=truth).scheme == "dcase2021"


def test_incomplete_submission_is_an_error_unless_allow_partial(tmp_path, cache_dir):
    data, truth = make_year_eval_tree(tmp_path, 2022)
    result = knn_run(data, tmp_path / "run", cache_dir, ground_truth=truth)
    submission = tmp_path / "submission"
    submission.mkdir()
    for path in (result.run_dir / "scores").glob("*.csv"):
        rows = list(csv.reader(path.open()))
        if path.name == "anomaly_score_fan_section_03_test.csv":
            rows = rows[:-3]
        with open(submission / path.name, "w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(rows)
    proc = cli("evaluate", str(submission), "--ground-truth", str(truth))
    assert proc.returncode == 2
    # 2 machines x 2 sections x 8 clips are listed; 3 rows were removed.
    assert "error: 3 of 32 clips listed in" in proc.stderr and "have no score, e.g. fan/" in proc.stderr
    assert "official score" not in proc.stdout

    proc = cli(
        "evaluate", str(submission), "--ground-truth", str(truth), "--allow-partial", "--out", str(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr
    assert f"coverage: 29 of 32 clips listed in {truth}" in proc.stdout
    assert [COVERAGE_LABEL, "29", "32", str(truth)] in notes(tmp_path / "result.csv")


def test_run_refuses_a_tree_missing_listed_clips_before_training(tmp_path, cache_dir):
    data, truth = make_year_eval_tree(tmp_path, 2021)
    gone = sorted((data / "fan" / "source_test").glob("*.wav"))[:2]
    for path in gone:
        path.unlink()
    with pytest.raises(DataError, match=r"2 of 32 clips listed in .* have no score, e\.g\. fan/section_03"):
        knn_run(data, tmp_path / "run", cache_dir, ground_truth=truth)
    assert not (tmp_path / "run" / "models").exists()  # refused before any training
    result = knn_run(data, tmp_path / "partial", cache_dir, ground_truth=truth, allow_partial=True)
    assert result.evaluation is not None and result.evaluation.coverage.scored == 30
    assert [COVERAGE_LABEL, "30", "32", str(truth)] in notes(result.result_csv)


def test_a_section_without_anomalies_is_left_out_and_the_rest_evaluated(tmp_path, cache_dir, caplog):
    data = make_tree(tmp_path / "d20", "dcase2020")
    for path in (data / "fan" / "test").glob("anomaly_id_02_*.wav"):
        path.unlink()
    result = knn_run(data, tmp_path / "run", cache_dir)
    assert result.evaluation is not None
    assert [(r.machine, r.section) for r in result.evaluation.rows] == [
        ("fan", "00"),
        ("valve", "00"),
        ("valve", "02"),
    ]
    assert result.evaluation.left_out == (("fan id 02", "no anomalous clip"),)
    assert "fan id 02 left out of the evaluation: no anomalous clip" in caplog.text
    assert [LEFT_OUT_LABEL, "fan id 02", "no anomalous clip"] in notes(result.result_csv)
    assert json.loads((result.run_dir / "config.json").read_text())["status"] == "complete"


def test_folder_layout_run_ends_complete_with_auc_and_pauc_per_machine(tmp_path, cache_dir):
    data = make_tree(tmp_path / "mine", "folder", n_test=3)
    proc = cli(
        "run", "--data", str(data), "--out", str(tmp_path / "run"), "--model", "knn", "--quiet",
        "--no-track", "--cache-dir", str(cache_dir),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run_dir = tmp_path / "run"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["status"] == "complete" and config["scheme"]["scheme"] == "dcase2021"
    assert (run_dir / "plots").is_dir()
    rows = list(csv.reader((run_dir / "result.csv").open()))
    assert rows[0] == ["fan"] and rows[1][:4] == ["section", "domain", "AUC", "pAUC"]
    assert rows[2][:2] == ["00", "source"]
    ev = api.evaluate(run_dir, out=tmp_path / "again")
    assert (tmp_path / "again" / "result.csv").read_text() == (run_dir / "result.csv").read_text()
    auc_pauc = [r[c] for r in ev.rows for c in ("AUC", "pAUC")]
    assert len(auc_pauc) == 4 and ev.official_score == pytest.approx(float(scipy.stats.hmean(auc_pauc)))


def test_raw_mimii_tree_is_detected_split_and_runs_end_to_end(tmp_path, cache_dir):
    data = make_mimii_tree(tmp_path / "mimii", n_normal=8, n_abnormal=2)
    manifest = api.scan_data(data)
    assert manifest.layout == "mimii" and manifest.machines() == ["0_dB_pump", "0_dB_valve"]
    for machine in manifest.machines():
        for section in ("00", "02"):
            part = manifest.filter(machine=machine, section=section)
            assert len(part.filter(split="test", label=1)) == 2
            assert len(part.filter(split="test", label=0)) == 2  # as many normals held out as anomalies
            assert len(part.filter(split="train")) == 6
    assert api.scan_data(data).clips == manifest.clips  # the split is seeded: the same every time
    test_names = [c.name for c in manifest.filter(split="test")]
    assert "anomaly_id_00_00000000.wav" in test_names

    result = knn_run(data, tmp_path / "run", cache_dir)
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["status"] == "complete" and config["layout"] == "mimii"
    assert result.evaluation is not None and result.evaluation.scheme == "dcase2020"
    assert result.result_csv.is_file()
    assert (result.run_dir / "scores" / "anomaly_score_0_dB_pump_id_00.csv").is_file()
    api.evaluate(result.run_dir / "scores", out=tmp_path / "again")
    assert (tmp_path / "again" / "result.csv").read_text() == result.result_csv.read_text()


def test_mimii_channel_mix_is_an_option(tmp_path, cache_dir):
    data = make_mimii_tree(tmp_path / "mimii", machines=("pump",), ids=("00",), n_normal=6, n_abnormal=2)
    proc = cli(
        "run", "--data", str(data), "--out", str(tmp_path / "run"), "--model", "knn", "--channel", "mix",
        "--quiet", "--no-track", "--no-plots", "--cache-dir", str(cache_dir),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["features"]["channel"] == "mix" and config["status"] == "complete"


@pytest.mark.shared
def test_real_raw_mimii_sample_is_recognised(shared_data):
    manifest = api.scan_data(shared_data / "mimii_raw_sample")
    assert manifest.layout == "mimii"
    assert manifest.machines() == ["0_dB_pump", "0_dB_valve"]
    # One normal and one abnormal clip per id: the normal stays for training, never all of them held out.
    assert len(manifest.filter(split="train")) == 4 and len(manifest.filter(split="test", label=1)) == 4


def test_plot_run_draws_the_training_curve_of_one_model_folder(tmp_path, cache_dir):
    data = make_tree(tmp_path / "d22", "dcase2022")
    api.train(data, tmp_path / "trained", model="ae", debug=True, cache_dir=cache_dir)
    model_folder = tmp_path / "trained" / "models" / "fan"
    proc = cli("plot", "run", str(model_folder), "--out", str(tmp_path / "figs"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(tmp_path / "figs" / "loss_fan.png")]
    assert (tmp_path / "figs" / "loss_fan.png").stat().st_size > 1000

    api.train(data, tmp_path / "knn", model="knn", cache_dir=cache_dir)  # no training curve
    proc = cli("plot", "run", str(tmp_path / "knn" / "models" / "fan"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "nothing to draw" in proc.stderr


def test_compare_warns_when_runs_are_on_different_data_or_machines(tmp_path, cache_dir, caplog):
    from asdkit.reports.compare import compare_runs

    data = make_tree(tmp_path / "d22", "dcase2022")
    other = make_tree(tmp_path / "other", "dcase2022")
    both = knn_run(data, tmp_path / "both", cache_dir).run_dir
    fan = knn_run(data, tmp_path / "fan", cache_dir, machines=["fan"]).run_dir
    elsewhere = knn_run(other, tmp_path / "elsewhere", cache_dir).run_dir

    caplog.clear()
    compare_runs([both, both])
    assert "not comparable" not in caplog.text
    compare_runs([both, fan, elsewhere])
    assert "the runs differ in machine types" in caplog.text and "fan: ['fan']" in caplog.text
    assert "the runs differ in data" in caplog.text and str(other) in caplog.text
    proc = cli("compare", str(both), str(fan))
    assert proc.returncode == 0, proc.stderr
    assert "warning: the runs differ in machine types" in proc.stderr
