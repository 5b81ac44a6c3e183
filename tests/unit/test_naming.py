"""File-name rules, one module per layout: fields -> name -> the same fields, and every real name the
challenge published -> fields -> the same name; the scanners read back exactly what the rules write."""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from asdkit.data.layouts import scan
from asdkit.data.manifest import ANOMALY, NORMAL, SOURCE, TARGET, TEST, TRAIN
from asdkit.data.naming import (
    ClipName,
    attribute_tail,
    dcase2020,
    dcase2021,
    dcase2022,
    evalset,
    folder,
    mimii,
)
from tests.helpers.eval_trees import make_mimii_tree
from tests.helpers.trees import write_clip

N_CASES = 400
TAILS = ("car_C2_spd_34V_mic_1", "vel_730_ac_0.11", "pat_01", "m-n_W", "noAttribute", "volt_1.5_wt_150")


def _fields(
    rng: random.Random, *, domains: tuple[str, ...], splits: tuple[str, ...], tails: bool
) -> ClipName:
    return ClipName(
        section=f"{rng.randrange(100):02d}",
        index=rng.randrange(10_000),
        label=rng.choice((NORMAL, ANOMALY)),
        domain=rng.choice(domains),
        split=rng.choice(splits),
        tail=rng.choice(("", *TAILS)) if tails else "",
        suffix=rng.choice((".wav", ".flac")),
    )


def _cases(make: Callable[[random.Random], ClipName]) -> list[ClipName]:
    rng = random.Random(0)
    return [make(rng) for _ in range(N_CASES)]


def _dev2020(rng: random.Random) -> ClipName:
    return _fields(rng, domains=(SOURCE,), splits=("",), tails=False)


def _dev2021(rng: random.Random) -> ClipName:
    return _fields(rng, domains=(SOURCE, TARGET), splits=(TRAIN, TEST), tails=False)


def _dev2022(rng: random.Random) -> ClipName:
    # "" split: the official 2024 names that leave the split word out
    return _fields(rng, domains=(SOURCE, TARGET), splits=(TRAIN, TEST, ""), tails=True)


@pytest.mark.parametrize(
    ("module", "make"),
    [(dcase2020, _dev2020), (dcase2021, _dev2021), (dcase2022, _dev2022)],
    ids=["dcase2020", "dcase2021", "dcase2022"],
)
def test_development_fields_round_trip_through_names(module, make) -> None:
    for fields in _cases(make):
        name = module.format_name(fields)
        assert module.parse_name(name) == fields, name
        assert module.format_name(module.parse_name(name)) == name


@pytest.mark.parametrize("year", evalset.YEARS)
def test_evaluation_fields_round_trip_through_anonymised_names(year: int) -> None:
    def make(rng: random.Random) -> ClipName:
        domains = {2020: (SOURCE,), 2021: (SOURCE, TARGET), 2022: ("",)}[year]
        fields = _fields(rng, domains=domains, splits=(TEST,), tails=False)
        return ClipName(fields.section, fields.index, None, fields.domain, TEST, suffix=fields.suffix)

    for fields in _cases(make):
        name = evalset.format_name(fields, year)
        assert evalset.parse_name(name) == (year, fields), name


def test_folder_fields_round_trip_through_names_and_folders() -> None:
    for fields in _cases(
        lambda rng: _fields(rng, domains=(SOURCE, TARGET), splits=(TRAIN, TEST), tails=False)
    ):
        name = folder.format_name(fields)
        parsed = folder.parse_name(name)
        assert parsed == ClipName(fields.section, fields.index, domain=fields.domain, suffix=fields.suffix)
        machine, split_dir, *rest = folder.clip_path("fan", fields).split("/")
        assert (machine, split_dir, rest[-1]) == ("fan", fields.split, name)
        if fields.split == TEST:  # the label lives in the test sub-folder
            assert folder.label_of_dir(rest[0]) == fields.label


def test_mimii_fields_round_trip_through_folders_and_names() -> None:
    rng = random.Random(0)
    for _ in range(N_CASES):
        section, label, index = (
            f"{rng.randrange(100):02d}",
            rng.choice((NORMAL, ANOMALY)),
            rng.randrange(10**8),
        )
        top, machine, id_folder, class_folder, name = mimii.clip_path(
            "6_dB", "pump", section, label, index
        ).split("/")
        assert (top, machine) == ("6_dB_pump", "pump")
        assert mimii.section_of_dir(id_folder) == section
        assert mimii.CLASS_DIRS[class_folder] == label
        assert mimii.index_of_raw_name(name) == index
        # In a manifest the recording takes the name DCASE2020 gave it.
        assert dcase2020.parse_name(mimii.clip_name(section, label, index)) == ClipName(
            section, index, label, SOURCE
        )


def test_names_that_are_no_clip_names_give_none() -> None:
    for module in (dcase2020, dcase2021, dcase2022, folder):
        for name in ("odd_name.wav", "section_00_source_train_normal_0000.txt", "normal_id_00.wav", ""):
            assert module.parse_name(name) is None
    assert evalset.parse_name("section_00_source_train_normal_0000.wav") is None
    assert mimii.index_of_raw_name("normal_00000000.wav") is None
    assert mimii.section_of_dir("section_00") is None


def test_2022_names_carry_attributes_and_say_noattribute_for_none() -> None:
    fields = dcase2022.parse_name("section_00_target_test_anomaly_0015_car_A2_spd_6_mic_2.wav")
    assert fields is not None and fields.attributes == {"car": "A2", "spd": "6", "mic": "2"}
    assert dcase2022.parse_name("section_00_source_test_normal_0001_noAttribute.wav").attributes == {}
    tail = attribute_tail({"rpm": 1500, "load": "B"})
    assert tail == "rpm_1500_load_B"
    assert dcase2022.parse_name(
        dcase2022.format_name(ClipName("01", 3, NORMAL, SOURCE, TRAIN, tail))
    ).attributes == {"rpm": "1500", "load": "B"}


def test_each_layout_puts_test_clips_in_its_own_folders_and_groups() -> None:
    clip = ClipName("03", 7, ANOMALY, TARGET, TEST, "pat_01")
    assert (
        dcase2021.clip_path("valve", clip)
        == "valve/target_test/section_03_target_test_anomaly_0007_pat_01.wav"
    )
    assert dcase2022.clip_path("valve", clip) == "valve/test/section_03_target_test_anomaly_0007_pat_01.wav"
    assert dcase2020.clip_path("valve", clip) == "valve/test/anomaly_id_03_00000007.wav"
    assert evalset.clip_path("valve", clip, 2021) == "valve/target_test/section_03_target_test_0007.wav"
    assert evalset.clip_path("valve", clip, 2022) == "valve/test/section_03_0007.wav"
    assert [evalset.group(y, "valve", "03", TARGET) for y in evalset.YEARS] == [
        "valve_id_03",
        "valve_section_03_target_test",
        "valve_section_03_test",
    ]
    assert dcase2021.parse_group("valve_section_03_target_test") == ("valve", "03", TARGET)
    assert dcase2022.parse_group("valve_section_03_test") == ("valve", "03")
    assert dcase2022.parse_group("valve_section_03_target_test") is None
    with pytest.raises(ValueError, match="label"):
        dcase2020.format_name(ClipName("00", 0))


@pytest.mark.parametrize(
    "layout", ["dcase2020", "dcase2021", "dcase2022", "eval2020", "eval2021", "eval2022", "folder"]
)
def test_scanners_read_back_what_the_rules_write(tmp_path: Path, layout: str) -> None:
    """Paths from the naming modules, scanned: every clip is found, with the fields it was written with.

    Scanning never opens audio, so empty files stand in for clips."""
    rng = random.Random(1)
    written: dict[str, ClipName] = {}
    for i in range(40):
        split = TRAIN if i % 3 == 0 else TEST
        machine = ("fan", "valve")[i % 2]
        base = _dev2022(rng) if layout in ("dcase2022", "eval2022") else _dev2021(rng)
        fields = ClipName(base.section, i, base.label, base.domain, split, base.tail)
        if layout == "dcase2020" or (layout == "eval2020" and split == TRAIN):
            fields = ClipName(fields.section, i, fields.label, SOURCE, split)
            rel = dcase2020.clip_path(machine, fields)
        elif layout.startswith("eval") and split == TEST:
            year = int(layout[4:])
            fields = ClipName(
                fields.section, i, None, {2020: SOURCE, 2021: fields.domain, 2022: ""}[year], TEST
            )
            rel = evalset.clip_path(machine, fields, year)
        elif layout in ("dcase2021", "eval2021"):
            rel = dcase2021.clip_path(machine, fields)
        elif layout == "folder":
            fields = ClipName(folder.SECTION, i, fields.label if split == TEST else NORMAL, SOURCE, split)
            rel = folder.clip_path(machine, fields)
        else:
            rel = dcase2022.clip_path(machine, fields)
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).touch()
        written[rel] = fields
    manifest = scan(tmp_path)
    assert manifest.layout == ("eval" if layout.startswith("eval") else layout)
    assert len(manifest) == len(written)
    for clip in manifest:
        fields = written[clip.path.relative_to(tmp_path).as_posix()]
        assert (clip.section, clip.split, clip.domain) == (fields.section, fields.split, fields.domain)
        assert clip.label == fields.label
        assert clip.attributes == fields.attributes


# ------------------------------------------------------------------------------- real names (shared data)


def _eval_lists(shared_data: Path) -> list[Path]:
    lists = sorted((shared_data / "evaluator_ground_truth").rglob("eval_data_list_20*.csv"))
    if not lists:
        pytest.skip("no eval_data_list_*.csv in ../shared/data")
    return lists


@pytest.mark.shared
def test_every_published_evaluation_name_round_trips(shared_data: Path) -> None:
    """Every year's eval list: the anonymised name and the full name behind it, both ways."""
    seen: dict[int, int] = {}
    for path in _eval_lists(shared_data):
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f) if len(r) >= 2]
        for anonymised, full, *_ in rows:
            year, fields = evalset.parse_name(anonymised)
            assert evalset.format_name(fields, year) == anonymised
            module = dcase2020 if year == 2020 else dcase2022
            full_fields = module.parse_name(full)
            assert full_fields is not None and module.format_name(full_fields) == full, full
            assert full_fields.section == fields.section
            if year == 2021:
                assert full_fields.domain == fields.domain
            seen[year] = seen.get(year, 0) + 1
    assert set(seen) == set(evalset.YEARS) and sum(seen.values()) > 20_000


@pytest.mark.shared
def test_every_real_development_and_mimii_name_round_trips(shared_data: Path) -> None:
    names_2020 = [p.name for p in (shared_data / "dcase2020_dev_sample").rglob("*.wav")]
    names_2023 = [p.name for p in (shared_data / "dcase2023_dev_sample").rglob("*.wav")]
    mimii_paths = sorted((shared_data / "mimii_raw_sample").rglob("*.wav"))
    if not (names_2020 and names_2023 and mimii_paths):
        pytest.skip("development samples absent from ../shared/data")
    for name in names_2020:
        assert dcase2020.format_name(dcase2020.parse_name(name)) == name
    for name in names_2023:
        fields = dcase2022.parse_name(name)
        assert dcase2022.format_name(fields) == name and fields.attributes
    for path in mimii_paths:
        top, machine, id_folder, class_folder, name = path.relative_to(shared_data / "mimii_raw_sample").parts
        snr = top.removesuffix(f"_{machine}")
        label = mimii.CLASS_DIRS[class_folder]
        rebuilt = mimii.clip_path(
            snr, machine, mimii.section_of_dir(id_folder), label, mimii.index_of_raw_name(name)
        )
        assert rebuilt == "/".join((top, machine, id_folder, class_folder, name))


@pytest.mark.shared
def test_real_2021_ground_truth_names_round_trip(shared_data: Path) -> None:
    folder_2021 = (
        shared_data / "evaluator_ground_truth" / "y-kawagu_dcase2021_task2_evaluator" / "ground_truth_data"
    )
    files = sorted(folder_2021.glob("ground_truth_*.csv"))
    if not files:
        pytest.skip("the 2021 evaluator's lists are absent")
    for path in files:
        machine, section, domain = dcase2021.parse_group(path.stem.removeprefix("ground_truth_"))
        with open(path, newline="") as f:
            for name, _ in csv.reader(f):
                year, fields = evalset.parse_name(name)
                assert (year, fields.section, fields.domain) == (2021, section, domain)
                assert evalset.format_name(fields, 2021) == name
                assert evalset.group(2021, machine, section, domain) == path.stem.removeprefix(
                    "ground_truth_"
                )


def test_a_raw_mimii_file_that_is_no_clip_number_is_skipped_and_named(tmp_path: Path) -> None:
    root = make_mimii_tree(
        tmp_path / "mimii", machines=("pump",), ids=("00",), n_normal=4, n_abnormal=1, channels=1
    )
    odd = write_clip(root / "0_dB_pump" / "pump" / "id_00" / "normal" / "copy of 00000001.wav")
    manifest = scan(root)
    assert manifest.layout == "mimii" and len(manifest) == 5
    assert {c.name for c in manifest} >= {"normal_id_00_00000003.wav", "anomaly_id_00_00000000.wav"}
    assert [p for p, _ in manifest.skipped] == [odd]
