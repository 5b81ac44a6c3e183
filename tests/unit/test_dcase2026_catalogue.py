"""DCASE2026 from download to submission: the three Zenodo records, eval groups, --scheme, prepare, submit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asdkit.data.catalogue import archives
from asdkit.data.prepare import prepare_ground_truth
from asdkit.errors import DataError
from asdkit.metrics.table import normalize_scheme
from asdkit.reports.challenge import build_submission, unlisted_warning
from asdkit.reports.eval_lists import eval_groups
from tests.helpers.range_server import ServerState, record_json, serve

DEV = ("ToyCar", "ToyCarEmu", "bearingEmu", "fan", "gearboxEmu", "sliderEmu", "valveEmu")
EVAL = ("ToyDrone", "ToothBrush", "SewingMachine", "BlowerDustCollector", "Sander")
RECORDS = {"dev": "19336329", "additional": "20151556", "eval": "20437238"}


def test_the_three_records_and_their_archives():
    found = archives("2026")
    by_split = {s: [a for a in found if a.split == s] for s in RECORDS}
    assert {s: {a.record for a in arcs} for s, arcs in by_split.items()} == {
        s: {r} for s, r in RECORDS.items()
    }
    assert [a.machine for a in by_split["dev"]] == list(DEV)
    assert {a.file for a in by_split["dev"]} == {"dev_ToyCar_r2.zip", *(f"dev_{m}.zip" for m in DEV[1:])}
    assert {a.file for a in by_split["additional"]} == {f"eval_data_{m}_train.zip" for m in EVAL}
    assert {a.file for a in by_split["eval"]} == {f"eval_data_{m}_test.zip" for m in EVAL}
    assert {a.dest for a in found} == {"dcase2026/dev_data", "dcase2026/eval_data"}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asdkit", *args], capture_output=True, text=True, timeout=120
    )


def test_dry_run_lists_every_file_of_the_three_records_with_their_sizes(tmp_path):
    files: dict[str, bytes] = {}
    for a in archives("2026"):
        body = a.file.encode() * 3
        files[f"/records/{a.record}/files/{a.file}"] = body
    for split, record in RECORDS.items():
        mine = {a.file: a.file.encode() * 3 for a in archives("2026", split)}
        files[f"/api/records/{record}"] = record_json(mine, {k: "0" * 32 for k in mine})
    with serve(ServerState(files)) as base:
        res = _cli("download", "2026", "--to", str(tmp_path / "data"), "--dry-run", "--base-url", base)
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stdout.splitlines() if "/records/" in line]
    assert len(lines) == 17 == len(archives("2026"))
    for a in archives("2026"):
        [line] = [line for line in lines if line.endswith(f"/records/{a.record}/files/{a.file}")]
        assert f"{len(a.file) * 3} B" in line and "to fetch" in line
    assert "17 archive(s)" in res.stdout and not (tmp_path / "data").exists()


def test_dry_run_offline_still_lists_every_file(tmp_path):
    res = _cli("download", "2026", "--to", str(tmp_path), "--dry-run", "--base-url", "http://127.0.0.1:9")
    assert res.returncode == 0, res.stderr
    assert sum("size unknown" in line for line in res.stdout.splitlines()) == 17
    assert "sizes unknown" in res.stderr


def test_2026_follows_the_2022_rules_and_prepare_takes_its_ground_truth(tmp_path):
    assert normalize_scheme("2026") == normalize_scheme("dcase2026") == "dcase2022"
    truth = tmp_path / "evaluator" / "ground_truth_data"
    truth.mkdir(parents=True)
    (truth / "ground_truth_ToyDrone_section_00_test.csv").write_text(
        "section_00_0000.wav,0\nsection_00_0001.wav,1\n"
    )
    dest, n = prepare_ground_truth(2026, tmp_path / "evaluator", tmp_path / "data")
    assert dest == tmp_path / "data" / "dcase2026" / "ground_truth" and n == 1


def _fake_eval_run(root: Path, machines: tuple[str, ...] = EVAL, names: list[str] | None = None) -> Path:
    """A run directory of 2026-evaluation-set scores (no training): 6 anonymised clips per machine type."""
    rng = np.random.default_rng(0)
    scores = root / "scores"
    scores.mkdir(parents=True)
    for m in machines:
        clip_names = names or [f"section_00_{i:04d}.wav" for i in range(6)]
        values = rng.random(len(clip_names))
        group = f"{m}_section_00_test"
        (scores / f"anomaly_score_{group}.csv").write_text(
            "".join(f"{n},{float(v)!r}\n" for n, v in zip(clip_names, values, strict=True))
        )
        (scores / f"decision_result_{group}.csv").write_text(
            "".join(f"{n},{int(v > 0.8)}\n" for n, v in zip(clip_names, values, strict=True))
        )
    (root / "config.json").write_text(json.dumps({"status": "complete", "model": "ensemble", "seed": 0}))
    return root


def test_2026_submission_checks_files_and_name_pattern_and_says_what_it_could_not(tmp_path):
    assert [g.group for g in eval_groups(2026)] == [f"{m}_section_00_test" for m in EVAL]
    assert not any(g.names_known for g in eval_groups(2026))
    run = _fake_eval_run(tmp_path / "run")
    [package] = build_submission([run], 2026, "Doe_UNI", tmp_path / "sub")
    assert package.clips == 6 * len(EVAL) and package.files == 2 * len(EVAL)
    assert (package.folder / "Doe_UNI_task2_1.meta.yaml").is_file()
    assert sorted(p.name for p in package.folder.glob("anomaly_score_*.csv")) == sorted(
        f"anomaly_score_{m}_section_00_test.csv" for m in EVAL
    )
    warning = unlisted_warning(2026, None)
    assert warning is not None and "eval_data_list_2026.csv" in warning
    assert unlisted_warning(2026, tmp_path / "list.csv") is None and unlisted_warning(2025, None) is None


def test_2026_submission_refuses_a_missing_machine_and_development_names(tmp_path):
    with pytest.raises(DataError, match=r"missing score files for Sander_section_00_test"):
        build_submission([_fake_eval_run(tmp_path / "a", EVAL[:-1])], 2026, "Doe_UNI", tmp_path / "s1")
    dev_names = ["section_00_source_test_normal_0000_noise_1.wav"]
    with pytest.raises(DataError, match=r"not an anonymised section_00_NNNN.wav name"):
        build_submission([_fake_eval_run(tmp_path / "b", names=dev_names)], 2026, "Doe_UNI", tmp_path / "s2")
    assert not (tmp_path / "s1" / "task2").exists() and not (tmp_path / "s2" / "task2").exists()


def test_2026_submission_with_the_organisers_list_checks_every_clip(tmp_path):
    listing = tmp_path / "eval_data_list_2026.csv"
    listing.write_text(
        "".join(f"{m}\n" + "".join(f"section_00_{i:04d}.wav,x\n" for i in range(7)) for m in EVAL)
    )
    with pytest.raises(DataError, match=r"clip\(s\) missing: ToyDrone_section_00_test:section_00_0006.wav"):
        build_submission(
            [_fake_eval_run(tmp_path / "run")], 2026, "Doe_UNI", tmp_path / "sub", eval_list=listing
        )
