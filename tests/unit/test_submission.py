"""Submission files: writing anomaly_score/decision_result files and reading a folder of them back."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from asdkit.data.manifest import Clip
from asdkit.errors import DataError
from asdkit.metrics import ScoreTable, evaluate
from asdkit.reports.submission import (
    label_from_name,
    parse_score_file_name,
    read_scores_dir,
    score_group,
    write_scores,
)


@dataclass
class FakeGroundTruth:
    """Anything with labels and domains keyed by (machine, clip name) will do."""

    labels: dict[tuple[str, str], int] = field(default_factory=dict)
    domains: dict[tuple[str, str], str] = field(default_factory=dict)


def clip(
    name: str, machine: str, section: str, group: str, label: int | None, domain: str = "source"
) -> Clip:
    return Clip(
        path=Path("/nowhere") / name,
        machine=machine,
        section=section,
        domain=domain,
        label=label,
        name=name,
        group=group,
    )


def clips_2020() -> list[Clip]:
    out = []
    for machine in ("fan", "pump"):
        for sid in ("00", "02"):
            g = score_group("dcase2020", machine, sid)
            out += [clip(f"normal_id_{sid}_{i:08d}.wav", machine, sid, g, 0) for i in range(3)]
            out += [clip(f"anomaly_id_{sid}_{i:08d}.wav", machine, sid, g, 1) for i in range(2)]
    return out


def clips_2021() -> list[Clip]:
    out = []
    for sec in ("00", "01"):
        for dom in ("source", "target"):
            g = score_group("dcase2021", "ToyCar", sec, dom)
            out += [
                clip(f"section_{sec}_{dom}_test_normal_{i:04d}.wav", "ToyCar", sec, g, 0, dom)
                for i in range(3)
            ]
            out += [
                clip(f"section_{sec}_{dom}_test_anomaly_{i:04d}.wav", "ToyCar", sec, g, 1, dom)
                for i in range(2)
            ]
    return out


def clips_2022() -> list[Clip]:
    out = []
    for machine in ("ToyTrain", "bearing"):
        for sec in ("00", "01"):
            g = score_group("dcase2022", machine, sec)
            for dom in ("source", "target"):
                out += [
                    clip(f"section_{sec}_{dom}_test_normal_{i:04d}_vel_{i}.wav", machine, sec, g, 0, dom)
                    for i in range(3)
                ]
                out += [
                    clip(f"section_{sec}_{dom}_test_anomaly_{i:04d}_vel_{i}.wav", machine, sec, g, 1, dom)
                    for i in range(2)
                ]
    return out


@pytest.mark.parametrize(
    ("scheme", "make", "example"),
    [
        ("dcase2020", clips_2020, "anomaly_score_fan_id_00.csv"),
        ("dcase2021", clips_2021, "anomaly_score_ToyCar_section_01_target_test.csv"),
        ("dcase2022", clips_2022, "anomaly_score_bearing_section_01_test.csv"),
    ],
)
def test_write_then_read_round_trip(tmp_path, scheme, make, example):
    clips = make()
    rng = np.random.default_rng(0)
    scores = rng.normal(size=len(clips)) + np.array([c.label for c in clips])
    decisions = (scores > 0.5).astype(int)
    written = write_scores(tmp_path, clips, scores, decisions)
    groups = sorted({c.group for c in clips})
    assert [p.name for p in written] == [
        name for g in groups for name in (f"anomaly_score_{g}.csv", f"decision_result_{g}.csv")
    ]
    assert (tmp_path / example).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)  # no temp files

    # file,score rows, no header, the full-precision score text
    first_group = [i for i, c in enumerate(clips) if c.group == groups[0]]
    lines = (tmp_path / f"anomaly_score_{groups[0]}.csv").read_text().split("\n")
    assert lines[-1] == ""
    assert lines[0] == f"{clips[first_group[0]].name},{float(scores[first_group[0]])!r}"
    assert len(lines) - 1 == len(first_group)

    table = read_scores_dir(tmp_path)
    assert table.scheme == scheme
    assert len(table) == len(clips)
    by_name = {(r.machine, r.name, r.group): r for r in table}
    for c, s, d in zip(clips, scores, decisions, strict=True):
        r = by_name[(c.machine, c.name, c.group)]
        assert (r.section, r.domain, r.label, r.decision) == (c.section, c.domain, c.label, int(d))
        assert r.score == float(s)  # bit-exact round trip
    ev = evaluate(table)
    assert ev.scheme == scheme
    assert ev.machine_names == sorted({c.machine for c in clips})


def test_scores_are_written_with_full_precision(tmp_path):
    c = [clip("normal_id_00_00000000.wav", "fan", "00", "fan_id_00", 0)]
    write_scores(tmp_path, c, np.array([0.1 + 0.2]))
    assert (
        tmp_path / "anomaly_score_fan_id_00.csv"
    ).read_text() == "normal_id_00_00000000.wav,0.30000000000000004\n"
    assert not (tmp_path / "decision_result_fan_id_00.csv").exists()


def test_write_scores_rejects_bad_input(tmp_path):
    good = clip("normal_id_00_00000000.wav", "fan", "00", "fan_id_00", 0)
    with pytest.raises(ValueError, match="no submission group"):
        write_scores(tmp_path, [clip("x.wav", "fan", "00", "", 0)], [0.5])
    with pytest.raises(ValueError, match="1 clips but 2 scores"):
        write_scores(tmp_path, [good], [0.5, 0.6])
    with pytest.raises(ValueError, match="non-finite"):
        write_scores(tmp_path, [good], [float("nan")])
    with pytest.raises(ValueError, match="expected 0 or 1"):
        write_scores(tmp_path, [good], [0.5], [2])
    assert list(tmp_path.iterdir()) == []


def test_file_name_patterns():
    a = parse_score_file_name("anomaly_score_fan_id_04.csv")
    assert a is not None and (a.scheme, a.machine, a.section, a.domain) == ("dcase2020", "fan", "04", None)
    b = parse_score_file_name("anomaly_score_ToyCar_section_02_target_test.csv")
    assert b is not None and (b.scheme, b.machine, b.section, b.domain) == (
        "dcase2021",
        "ToyCar",
        "02",
        "target",
    )
    c = parse_score_file_name("anomaly_score_3DPrinter_section_00_test.csv")
    assert c is not None and (c.scheme, c.machine, c.section, c.group) == (
        "dcase2022",
        "3DPrinter",
        "00",
        "3DPrinter_section_00_test",
    )
    assert parse_score_file_name("anomaly_score_fan.csv") is None
    assert parse_score_file_name("result.csv") is None
    assert label_from_name("section_00_source_test_anomaly_0001_noAttr.wav") == 1
    assert label_from_name("section_00_0001.wav") is None


def test_empty_missing_and_unknown_folders(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_scores_dir(tmp_path / "nope")
    (tmp_path / "result.csv").write_text("x\n")
    with pytest.raises(
        DataError, match=r"no score files in .*anomaly_score_<machine>_section_<XX>_test\.csv"
    ) as e:
        read_scores_dir(tmp_path)
    assert str(tmp_path) in str(e.value) and "\n" not in str(e.value)
    (tmp_path / "anomaly_score_fan.csv").write_text("normal_0.wav,0.5\n")
    with pytest.raises(DataError, match=r"unrecognised score file name anomaly_score_fan\.csv"):
        read_scores_dir(tmp_path)


def test_mixed_schemes_are_refused(tmp_path):
    write_scores(tmp_path, clips_2020()[:5], np.arange(5.0))
    write_scores(tmp_path, clips_2022()[:10], np.arange(10.0))
    with pytest.raises(DataError, match="mixes"):
        read_scores_dir(tmp_path)


def test_unlabelled_clip_names_the_clip_and_the_file(tmp_path):
    anon = [clip(f"section_00_{i:04d}.wav", "fan", "00", "fan_section_00_test", None) for i in range(4)]
    write_scores(tmp_path, anon, [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(DataError, match=r"section_00_0000\.wav in anomaly_score_fan_section_00_test\.csv"):
        read_scores_dir(tmp_path)

    gt = FakeGroundTruth(labels={("fan", c.name): i % 2 for i, c in enumerate(anon)})
    with pytest.raises(DataError, match=r"domain.*section_00_0000\.wav"):
        read_scores_dir(tmp_path, ground_truth=gt)

    gt.domains = {("fan", c.name): ("source" if i < 2 else "target") for i, c in enumerate(anon)}
    table = read_scores_dir(tmp_path, ground_truth=gt)
    assert [(r.label, r.domain) for r in table] == [
        (0, "source"),
        (1, "source"),
        (0, "target"),
        (1, "target"),
    ]
    row = evaluate(table).rows[0]
    # source normals {0.1} + all anomalies {0.2, 0.4}; target normals {0.3} + all anomalies
    assert row["AUC (source)"] == 1.0 and row["AUC (target)"] == 0.5


def test_ground_truth_wins_over_the_name(tmp_path):
    c = [
        clip("normal_id_00_00000000.wav", "fan", "00", "fan_id_00", 0),
        clip("anomaly_id_00_00000000.wav", "fan", "00", "fan_id_00", 1),
    ]
    write_scores(tmp_path, c, [0.1, 0.9])
    gt = FakeGroundTruth(
        labels={("fan", "normal_id_00_00000000.wav"): 1, ("fan", "anomaly_id_00_00000000.wav"): 0}
    )
    assert [r.label for r in read_scores_dir(tmp_path, gt)] == [1, 0]


def test_decision_file_missing_a_clip(tmp_path):
    clips = clips_2020()[:5]
    write_scores(tmp_path, clips, np.arange(5.0), [0, 0, 1, 1, 1])
    path = tmp_path / "decision_result_fan_id_00.csv"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(
        DataError,
        match=r"decision_result_fan_id_00\.csv has no decision for clip anomaly_id_00_00000001\.wav",
    ):
        read_scores_dir(tmp_path)


def test_bad_score_line(tmp_path):
    (tmp_path / "anomaly_score_fan_id_00.csv").write_text(
        "normal_id_00_0.wav,0.5\nanomaly_id_00_0.wav,oops\n"
    )
    with pytest.raises(DataError, match="line 2: score 'oops' is not a number"):
        read_scores_dir(tmp_path)


def test_from_clips_needs_labels():
    with pytest.raises(DataError, match=r"section_00_0000\.wav"):
        ScoreTable.from_clips([clip("section_00_0000.wav", "fan", "00", "g", None)], [0.5])
    table = ScoreTable.from_clips(clips_2022(), np.arange(len(clips_2022()), dtype=float), scheme="dcase2024")
    assert table.scheme == "dcase2022" and table.machines() == ["ToyTrain", "bearing"]


def test_ground_truth_module_is_not_imported():
    code = "import sys, asdkit.reports.submission; print('asdkit.data.ground_truth' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.shared
def test_reads_the_official_2022_fixture(shared_data):
    folder = shared_data / "metric_fixtures" / "returncode13_anomaly_detection_baseline_ae" / "result"
    if not folder.is_dir():
        pytest.skip("2022 metric fixture absent")
    table = read_scores_dir(folder)
    assert table.scheme == "dcase2022"
    assert len(table.machines()) == 7 and all(
        table.sections(m) == ["00", "01", "02"] for m in table.machines()
    )
    assert table.has_decisions
    assert {r.domain for r in table} == {"source", "target"}
    first = next(r for r in table if r.group == "ToyCar_section_00_test")
    assert (
        first.name.startswith("section_00_source_test_normal_0000")
        and first.label == 0
        and first.decision == 1
    )
