"""Scanning every dataset layout: synthetic trees from tests/helpers/trees.py and the real DCASE samples."""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

import pytest
from helpers.trees import make_tree, write_clip

from asdkit.data.layouts import LAYOUT_PATTERNS, detect, parse_attribute_tail, scan
from asdkit.data.manifest import LAYOUTS, Manifest
from asdkit.errors import DataError


def _by_name(manifest: Manifest) -> dict[str, object]:
    return {f"{c.machine}/{c.name}": c for c in manifest}


def _assert_sorted_absolute(manifest: Manifest) -> None:
    keys = [(c.machine, c.split, c.section, c.name) for c in manifest]
    assert keys == sorted(keys)
    assert all(c.path.is_absolute() and c.path.is_file() for c in manifest)


# --- each layout, auto-detected ----------------------------------------------------------------------


def test_dcase2020_tree(tmp_path: Path) -> None:
    root = make_tree(tmp_path, "dcase2020")
    assert detect(root) == "dcase2020"
    m = scan(root)
    assert m.layout == "dcase2020"
    assert m.root == root.absolute()
    assert m.machines() == ["fan", "valve"]
    assert m.sections() == ["00", "02"]
    for machine in ("fan", "valve"):
        sub = m.filter(machine=machine)
        assert len(sub.filter(split="train")) == 6
        assert len(sub.filter(split="test", label=1)) == 4
        assert len(sub.filter(split="test", label=0)) == 4
    assert {c.domain for c in m} == {"source"}
    assert {c.label for c in m.filter(split="train")} == {0}
    assert {c.group for c in m.filter(split="train")} == {""}
    assert m.groups() == ["fan_id_00", "fan_id_02", "valve_id_00", "valve_id_02"]
    clip = _by_name(m)["valve/anomaly_id_02_00000001.wav"]
    assert (clip.section, clip.split, clip.label, clip.group) == ("02", "test", 1, "valve_id_02")
    _assert_sorted_absolute(m)


def test_dcase2021_tree(tmp_path: Path) -> None:
    root = make_tree(tmp_path, "dcase2021")
    assert detect(root) == "dcase2021"
    m = scan(root)
    assert len(m) == 2 * 2 * (3 + 1 + 8)
    test = m.filter(split="test")
    assert Counter(c.domain for c in test) == {"source": 16, "target": 16}
    assert Counter(c.label for c in test) == {0: 16, 1: 16}
    assert len(m.filter(split="train", domain="target")) == 4
    assert m.groups() == [
        f"{machine}_section_{sec}_{dom}_test"
        for machine in ("fan", "valve")
        for sec in ("00", "01")
        for dom in ("source", "target")
    ]
    for c in test:
        assert c.group == f"{c.machine}_section_{c.section}_{c.domain}_test"
        assert c.path.parent.name == f"{c.domain}_test"
    assert {c.group for c in m.filter(split="train")} == {""}
    _assert_sorted_absolute(m)


def test_dcase2022_tree_with_attribute_tables(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path, "dcase2022", machines=("fan", "ToyCar", "slider", "bearing"), attributes_csv=True
    )
    assert detect(root) == "dcase2022"
    m = scan(root)
    assert m.machines() == ["ToyCar", "bearing", "fan", "slider"]
    assert len(m) == 4 * 2 * (3 + 1 + 8)
    assert m.groups() == [
        f"{mc}_section_{s}_test" for mc in ("ToyCar", "bearing", "fan", "slider") for s in ("00", "01")
    ]
    test = m.filter(split="test")
    assert Counter((c.domain, c.label) for c in test) == {
        ("source", 0): 16,
        ("source", 1): 16,
        ("target", 0): 16,
        ("target", 1): 16,
    }
    clips = _by_name(m)
    # name tail and the attributes_XX.csv table together ("rec" is only in the table)
    assert clips["fan/section_01_target_test_anomaly_0001_m-n_W.wav"].attributes == {"m-n": "W", "rec": "r01"}
    assert clips["ToyCar/section_00_source_train_normal_0002_car_C2_spd_34V_mic_1.wav"].attributes == {
        "car": "C2",
        "spd": "34V",
        "mic": "1",
        "rec": "r00",
    }
    assert clips["slider/section_00_source_test_normal_0000_vel_730_ac_0.11.wav"].attributes["ac"] == "0.11"
    assert clips["bearing/section_00_source_test_normal_0000_noAttribute.wav"].attributes == {"rec": "r00"}
    target = clips["fan/section_01_target_test_anomaly_0001_m-n_W.wav"]
    assert (target.section, target.domain, target.label, target.group) == (
        "01",
        "target",
        1,
        "fan_section_01_test",
    )
    _assert_sorted_absolute(m)


def test_dcase2022_without_table_uses_name_tail(tmp_path: Path) -> None:
    m = scan(make_tree(tmp_path, "dcase2022", machines=("valve",)))
    assert {tuple(sorted(c.attributes.items())) for c in m} == {(("pat", "01"),)}


@pytest.mark.parametrize(
    ("year", "groups", "test_domains"),
    [
        (2020, ["fan_id_03", "fan_id_04"], {"source"}),
        (
            2021,
            [f"fan_section_0{s}_{d}_test" for s in (3, 4) for d in ("source", "target")],
            {"source", "target"},
        ),
        (2022, ["fan_section_03_test", "fan_section_04_test"], {""}),
    ],
)
def test_eval_tree_without_ground_truth(
    tmp_path: Path, year: int, groups: list[str], test_domains: set[str]
) -> None:
    root = make_tree(tmp_path, "eval", year=year, machines=("fan",))
    assert detect(root) == "eval"
    m = scan(root)
    assert m.layout == "eval"
    test = m.filter(split="test")
    assert len(test) == 16
    assert {c.label for c in test} == {None}
    assert {c.domain for c in test} == test_domains
    assert m.groups() == groups
    assert {c.label for c in m.filter(split="train")} == {0}
    assert len(m.filter(split="train")) == (6 if year == 2020 else 8)
    assert all(c.name == c.path.name for c in m)


@pytest.mark.parametrize("year", [2020, 2021, 2022])
def test_eval_tree_labelled_by_its_ground_truth(tmp_path: Path, year: int) -> None:
    gt = tmp_path / "gt"
    root = make_tree(tmp_path / "data", "eval", year=year, ground_truth=gt)
    m = scan(root, ground_truth=gt)
    test = m.filter(split="test")
    assert len(test) == 32
    for c in test:
        index = int(re.findall(r"\d+", c.name)[-1])
        assert c.label == index % 2, c.name  # the tree's hidden truth: odd clips are anomalies
        if year == 2022:
            assert c.domain == ("target" if (index // 2) % 2 else "source")
            assert c.group == f"{c.machine}_section_{c.section}_test"
            assert c.attributes  # parsed from the full names in ground_truth_attributes
    assert all(c.name == c.path.name for c in test)  # anonymised names stay the names


# --- folder layout ------------------------------------------------------------------------------------


def test_folder_with_class_subfolders(tmp_path: Path) -> None:
    root = make_tree(tmp_path, "folder", machines=("my_pump",), single_machine=True)
    assert root.name == "my_pump"
    assert detect(root) == "folder"
    m = scan(root)
    assert m.machines() == ["my_pump"]
    assert Counter((c.split, c.label) for c in m) == {("train", 0): 3, ("test", 0): 2, ("test", 1): 2}
    assert {(c.section, c.domain) for c in m} == {("00", "source")}
    assert m.groups() == ["my_pump_section_00_test"]
    assert {c.name for c in m.filter(split="test", label=1)} == {"bad_000.wav", "bad_001.wav"}


@pytest.mark.parametrize("variant", ["labels_csv", "labels_csv_in_test"])
def test_folder_with_labels_csv(tmp_path: Path, variant: str) -> None:
    m = scan(make_tree(tmp_path, "folder", variant=variant, single_machine=True))
    labels = {c.name: c.label for c in m.filter(split="test")}
    assert labels == {f"clip_{i:03d}.wav": i % 2 for i in range(4)}


def test_folder_unlabelled_and_several_machines(tmp_path: Path) -> None:
    root = make_tree(tmp_path, "folder", variant="unlabelled")
    assert detect(root) == "folder"
    m = scan(root)
    assert m.machines() == ["fan", "valve"]
    assert {c.label for c in m.filter(split="test")} == {None}
    assert len(m.filter(split="train")) == 6


def test_folder_same_name_in_both_classes_stays_distinct(tmp_path: Path) -> None:
    for cls in ("normal", "anomaly"):
        write_clip(tmp_path / "box" / "test" / cls / "a.wav", anomaly=cls == "anomaly")
    write_clip(tmp_path / "box" / "train" / "t.wav")
    m = scan(tmp_path / "box")
    assert sorted(c.name for c in m.filter(split="test")) == ["anomaly/a.wav", "normal/a.wav"]


def test_folder_bad_label_names_file_and_line(tmp_path: Path) -> None:
    root = make_tree(tmp_path, "folder", variant="labels_csv", single_machine=True)
    (root / "labels.csv").write_text("file,label\nclip_000.wav,0\nclip_001.wav,maybe\n")
    with pytest.raises(DataError, match=r"labels\.csv, line 3: label 'maybe'"):
        scan(root)


# --- roots, forcing, filtering, errors ----------------------------------------------------------------


@pytest.mark.parametrize("layout", ["dcase2020", "dcase2021", "dcase2022"])
def test_single_machine_root(tmp_path: Path, layout: str) -> None:
    root = make_tree(tmp_path, layout, single_machine=True)
    assert root.name == "fan"
    assert detect(root) == layout
    m = scan(root)
    assert m.machines() == ["fan"]
    assert len(m) == len(scan(make_tree(tmp_path / "full", layout)).filter(machine="fan"))


def test_forced_layout(tmp_path: Path) -> None:
    root = make_tree(tmp_path, "dcase2022")
    # a 2022 tree read with 2021 rules: same clips, but one group per section and domain
    m = scan(root, layout="dcase2021")
    assert m.layout == "dcase2021"
    assert len(m) == len(scan(root))
    assert "fan_section_00_target_test" in m.groups()
    # eval rules take the dev-style training clips only
    assert {c.split for c in scan(root, layout="eval")} == {"train"}


def test_forced_layout_that_does_not_match(tmp_path: Path) -> None:
    root = make_tree(tmp_path, "dcase2022")
    with pytest.raises(DataError) as info:
        scan(root, layout="dcase2020")
    message = str(info.value)
    assert "\n" not in message
    assert "dcase2020" in message and "it looks like dcase2022" in message
    with pytest.raises(DataError, match="unknown layout 'dcase1999'"):
        scan(root, layout="dcase1999")


def test_unrecognised_tree_says_found_and_expected(tmp_path: Path) -> None:
    write_clip(tmp_path / "recordings" / "monday" / "take1.wav")
    write_clip(tmp_path / "recordings" / "monday" / "take2.wav")
    with pytest.raises(DataError) as info:
        detect(tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert "found 2 wav file(s), first: recordings/monday/take1.wav" in message
    assert "expected one of" in message
    for layout in LAYOUT_PATTERNS:
        assert f"{layout} (" in message
    with pytest.raises(DataError, match="not a recognised dataset layout"):
        scan(tmp_path)


def test_empty_tree_says_no_wav_files(tmp_path: Path) -> None:
    (tmp_path / "fan" / "train").mkdir(parents=True)
    (tmp_path / "fan" / "train" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="found no wav files; expected one of"):
        scan(tmp_path)


def test_missing_root_and_file_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "nowhere")) + ": no such directory"):
        scan(tmp_path / "nowhere")
    with pytest.raises(DataError, match="nowhere: no such directory"):
        detect(tmp_path / "nowhere")
    (tmp_path / "file.wav").write_bytes(b"")
    with pytest.raises(DataError, match="is a file"):
        scan(tmp_path / "file.wav")


def test_machines_filter_and_unknown_machine(tmp_path: Path) -> None:
    root = make_tree(tmp_path, "dcase2022", machines=("fan", "valve", "slider"))
    assert scan(root, machines=["valve", "slider"]).machines() == ["slider", "valve"]
    assert scan(root, machines="fan").machines() == ["fan"]
    with pytest.raises(DataError) as info:
        scan(root, machines=["fan", "pump"])
    assert "'pump'" in str(info.value)
    assert "available: fan, slider, valve" in str(info.value)


def test_machine_folder_without_wavs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = make_tree(tmp_path, "dcase2022", machines=("fan",))
    (root / "pump" / "train").mkdir(parents=True)
    with caplog.at_level(logging.WARNING):
        m = scan(root)
    assert m.machines() == ["fan"]
    assert "'pump' holds no wav files" in caplog.text
    with pytest.raises(DataError, match="'pump' holds no wav files"):
        scan(root, machines=["pump"])


def test_junk_is_ignored_and_odd_wavs_are_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clean = scan(make_tree(tmp_path / "clean", "dcase2022"))
    root = make_tree(tmp_path / "junk", "dcase2022", junk=True)
    write_clip(root / "fan" / "test" / "section_00_source_test_normal.wav")  # number missing
    with caplog.at_level(logging.WARNING, logger="asdkit.data.layouts"):
        m = scan(root)
    assert len(m) == len(clean)
    assert not any(c.path.name.startswith(".") for c in m)
    assert "skipped 3 wav file(s) that match no dcase2022 pattern" in caplog.text


def test_layout_names_match_manifest() -> None:
    assert tuple(LAYOUT_PATTERNS) == LAYOUTS


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        ("car_C2_spd_34V_mic_1", {"car": "C2", "spd": "34V", "mic": "1"}),
        ("m-n_W", {"m-n": "W"}),
        ("vel_730_ac_0.11", {"vel": "730", "ac": "0.11"}),
        ("v1pat_05_v2pat_05", {"v1pat": "05", "v2pat": "05"}),
        ("ac_0.03_", {"ac": "0.03"}),
        ("noAttribute", {}),
        ("", {}),
        (None, {}),
        ("spd1000_BckgC", {"spd": "1000", "BckgC": ""}),
        ("weight15_BckgF", {"weight": "15", "BckgF": ""}),
        ("loose", {"loose": ""}),
        ("__", {}),
    ],
)
def test_parse_attribute_tail(tail: str | None, expected: dict[str, str]) -> None:
    assert parse_attribute_tail(tail) == expected


# --- real DCASE samples -------------------------------------------------------------------------------


@pytest.mark.shared
def test_real_dcase2020_dev_sample(shared_data: Path) -> None:
    root = shared_data / "dcase2020_dev_sample"
    assert detect(root) == "dcase2020"
    m = scan(root)
    assert len(m) == 127
    assert m.machines() == ["ToyCar", "ToyConveyor", "fan", "pump", "slider", "valve"]
    assert {c.split for c in m} == {"test"}
    for c in m:
        assert c.label == (1 if c.name.startswith("anomaly_") else 0)
        assert c.group == f"{c.machine}_id_{c.section}"
        assert c.path.parent.parent.name == c.machine
    assert m.sections("ToyConveyor") == ["01", "02", "03"]
    assert len(m.filter(label=1)) == sum(1 for p in root.rglob("anomaly_*.wav"))


@pytest.mark.shared
def test_real_dcase2023_dev_sample(shared_data: Path) -> None:
    root = shared_data / "dcase2023_dev_sample"
    assert detect(root) == "dcase2022"
    m = scan(root)
    assert len(m) == 26
    assert m.machines() == ["ToyCar", "ToyTrain", "bearing", "fan", "gearbox", "slider", "valve"]
    assert {c.domain for c in m.filter(split="test")} == {"source", "target"}
    assert len(m.filter(split="train")) == 14
    clips = _by_name(m)
    assert clips["ToyTrain/section_00_target_test_anomaly_0015_car_A2_spd_6_mic_2.wav"].attributes == {
        "car": "A2",
        "spd": "6",
        "mic": "2",
    }
    assert clips["fan/section_00_source_test_anomaly_0022_m-n_W.wav"].attributes == {"m-n": "W"}
    assert clips["gearbox/section_00_source_train_normal_0073_volt_1.5_wt_0.wav"].attributes == {
        "volt": "1.5",
        "wt": "0",
    }
    assert clips["slider/section_00_target_test_normal_0013_vel_620_ac_0.08.wav"].domain == "target"
    assert m.groups() == [f"{mc}_section_00_test" for mc in m.machines() if mc != "valve"]
    one = scan(root / "bearing")
    assert one.machines() == ["bearing"] and len(one) == 4


@pytest.mark.shared
def test_real_mimii_raw_tree_is_recognised(shared_data: Path) -> None:
    assert detect(shared_data / "mimii_raw_sample") == "mimii"
    assert detect(shared_data / "mimii_raw_sample" / "0_dB_pump") == "mimii"


@pytest.mark.parametrize(
    ("name", "section"),
    [
        ("section_01_source_test_normal_0001_car_A1.wav", "01"),
        ("section_02_0003.wav", "02"),
        ("normal_id_04_00000001.wav", "04"),
        ("id_06_00000001.wav", "06"),
        ("recording_2026-11-22.wav", None),
        ("my_section_7.wav", None),
    ],
)
def test_section_from_loose_file_names(name, section):
    from asdkit.data.layouts.common import section_from_name

    assert section_from_name(name) == section
