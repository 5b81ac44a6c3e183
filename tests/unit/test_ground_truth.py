"""Reading the official ground-truth lists (every year's format) and labelling evaluation manifests."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
from helpers.trees import make_tree, write_clip

from asdkit.data.ground_truth import GroundTruth, load_ground_truth
from asdkit.data.layouts import scan
from asdkit.data.manifest import Clip, Manifest
from asdkit.errors import DataError

GT = "evaluator_ground_truth"


def _write(path: Path, text: str, crlf: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", "\r\n" if crlf else "\n").encode())
    return path


def _pairs(path: Path) -> dict[str, str]:
    """A two-column official list read plainly, to compare against."""
    with open(path, newline="") as f:
        return {row[0]: row[1] for row in csv.reader(f)}


# --- each format, hand-written ------------------------------------------------------------------------


def test_2021_per_section_and_domain(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "ground_truth_ToyCar_section_03_target_test.csv",
        "section_03_target_test_0000.wav,1\nsection_03_target_test_0001.wav,0\n",
    )
    gt = load_ground_truth(path)
    assert gt.labels == {
        ("ToyCar", "section_03_target_test_0000.wav"): 1,
        ("ToyCar", "section_03_target_test_0001.wav"): 0,
    }
    assert set(gt.domains.values()) == {"target"}
    assert gt.sources == [path]


def test_2022_labels_domains_and_attribute_tables(tmp_path: Path) -> None:
    _write(
        tmp_path / "ground_truth_data" / "ground_truth_fan_section_03_test.csv",
        "section_03_0000.wav,0\nsection_03_0001.wav,1\n",
    )
    _write(
        tmp_path / "ground_truth_domain" / "ground_truth_fan_section_03_test.csv",
        "section_03_0000.wav,1\nsection_03_0001.wav,0\n",
    )
    _write(
        tmp_path / "ground_truth_attributes" / "valve" / "attributes_05.csv",
        "file_name,d1p,d1v,d2p,d2v,file_name_with_full_attributes\n"
        "valve/test/section_05_0000.wav,v1pat,05,v2pat,04,valve/test/section_05_target_test_anomaly_0000_v1pat_05_v2pat_04.wav\n"
        "valve/test/section_05_0099.wav,v1pat,05,valve/test/section_05_source_test_normal_0099_v2pat_05.wav\n",
    )
    gt = load_ground_truth(tmp_path)
    assert gt.labels[("fan", "section_03_0001.wav")] == 1
    assert gt.domains[("fan", "section_03_0000.wav")] == "target"  # 1 = target in ground_truth_domain
    assert gt.domains[("fan", "section_03_0001.wav")] == "source"
    assert ("fan", "section_03_0000.wav") not in gt.full_names
    short = ("valve", "section_05_0099.wav")  # a row shorter than its header, as in the real file
    assert gt.full_names[short] == "section_05_source_test_normal_0099_v2pat_05.wav"
    assert (gt.labels[short], gt.domains[short]) == (0, "source")
    assert gt.attributes[short] == {"v2pat": "05", "v1pat": "05"}
    full = ("valve", "section_05_0000.wav")
    assert (gt.labels[full], gt.domains[full]) == (1, "target")
    assert gt.attributes[full] == {"v1pat": "05", "v2pat": "04"}
    assert len(gt.sources) == 3


def test_2023_and_2024_full_name_lists(tmp_path: Path) -> None:
    _write(
        tmp_path / "ground_truth_attributes" / "ground_truth_grinder_section_00_test.csv",
        "section_00_0000.wav,section_00_source_test_normal_0000_grindstone_2_plate_2\n",
    )
    _write(
        tmp_path / "ground_truth_attributes" / "ground_truth_AirCompressor_section_00_test.csv",
        "section_00_0001.wav,section_00_target_test_anomaly_0001_noAttribute,"
        "section_00_target_test_anomaly_0001_fl_2_nos_3.wav\n",
        crlf=True,
    )
    _write(
        tmp_path / "ground_truth_attributes" / "ground_truth_RoboticArm_section_00_test.csv",
        "section_00_0000.wav,section_00_source_normal_0035_weight15_BckgF\n",
    )
    gt = load_ground_truth(tmp_path)
    grinder = ("grinder", "section_00_0000.wav")
    assert gt.full_names[grinder] == "section_00_source_test_normal_0000_grindstone_2_plate_2.wav"
    assert (gt.labels[grinder], gt.domains[grinder]) == (0, "source")
    assert gt.attributes[grinder] == {"grindstone": "2", "plate": "2"}
    air = ("AirCompressor", "section_00_0001.wav")
    assert gt.full_names[air] == "section_00_target_test_anomaly_0001_fl_2_nos_3.wav"
    assert (gt.labels[air], gt.domains[air]) == (1, "target")
    arm = ("RoboticArm", "section_00_0000.wav")  # the 2024 full name without "test"
    assert (gt.labels[arm], gt.domains[arm]) == (0, "source")
    assert gt.attributes[arm] == {"weight": "15", "BckgF": ""}


def test_correspondence_tables(tmp_path: Path) -> None:
    _write(
        tmp_path / "eval_data" / "ToyPet" / "attributes_00_test_correspondence.csv",
        "source_file_name,target_file_name\n"
        "section_00_target_test_anomaly_0001_id_A1_spd_1_mic_2.wav,section_00_0095.wav\n",
        crlf=True,
    )
    _write(
        tmp_path / "eval_data" / "ToyPet" / "attributes_00_train_correspondence.csv",
        "source_file_name,target_file_name\n"
        "section_00_source_train_normal_0001_id_A1_spd_2_mic_1.wav,section_00_source_train_normal_0001_noAttribute.wav\n",
    )
    gt = load_ground_truth(tmp_path)
    test = ("ToyPet", "section_00_0095.wav")
    assert (gt.labels[test], gt.domains[test]) == (1, "target")
    assert gt.attributes[test] == {"id": "A1", "spd": "1", "mic": "2"}
    train = ("ToyPet", "section_00_source_train_normal_0001_noAttribute.wav")
    assert train not in gt.labels  # training clips are not scored
    assert gt.full_names[train] == "section_00_source_train_normal_0001_id_A1_spd_2_mic_1.wav"
    assert gt.attributes[train] == {"id": "A1", "spd": "2", "mic": "1"}


def test_eval_data_lists(tmp_path: Path) -> None:
    _write(
        tmp_path / "eval_data_list_2020.csv",
        "fan\nid_01_00000000.wav,normal_id_01_00000098.wav,0\nid_01_00000001.wav,anomaly_id_01_00000064.wav,1\n"
        "pump\nid_01_00000000.wav,anomaly_id_01_00000003.wav,1\n",
    )
    _write(
        tmp_path / "eval_data_list_2021.csv",
        "gearbox\nsection_03_source_test_0000.wav,section_03_source_test_anomaly_0000.wav\n",
        crlf=True,
    )
    gt = load_ground_truth(tmp_path)
    assert gt.labels[("fan", "id_01_00000000.wav")] == 0
    assert gt.labels[("fan", "id_01_00000001.wav")] == 1
    assert gt.labels[("pump", "id_01_00000000.wav")] == 1  # same name, other machine
    assert gt.full_names[("fan", "id_01_00000001.wav")] == "anomaly_id_01_00000064.wav"
    assert gt.labels[("gearbox", "section_03_source_test_0000.wav")] == 1
    assert gt.domains[("gearbox", "section_03_source_test_0000.wav")] == "source"
    assert gt.machines() == ["fan", "gearbox", "pump"]


def test_explicit_list_beats_full_name_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _write(tmp_path / "ground_truth_data" / "ground_truth_fan_section_03_test.csv", "section_03_0000.wav,0\n")
    _write(
        tmp_path / "ground_truth_attributes" / "ground_truth_fan_section_03_test.csv",
        "section_03_0000.wav,section_03_source_test_anomaly_0000_m-n_W\n",
    )
    with caplog.at_level(logging.WARNING):
        gt = load_ground_truth(tmp_path)
    assert gt.labels[("fan", "section_03_0000.wav")] == 0
    assert "1 disagreement" in caplog.text


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nothing\.csv: no such ground-truth file or folder"):
        load_ground_truth(tmp_path / "nothing.csv")
    other = _write(tmp_path / "results" / "result.csv", "section,AUC\n00,0.5\n")
    with pytest.raises(DataError, match=r"result\.csv: not an official ground-truth list"):
        load_ground_truth(other)
    with pytest.raises(DataError, match="no official ground-truth lists found"):
        load_ground_truth(tmp_path / "results")
    bad = _write(tmp_path / "ground_truth_fan_section_00_test.csv", "section_00_0000.wav\n")
    with pytest.raises(DataError, match="line 1: expected name,value"):
        load_ground_truth(bad)
    orphan = _write(
        tmp_path / "eval_data_list_2022.csv", "section_00_0000.wav,section_00_source_test_normal_0000.wav\n"
    )
    with pytest.raises(DataError, match=r"eval_data_list_2022\.csv: not an official ground-truth list"):
        load_ground_truth(orphan)


# --- labelling manifests --------------------------------------------------------------------------------


def test_label_manifest_reports_wrong_lists(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = make_tree(tmp_path / "data", "eval", year=2022, machines=("fan",))
    manifest = scan(root)
    wrong = GroundTruth(labels={("valve", "section_03_0000.wav"): 1})
    with pytest.raises(DataError, match="names none of the 16 unlabelled test clips"):
        wrong.label_manifest(manifest)
    partial = GroundTruth(
        labels={("fan", "section_03_0000.wav"): 1}, domains={("fan", "section_03_0000.wav"): "target"}
    )
    with caplog.at_level(logging.WARNING):
        labelled = partial.label_manifest(manifest)
    assert "does not name 15 of 16 test clips" in caplog.text
    clip = next(c for c in labelled if c.name == "section_03_0000.wav")
    assert (clip.label, clip.domain, clip.group) == (1, "target", "fan_section_03_test")
    assert sum(c.label is None for c in labelled.filter(split="test")) == 15
    assert labelled.layout == manifest.layout and labelled.root == manifest.root


def test_label_manifest_keeps_2021_groups_in_step(tmp_path: Path) -> None:
    clip = Clip(
        tmp_path / "a.wav", "fan", "03", domain="source", split="test", group="fan_section_03_source_test"
    )
    train = Clip(tmp_path / "b.wav", "fan", "03", domain="source", split="train", label=0)
    gt = GroundTruth(labels={("fan", "a.wav"): 1}, domains={("fan", "a.wav"): "target"})
    out = gt.label_manifest(Manifest([clip, train], "eval"))
    assert (out[0].label, out[0].domain, out[0].group) == (1, "target", "fan_section_03_target_test")
    assert out[1] == train


# --- the real official lists ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_gt(shared_data: Path) -> Path:
    return shared_data / GT


def _eval_tree(root: Path, machine: str, names: list[str], test_dir: str = "test") -> Path:
    for name in names:
        write_clip(root / machine / test_dir / name, duration=0.05)
    write_clip(
        root / machine / "train" / "section_00_source_train_normal_0000_noAttribute.wav", duration=0.05
    )
    return root


@pytest.mark.shared
def test_real_2023_eval_clips_labelled_by_official_lists(tmp_path: Path, real_gt: Path) -> None:
    lists = real_gt / "nttcslab_dcase2023_task2_evaluator"
    labels = _pairs(lists / "ground_truth_data" / "ground_truth_grinder_section_00_test.csv")
    domains = _pairs(lists / "ground_truth_domain" / "ground_truth_grinder_section_00_test.csv")
    names = sorted(labels)[:12]
    m = scan(_eval_tree(tmp_path, "grinder", names), ground_truth=lists)
    test = m.filter(split="test")
    assert m.layout == "eval" and len(test) == 12
    assert {c.name: c.label for c in test} == {n: int(labels[n]) for n in names}
    assert {c.name: c.domain for c in test} == {
        n: ("target" if domains[n] == "1" else "source") for n in names
    }
    assert all(set(c.attributes) == {"grindstone", "plate"} for c in test)
    assert m.groups() == ["grinder_section_00_test"]


@pytest.mark.shared
def test_real_2021_eval_clips_keep_per_domain_groups(tmp_path: Path, real_gt: Path) -> None:
    folder = real_gt / "y-kawagu_dcase2021_task2_evaluator" / "ground_truth_data"
    root = tmp_path / "eval2021"
    expected: dict[str, int] = {}
    for domain in ("source", "target"):
        rows = _pairs(folder / f"ground_truth_pump_section_04_{domain}_test.csv")
        names = sorted(rows)[:5]
        _eval_tree(root, "pump", names, test_dir=f"{domain}_test")
        expected.update({n: int(rows[n]) for n in names})
    m = scan(root, ground_truth=folder)
    test = m.filter(split="test")
    assert {c.name: c.label for c in test} == expected
    assert m.groups() == ["pump_section_04_source_test", "pump_section_04_target_test"]
    assert all(c.group == f"pump_section_04_{c.domain}_test" for c in test)


@pytest.mark.shared
def test_real_2020_eval_list(tmp_path: Path, real_gt: Path) -> None:
    path = real_gt / "nttcslab_dcase2023_task2_baseline_ae" / "datasets" / "eval_data_list_2020.csv"
    rows: dict[str, tuple[str, str]] = {}
    machine = ""
    with open(path, newline="") as f:
        for row in csv.reader(f):
            if len(row) == 1:
                machine = row[0]
            elif machine == "valve" and len(rows) < 8:
                rows[row[0]] = (row[1], row[2])
    root = tmp_path / "eval2020"
    for name in rows:
        write_clip(root / "valve" / "test" / name, duration=0.05)
    write_clip(root / "valve" / "train" / "normal_id_01_00000000.wav", duration=0.05)
    m = scan(root, ground_truth=path)
    test = m.filter(split="test")
    assert {c.name: c.label for c in test} == {n: int(v[1]) for n, v in rows.items()}
    assert {c.group for c in test} == {f"valve_id_{n[3:5]}" for n in rows}
    gt = load_ground_truth(path)
    assert all(gt.full_names[("valve", n)] == v[0] for n, v in rows.items())


@pytest.mark.shared
def test_real_lists_sizes_and_formats(real_gt: Path) -> None:
    y2021 = load_ground_truth(real_gt / "y-kawagu_dcase2021_task2_evaluator")
    assert len(y2021.labels) == 8635 and len(y2021.domains) == 8635
    y2022 = load_ground_truth(real_gt / "Kota-Dohi_dcase2022_evaluator" / "ground_truth_attributes")
    assert len(y2022.full_names) == 4200
    assert y2022.attributes[("ToyTrain", "section_05_0000.wav")]["noise"] == "6"
    y2024 = load_ground_truth(real_gt / "nttcslab_dcase2024_task2_evaluator")
    air = ("AirCompressor", "section_00_0001.wav")
    assert y2024.full_names[air] == "section_00_source_test_normal_0001_fl_2_nos_3.wav"
    assert y2024.machines()[:3] == ["3DPrinter", "AirCompressor", "BrushlessMotor"]
    lists = load_ground_truth(
        real_gt / "nttcslab_dcase2023_task2_baseline_ae" / "datasets" / "eval_data_list_2025.csv"
    )
    assert len(lists.labels) == 1600
    assert set(lists.domains.values()) == {"source", "target"}


@pytest.mark.shared
def test_real_2022_toy_lists_disagree_with_full_names(
    real_gt: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The 2022 evaluator's ToyCar/ToyTrain labels differ from the published full names; its lists win."""
    folder = real_gt / "Kota-Dohi_dcase2022_evaluator"
    with caplog.at_level(logging.WARNING):
        gt = load_ground_truth(folder)
    assert "1200 disagreement(s)" in caplog.text
    key = ("ToyCar", "section_03_0004.wav")
    assert gt.full_names[key].startswith("section_03_target_test_anomaly_")
    assert gt.labels[key] == int(
        _pairs(folder / "ground_truth_data" / "ground_truth_ToyCar_section_03_test.csv")[key[1]]
    )
    assert gt.labels[key] == 0
    fan = ("fan", "section_03_0003.wav")  # the other machines agree
    assert gt.full_names[fan].startswith("section_03_source_test_anomaly_") and gt.labels[fan] == 1
