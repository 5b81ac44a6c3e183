"""The official metrics: hand-checked cases always; every published result.csv when ../shared/data exists."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from asdkit.errors import DataError
from asdkit.metrics import (
    EPS,
    ScoreRecord,
    ScoreTable,
    evaluate,
    format_table,
    hmean,
    jackknife,
    normalize_scheme,
    pauc,
    precision_recall_f1,
    result_csv_text,
    write_result_csv,
)
from asdkit.metrics import auc as auc_metric
from asdkit.reports.submission import read_scores_dir

# ------------------------------------------------------------------------------------------ helpers


def rec(
    machine: str, section: str, domain: str, label: int, score: float, decision: int | None = None
) -> ScoreRecord:
    return ScoreRecord(machine, section, domain, label, score, decision, name=f"{domain}_{label}_{score}")


def simple_section(
    machine: str, section: str, shift: float = 0.0, domain: str = "source"
) -> list[ScoreRecord]:
    """Four normals and two anomalies with a hand-checkable ranking (AUC 7/8)."""
    normals = [0.1, 0.2, 0.3, 0.5]
    anomalies = [0.4, 0.9]
    return [rec(machine, section, domain, 0, s + shift) for s in normals] + [
        rec(machine, section, domain, 1, s + shift) for s in anomalies
    ]


# ------------------------------------------------------------------------------------------ metrics


def test_auc_and_pauc_on_a_hand_checked_case():
    y = [0, 0, 1, 1]
    s = [0.1, 0.4, 0.35, 0.8]
    # 3 of the 4 (anomaly, normal) pairs are ordered correctly.
    assert auc_metric(y, s) == pytest.approx(0.75, abs=1e-12)
    # ROC up to FPR 0.1 sits at TPR 0.5: raw area 0.05; McClish: 0.5 * (1 + (0.05 - 0.005) / (0.1 - 0.005)).
    assert pauc(y, s) == pytest.approx(14 / 19, abs=1e-12)


def test_pauc_is_mcclish_standardised_not_the_raw_area():
    y = [0, 0, 0, 1, 1]
    assert pauc(y, [0.1, 0.2, 0.3, 0.8, 0.9]) == pytest.approx(1.0)  # raw area would be 0.1
    assert pauc(y, [0.8, 0.9, 0.7, 0.1, 0.2]) == pytest.approx(9 / 19)  # raw area 0 -> (1 - 0.005/0.095) / 2


def test_auc_of_a_set_with_one_class_names_the_set():
    with pytest.raises(DataError, match=r"fan section 00.*no anomalous clip"):
        auc_metric([0, 0, 0], [0.1, 0.2, 0.3], what="fan section 00")


def test_precision_recall_f1_by_hand_and_zero_division():
    y = [1, 1, 1, 0, 0, 0, 0]
    d = [1, 1, 0, 1, 0, 0, 0]  # tp 2, fp 1, fn 1
    p, r, f = precision_recall_f1(y, d)
    assert (p, r) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert f == pytest.approx(2 / 3)
    # A system that never says "anomalous": precision 0/0 and F1 0/0 are 0.0, as in the ToyTrain fixture.
    assert precision_recall_f1(y, [0] * 7) == (0.0, 0.0, 0.0)


def test_hmean_floors_at_machine_epsilon():
    assert EPS == 2.220446049250313e-16
    assert hmean([0.0, 0.0]) == EPS
    assert hmean([0.5, 0.25]) == pytest.approx(1 / 3)
    # Three zero precisions among 21 sections (the 2022 fixture's ToyTrain): about 21/3 * eps.
    values = [0.0] * 3 + [0.5] * 18
    got = hmean(values)
    assert got == pytest.approx(21 / (3 / EPS + 36), rel=1e-15)
    assert got == pytest.approx(7 * EPS, rel=1e-14)
    assert abs(got - 1.554312234475214e-15) < 1e-9
    assert got == pytest.approx(float(scipy.stats.hmean(np.maximum(values, EPS))), rel=1e-14)


def test_normalize_scheme_maps_later_years_to_2022():
    assert normalize_scheme("dcase2024") == "dcase2022"
    assert normalize_scheme("2021") == "dcase2021"
    with pytest.raises(ValueError, match="unknown evaluation scheme"):
        normalize_scheme("dcase2019")


# ------------------------------------------------------------------------------------------ schemes


def test_2022_source_and_target_auc_use_all_anomalies_of_the_section():
    records = [
        rec("fan", "00", "source", 0, 0.1, 0),
        rec("fan", "00", "source", 0, 0.4, 1),
        rec("fan", "00", "target", 0, 0.5, 1),
        rec("fan", "00", "target", 0, 0.6, 0),
        rec("fan", "00", "source", 1, 0.3, 0),
        rec("fan", "00", "target", 1, 0.7, 1),
    ]
    ev = evaluate(ScoreTable(records, "dcase2022"))
    row = ev.rows[0]
    # source normals {0.1, 0.4} vs all anomalies {0.3, 0.7}: 3 of 4 pairs (source anomaly alone: 1 of 2).
    assert row["AUC (source)"] == pytest.approx(0.75)
    # target normals {0.5, 0.6} vs all anomalies {0.3, 0.7}: 2 of 4 pairs (target anomaly alone: 2 of 2).
    assert row["AUC (target)"] == pytest.approx(0.5)
    y = [r.label for r in records]
    s = [r.score for r in records]
    assert row["pAUC"] == pytest.approx(pauc(y, s))  # every clip of the section
    # Decisions per domain, on that domain's clips: source tp 0 fp 1 fn 1; target tp 1 fp 1 fn 0.
    assert row["precision (source)"] == 0.0 and row["recall (source)"] == 0.0
    assert row["precision (target)"] == pytest.approx(0.5) and row["recall (target)"] == 1.0
    assert row["F1 score (target)"] == pytest.approx(2 / 3)
    assert ev.columns[:3] == ("AUC (source)", "AUC (target)", "pAUC")
    assert ev.jackknife is None  # one section: no spread to estimate
    assert ev.official_score == pytest.approx(hmean([0.75, 0.5, row["pAUC"]]))


def test_2022_official_score_is_the_hmean_over_all_sections_values():
    records = []
    for machine, shift in (("fan", 0.0), ("valve", 0.05)):
        for section in ("00", "01"):
            records += simple_section(machine, section, shift, "source")
            records += simple_section(machine, section, shift, "target")
    ev = evaluate(ScoreTable(records, "dcase2022"))
    assert [(r.machine, r.section) for r in ev.rows] == [
        ("fan", "00"),
        ("fan", "01"),
        ("valve", "00"),
        ("valve", "01"),
    ]
    values = [r[c] for r in ev.rows for c in ("AUC (source)", "AUC (target)", "pAUC")]
    assert ev.official_score == pytest.approx(float(scipy.stats.hmean(values)), rel=1e-12)
    assert ev.overall_amean["pAUC"] == pytest.approx(np.mean([r["pAUC"] for r in ev.rows]))
    assert "precision (source)" not in ev.columns  # no decisions, no decision columns
    assert ev.jackknife is not None and ev.jackknife.n_units == 4
    assert ev.jackknife.units == (("fan", "00"), ("fan", "01"), ("valve", "00"), ("valve", "01"))


def test_2021_rows_list_source_sets_then_target_sets_and_hmean_everything():
    records = []
    for section, shift in (("00", 0.0), ("01", 0.3)):
        for domain in ("source", "target"):
            records += simple_section("fan", section, shift, domain)
    # make the 01 target set worse so the means are not all equal
    records.append(rec("fan", "01", "target", 0, 5.0))
    ev = evaluate(ScoreTable(records, "dcase2021"))
    assert [(r.section, r.domain) for r in ev.rows] == [
        ("00", "source"),
        ("01", "source"),
        ("00", "target"),
        ("01", "target"),
    ]
    assert ev.rows[0]["AUC"] == pytest.approx(7 / 8)
    assert ev.rows[3]["AUC"] == pytest.approx(7 / 10)
    aucs = [r["AUC"] for r in ev.rows]
    m = ev.machine("fan")
    assert m.amean["AUC"] == pytest.approx(np.mean(aucs))
    assert m.hmean["AUC"] == pytest.approx(float(scipy.stats.hmean(aucs)))
    everything = [r[c] for r in ev.rows for c in ("AUC", "pAUC")]
    assert ev.official_score == pytest.approx(float(scipy.stats.hmean(everything)))
    # A section's two domains are one unit, so these are 2 sections: too few for an interval.
    assert ev.jackknife is None


def test_2020_average_row_and_no_overall_rows():
    records = simple_section("fan", "00") + simple_section("fan", "02", 0.1) + simple_section("pump", "00")
    records[0] = rec("fan", "00", "source", 0, 0.95)  # fan id 00: 5 of 8 pairs
    ev = evaluate(ScoreTable(records, "dcase2020"))
    fan = ev.machine("fan")
    assert [r.section for r in fan.rows] == ["00", "02"]
    assert fan.rows[0]["AUC"] == pytest.approx(5 / 8)
    assert fan.amean["AUC"] == pytest.approx((5 / 8 + 7 / 8) / 2)
    text = result_csv_text(ev)
    assert text.splitlines()[:2] == ["fan", "id,AUC,pAUC"]
    assert "Average," in text and "harmonic" not in text and "over all" not in text
    assert text.endswith("\n\n")


def test_result_csv_2022_layout(tmp_path):
    records = []
    for section in ("00", "01"):
        for domain in ("source", "target"):
            records += [
                rec("ToyCar", section, domain, r.label, r.score, int(r.score > 0.35))
                for r in simple_section("ToyCar", section, 0.0, domain)
            ]
    ev = evaluate(ScoreTable(records, "dcase2022"))
    path = write_result_csv(ev, tmp_path / "out" / "result.csv")
    text = path.read_text()
    lines = text.split("\n")
    header = ",".join(ev.columns)
    assert lines[0] == "ToyCar"
    assert lines[1] == "section," + header
    assert lines[2].startswith("00,") and lines[3].startswith("01,")
    assert lines[4].startswith("arithmetic mean,") and lines[5].startswith("harmonic mean,")
    assert lines[6] == ""
    assert lines[7] == "," + header
    assert lines[8].startswith('"arithmetic mean over all machine types, sections, and domains",')
    assert lines[9].startswith('"harmonic mean over all machine types, sections, and domains",')
    assert lines[10:] == ["", ""]  # a trailing blank line, as the official files end
    assert "\r" not in text
    cells = next(csv.reader(io.StringIO(lines[2])))
    assert float(cells[1]) == ev.rows[0]["AUC (source)"]  # full precision: repr round-trips
    assert list(tmp_path.joinpath("out").iterdir()) == [path]  # atomic write left no temp file


def test_format_table_shows_rows_means_and_interval():
    records = []
    for section in ("00", "01", "02"):
        for domain in ("source", "target"):
            records += simple_section("fan", section, 0.01 * int(section), domain)
    ev = evaluate(ScoreTable(records, "dcase2022"))
    text = format_table(ev)
    assert "AUC (source)" in text and "fan hmean" in text
    assert f"{ev.official_score:.4f}" in text
    assert "95% jackknife interval" in text


def test_evaluate_errors():
    with pytest.raises(ValueError, match="no scheme"):
        evaluate(ScoreTable(simple_section("fan", "00")))
    with pytest.raises(DataError, match="empty"):
        evaluate(ScoreTable([], "dcase2022"))
    only_normals = [rec("fan", "00", "source", 0, 0.1), rec("fan", "00", "source", 0, 0.2)]
    with pytest.raises(DataError, match=r"fan id 00: .*no anomalous clip"):
        evaluate(ScoreTable(only_normals, "dcase2020"))
    partial = [*simple_section("fan", "00"), rec("fan", "00", "source", 1, 0.7, 1)]
    with pytest.raises(DataError, match="decisions are missing"):
        evaluate(ScoreTable(partial, "dcase2021"))
    no_target = simple_section("fan", "00")
    with pytest.raises(DataError, match="target normals"):
        evaluate(ScoreTable(no_target, "dcase2022"))


# ------------------------------------------------------------------------------------------ jackknife


def test_jackknife_of_the_mean_is_the_standard_error_of_the_mean():
    data = [1.0, 2.0, 4.0, 7.0]
    jk = jackknife([[x] for x in data], lambda v: float(np.mean(v)))
    assert jk is not None
    # Hand: mean 3.5, squared deviations 6.25 + 2.25 + 0.25 + 12.25 = 21, s^2 = 7, SE = sqrt(7 / 4).
    assert jk.estimate == pytest.approx(3.5)
    assert jk.se == pytest.approx(math.sqrt(7 / 4), rel=1e-12)
    assert jk.pseudo_values == pytest.approx(tuple(data))  # for the mean, pseudo-values are the data
    assert jk.bias_corrected == pytest.approx(3.5)
    t = 3.182446305284263  # t(0.975, 3)
    assert jk.low == pytest.approx(3.5 - t * math.sqrt(7 / 4), rel=1e-9)
    assert jk.high == pytest.approx(3.5 + t * math.sqrt(7 / 4), rel=1e-9)
    assert jk.n_units == 4 and jk.confidence == 0.95


def test_jackknife_deletes_whole_units():
    # Units of different sizes: the leave-one-out statistic is taken over the pooled values of the rest.
    units = [[1.0, 3.0], [2.0], [6.0, 6.0, 6.0]]
    jk = jackknife(units, lambda v: float(np.mean(v)), units=[("a", "00"), ("a", "01"), ("b", "00")])
    assert jk is not None
    theta = np.mean([1, 3, 2, 6, 6, 6])
    loo = np.array([np.mean([2, 6, 6, 6]), np.mean([1, 3, 6, 6, 6]), np.mean([1, 3, 2])])
    assert jk.pseudo_values == pytest.approx(tuple(3 * theta - 2 * loo))
    assert jk.se == pytest.approx(math.sqrt(2 / 3 * np.sum((loo - loo.mean()) ** 2)))
    assert jk.units[2] == ("b", "00")


def test_jackknife_needs_two_units():
    assert jackknife([[0.5, 0.6]], lambda v: float(np.mean(v))) is None
    assert jackknife([], lambda v: float(np.mean(v))) is None


def test_evaluation_jackknife_matches_a_manual_leave_one_section_out():
    records = []
    for i, section in enumerate(("00", "01", "02")):
        for domain in ("source", "target"):
            sec = simple_section("fan", section, 0.0, domain)
            if i == 1 and domain == "target":
                sec.append(rec("fan", section, domain, 0, 0.95))
            records += sec
    ev = evaluate(ScoreTable(records, "dcase2022"))
    per_section = [[r["AUC (source)"], r["AUC (target)"], r["pAUC"]] for r in ev.rows]
    loo = np.array([hmean(per_section[:i] + per_section[i + 1 :]) for i in range(3)])
    se = math.sqrt(2 / 3 * float(np.sum((loo - loo.mean()) ** 2)))
    assert ev.jackknife is not None
    assert ev.jackknife.estimate == ev.official_score
    assert ev.jackknife.se == pytest.approx(se, rel=1e-12)
    assert ev.jackknife.low < ev.official_score < ev.jackknife.high


# ------------------------------------------------------------------------------------------ official fixtures


def _fixture_folders() -> list[str]:
    """Folder names under metric_fixtures, listed at collection time (same lookup as conftest)."""
    root = Path(
        os.environ.get("ASDKIT_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data")
    )
    folder = root / "metric_fixtures"
    names = (
        sorted(p.name for p in folder.iterdir() if (p / "result" / "result.csv").is_file())
        if folder.is_dir()
        else []
    )
    return names or ["<absent>"]


def _compare_result_csv(ours: str, official: str) -> float:
    """Same rows, same labels, numbers within 1e-9 (asserted); returns the largest difference."""
    a = list(csv.reader(io.StringIO(ours)))
    b = list(csv.reader(io.StringIO(official)))
    assert len(a) == len(b), f"{len(a)} rows, the official file has {len(b)}"
    worst = 0.0
    for i, (row_a, row_b) in enumerate(zip(a, b, strict=True)):
        assert len(row_a) == len(row_b), f"row {i + 1}: {row_a} vs {row_b}"
        for cell_a, cell_b in zip(row_a, row_b, strict=True):
            try:
                expected = float(cell_b)
            except ValueError:
                assert cell_a == cell_b, f"row {i + 1}: label {cell_a!r} vs {cell_b!r}"
                continue
            if cell_b.isdigit():  # a section/id label such as "00"
                assert cell_a == cell_b, f"row {i + 1}: {cell_a!r} vs {cell_b!r}"
            diff = abs(float(cell_a) - expected)
            assert diff <= 1e-9, f"row {i + 1} ({row_b[0]}): {cell_a} vs {cell_b}"
            worst = max(worst, diff)
    return worst


@pytest.mark.shared
@pytest.mark.parametrize("folder", _fixture_folders())
def test_official_result_csv_is_reproduced(shared_data, tmp_path, folder):
    result_dir = shared_data / "metric_fixtures" / folder / "result"
    if not result_dir.is_dir():
        pytest.skip(f"no metric fixture {folder}")
    official = (result_dir / "result.csv").read_text()
    rows = list(csv.reader(io.StringIO(official)))
    # Machine blocks start with a one-cell row at the top or after a blank line. Some runs left score
    # files of machine types that their result.csv does not list, so evaluate only the listed ones.
    machines = [r[0] for i, r in enumerate(rows) if len(r) == 1 and r[0] and (i == 0 or rows[i - 1] == [])]
    assert machines
    table = read_scores_dir(result_dir).filter(machines=machines)
    assert table.machines() == sorted(machines)
    ev = evaluate(table)
    out = write_result_csv(ev, tmp_path / "result.csv")
    worst = _compare_result_csv(out.read_text(), official)
    assert worst <= 1e-9
    # The official score is the hmean (2021+) of exactly the AUC/pAUC values in the file.
    if ev.scheme != "dcase2020":
        base = ev.columns[:3] if ev.scheme == "dcase2022" else ev.columns[:2]
        values = [r[c] for r in ev.rows for c in base]
        assert ev.official_score == pytest.approx(float(scipy.stats.hmean(values)), rel=1e-12)
        assert ev.jackknife is not None
        assert ev.jackknife.n_units == len({(r.machine, r.section) for r in ev.rows})
        assert ev.jackknife.low < ev.official_score < ev.jackknife.high


@pytest.mark.shared
def test_2022_fixture_overall_hmean_of_epsilon_floored_zeros(shared_data):
    """The 1.55e-15 in the 2022 fixture: 3 of 21 sections (ToyTrain) have precision 0 -> about 21/3 * eps."""
    result_dir = shared_data / "metric_fixtures" / "returncode13_anomaly_detection_baseline_ae" / "result"
    if not result_dir.is_dir():
        pytest.skip("2022 metric fixture absent")
    ev = evaluate(read_scores_dir(result_dir))
    assert ev.machine("ToyTrain").hmean["precision (source)"] == EPS
    zeros = sum(r["precision (source)"] == 0.0 for r in ev.rows)
    assert zeros == 3 and len(ev.rows) == 21
    assert ev.overall_hmean["precision (source)"] == pytest.approx(7 * EPS, rel=1e-13)
    assert ev.overall_hmean["precision (source)"] == pytest.approx(1.554312234475215e-15, rel=1e-9)
