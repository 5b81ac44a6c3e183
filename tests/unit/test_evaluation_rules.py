"""The rules decision, sets left out, the bounded interval and the completeness check (issue 13)."""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from asdkit.data.ground_truth import load_ground_truth
from asdkit.errors import AsdkitError, DataError
from asdkit.metrics import ScoreRecord, ScoreTable, evaluate, jackknife, result_csv_text
from asdkit.metrics.coverage import check_coverage
from asdkit.metrics.scheme import choose_rules, scheme_of_year


def test_the_year_decides_the_scheme():
    assert [scheme_of_year(y) for y in range(2020, 2026)] == ["dcase2020", "dcase2021"] + ["dcase2022"] * 4


def test_rules_come_from_scheme_flag_then_ground_truth_then_data(caplog):
    assert choose_rules(data_year=2021).scheme == "dcase2021"
    with caplog.at_level(logging.WARNING):
        rules = choose_rules(truth_year=2021, data_year=2022, data_source="the names")
    assert rules.scheme == "dcase2021" and rules.year == 2021 and "ground truth" in rules.reason
    assert "2021's, but the names looks like 2022's" in caplog.text
    forced = choose_rules(forced="2020", truth_year=2021, data_year=2022)
    assert forced.scheme == "dcase2020" and forced.forced and forced.data == "forced by --scheme"
    assert choose_rules(forced="dcase2024").scheme == "dcase2022"
    no_year = choose_rules(data_source="the folder layout")
    assert no_year.scheme == "dcase2021" and no_year.year is None
    with pytest.raises(AsdkitError, match=r"--scheme 2019: expected 2020, 2021 or 2022"):
        choose_rules(forced="2019")


def _write(path: Path, rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return path


EVALUATOR_2024 = "dcase2024_task2_evaluator/ground_truth_data/ground_truth_fan_section_00_test.csv"
FULL_2023 = "section_00_source_test_normal_0000.wav"


@pytest.mark.parametrize(
    ("relative", "rows", "year"),
    [
        ("gt/ground_truth_fan_section_03_source_test.csv", [["section_03_source_test_0000.wav", "1"]], 2021),
        (EVALUATOR_2024, [["a.wav", "1"]], 2024),
        ("mine/ground_truth_data/ground_truth_fan_section_00_test.csv", [["a.wav", "1"]], 2022),
        ("lists/eval_data_list_2023.csv", [["fan"], ["section_00_0000.wav", FULL_2023]], 2023),
        (
            "lists/eval_data_list_2020.csv",
            [["fan"], ["id_00_00000000.wav", "normal_id_00_00000000.wav", "0"]],
            2020,
        ),
    ],
)
def test_each_list_knows_its_year(tmp_path, relative, rows, year):
    truth = load_ground_truth(_write(tmp_path / relative, rows))
    assert truth.year_of(truth.labels) == year


def test_ground_truth_data_folder_brings_the_domains_beside_it(tmp_path):
    name = "ground_truth_fan_section_00_test.csv"
    _write(
        tmp_path / "ev" / "ground_truth_data" / name,
        [["section_00_0000.wav", "1"], ["section_00_0001.wav", "0"]],
    )
    _write(
        tmp_path / "ev" / "ground_truth_domain" / name,
        [["section_00_0000.wav", "0"], ["section_00_0001.wav", "1"]],
    )
    for given in (tmp_path / "ev" / "ground_truth_data", tmp_path / "ev" / "ground_truth_data" / name):
        truth = load_ground_truth(given)
        assert truth.domains == {
            ("fan", "section_00_0000.wav"): "source",
            ("fan", "section_00_0001.wav"): "target",
        }
        assert truth.describe() == str(given)


def rec(section: str, domain: str, label: int, score: float) -> ScoreRecord:
    return ScoreRecord("fan", section, domain, label, score, name=f"{section}_{domain}_{label}_{score}.wav")


def section(sec: str, shift: float = 0.0) -> list[ScoreRecord]:
    out = []
    for domain in ("source", "target"):
        out += [rec(sec, domain, 0, 0.1 + shift), rec(sec, domain, 0, 0.3 + shift)]
        out += [rec(sec, domain, 1, 0.2 + shift), rec(sec, domain, 1, 0.9 + shift)]
    return out


def test_a_set_without_anomalies_is_left_out_and_said_so(caplog):
    no_anomaly = [r for r in section("02") if r.label == 0]
    table = ScoreTable(section("00") + section("01", 0.05) + no_anomaly, "dcase2022")
    with caplog.at_level(logging.WARNING):
        ev = evaluate(table)
    assert ev.left_out == (("fan section 02", "no anomalous clip"),)
    assert caplog.text.count("left out of the evaluation") == 1
    rest = evaluate(ScoreTable(section("00") + section("01", 0.05), "dcase2022"))
    assert ev.official_score == rest.official_score and [r.section for r in ev.rows] == ["00", "01"]
    # The official rows are exactly those of the rest; one line after them says what was left out.
    assert result_csv_text(ev) == result_csv_text(rest) + "left out,fan section 02,no anomalous clip\n\n"
    assert result_csv_text(rest).endswith("\n\n") and "left out" not in result_csv_text(rest)


def test_2022_sets_need_normals_of_both_domains_and_2020_sets_both_labels():
    only_source = [r for r in section("01") if r.domain == "source"]
    ev = evaluate(ScoreTable(section("00") + only_source, "dcase2022"))
    assert ev.left_out == (("fan section 01", "no target normals (AUC (target) needs them)"),)
    with pytest.raises(DataError, match=r"nothing to evaluate: all 1 test set\(s\) were left out"):
        evaluate(ScoreTable([r for r in section("00") if r.label == 1], "dcase2020"))


def test_the_interval_never_leaves_zero_to_one_and_needs_three_sections():
    records = section("00") + section("01")
    # A third section scored upside down: the sections disagree wildly.
    records += [replace(r, section="02", score=-r.score) for r in section("00")]
    ev = evaluate(ScoreTable(records, "dcase2022"))
    jk = ev.jackknife
    assert jk is not None and jk.n_units == 3
    assert jk.clamped and 0.0 <= jk.low <= ev.official_score <= jk.high <= 1.0
    assert jk.low == 0.0
    assert evaluate(ScoreTable(section("00") + section("01"), "dcase2022")).jackknife is None
    # The plain jackknife (no bounds) is the textbook one, so the clamping is the evaluation's choice.
    raw = jackknife([[0.1], [0.9], [0.95]], lambda v: float(np.mean(v)))
    assert raw is not None and raw.low < 0.0 and not raw.clamped


def test_missing_clips_are_an_error_with_the_count_and_examples(caplog):
    listed = {("fan", f"section_00_{i:04d}.wav") for i in range(200)}
    scored = sorted(listed)[:16]
    with pytest.raises(DataError) as err:
        check_coverage(listed, scored, "gt/")
    assert str(err.value).startswith(
        "184 of 200 clips listed in gt/ have no score, e.g. fan/section_00_0016.wav, "
        "fan/section_00_0017.wav, fan/section_00_0018.wav, ...; "
    )
    assert "--allow-partial" in str(err.value)
    with caplog.at_level(logging.WARNING):
        coverage = check_coverage(listed, scored, "gt/", allow_partial=True)
    assert (coverage.scored, coverage.listed, coverage.complete) == (16, 200, False)
    assert (
        "184 of 200 clips" in caplog.text and str(coverage) == "16 of 200 clips listed in gt/ scored (8.0%)"
    )
    assert check_coverage(listed, listed, "gt/").complete


def test_result_csv_with_nothing_left_out_has_only_the_official_rows():
    ev = evaluate(ScoreTable(section("00") + section("01"), "dcase2022"))
    rows = list(csv.reader(io.StringIO(result_csv_text(ev))))
    assert rows[-1] == [] and rows[-2][0] == "harmonic mean over all machine types, sections, and domains"
