"""``asdkit submit``: a package per year's evaluation list from synthetic runs; incomplete runs refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from asdkit import api
from asdkit.errors import DataError
from asdkit.reports.challenge import build_submission
from asdkit.reports.eval_lists import YEARS, eval_groups


def _fake_run(root: Path, year: int, drop: str | None = None, extra: str | None = None) -> Path:
    """A run directory on the year's evaluation set: config.json and score/decision files, no training."""
    rng = np.random.default_rng(year)
    scores = root / "scores"
    scores.mkdir(parents=True)
    for k, g in enumerate(eval_groups(year)):  # drop and extra: in the first group only
        names = list(g.names) if k else [n for n in g.names if n != drop] + ([extra] if extra else [])
        values = rng.random(len(names))
        (scores / f"anomaly_score_{g.group}.csv").write_text(
            "".join(f"{n},{float(v)!r}\n" for n, v in zip(names, values, strict=True))
        )
        (scores / f"decision_result_{g.group}.csv").write_text(
            "".join(f"{n},{int(v > 0.9)}\n" for n, v in zip(names, values, strict=True))
        )
    config = {
        "status": "complete",
        "model": "ae",
        "params": {"epochs": 100},
        "features": {"sample_rate": 16000, "n_mels": 128, "n_fft": 1024, "hop_length": 512},
        "seed": 0,
        "environment": {"asdkit": "0.1.0", "command_line": "asdkit run ..."},
    }
    (root / "config.json").write_text(json.dumps(config))
    return root


@pytest.mark.parametrize("year", YEARS)
def test_package_for_each_years_eval_list(tmp_path, year):
    run = _fake_run(tmp_path / "run", year)
    [package] = build_submission([run], year, "Doe_UNI", tmp_path / "sub")
    folder = tmp_path / "sub" / "task2" / "Doe_UNI_task2_1"
    assert package.folder == folder
    groups = eval_groups(year)
    score_files = sorted(p.name for p in folder.glob("anomaly_score_*.csv"))
    assert score_files == sorted(f"anomaly_score_{g.group}.csv" for g in groups)
    decision_files = list(folder.glob("decision_result_*.csv"))
    assert len(decision_files) == (0 if year == 2020 else len(groups))
    first = groups[0]
    assert (folder / f"anomaly_score_{first.group}.csv").read_text() == (
        run / "scores" / f"anomaly_score_{first.group}.csv"
    ).read_text()
    meta = yaml.safe_load((folder / "Doe_UNI_task2_1.meta.yaml").read_text())
    assert meta["submission"]["label"] == "Doe_UNI_task2_1"
    assert meta["system"]["description"]["machine_learning_method"] == "ae"
    assert meta["system"]["description"]["parameters"] == {"epochs": 100}
    assert "128 bands" in meta["system"]["description"]["acoustic_features"]
    assert not (tmp_path / "sub" / ".task2.partial").exists()


def test_missing_and_extra_clips_are_named_and_nothing_is_written(tmp_path):
    first = eval_groups(2023)[0]
    run = _fake_run(tmp_path / "run", 2023, drop=first.names[7], extra="section_00_9999.wav")
    with pytest.raises(DataError) as info:
        build_submission([run], 2023, "Doe_UNI", tmp_path / "sub")
    message = str(info.value)
    dropped = first.names[7]
    assert (
        f"2 clip(s) missing: {first.group}:{dropped}, decision_result_{first.group}.csv:{dropped};" in message
    )
    assert f"clip(s) not in the evaluation list: {first.group}:section_00_9999.wav" in message
    assert not (tmp_path / "sub" / "task2").exists()


def test_fake_runs_write_plain_numbers(tmp_path):
    """The fixture's writer once wrote repr() of numpy scalars, rows such as ``x.wav,np.float64(0.98)``."""
    run = _fake_run(tmp_path / "run", 2023)
    text = "".join(p.read_text() for p in (run / "scores").glob("anomaly_score_*.csv"))
    assert "np." not in text


@pytest.mark.parametrize(
    ("bad", "kind"),
    [
        ("np.float64(0.98)", "anomaly_score"),
        ("nan", "anomaly_score"),
        ("inf", "anomaly_score"),
        ("", "anomaly_score"),
        ("0.5", "decision_result"),
    ],
)
def test_a_score_that_is_not_a_finite_number_is_named_and_nothing_is_written(tmp_path, bad, kind):
    run = _fake_run(tmp_path / "run", 2023)
    group = eval_groups(2023)[1]
    path = run / "scores" / f"{kind}_{group.group}.csv"
    rows = path.read_text().splitlines()
    rows[3] = f"{group.names[3]},{bad}"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError) as info:
        build_submission([run], 2023, "Doe_UNI", tmp_path / "sub")
    message = str(info.value)
    assert f"{path}, line 4:" in message and repr(bad) in message and group.names[3] in message
    assert not (tmp_path / "sub" / "task2").exists()


def test_a_run_of_another_year_is_refused_naming_files(tmp_path):
    run = _fake_run(tmp_path / "run", 2022)
    with pytest.raises(
        DataError,
        match=r"missing score files for ToyDrone_section_00_test.*and 2 more; score files not in the 2023",
    ):
        build_submission([run], 2023, "Doe_UNI", tmp_path / "sub")


def test_a_seeds_folder_is_refused_naming_its_runs(tmp_path):
    seeds = tmp_path / "runs" / "ae"
    for n in (0, 1):
        _fake_run(seeds / f"seed_{n}", 2023)
    (seeds / "seeds.json").write_text(json.dumps({"status": "complete", "seeds": [0, 1]}))
    with pytest.raises(
        DataError, match=r"ae: not one run; a --seeds folder: give one of its runs \(seed_0, seed_1\)"
    ):
        build_submission([seeds], 2023, "Doe_UNI", tmp_path / "sub")
    assert not (tmp_path / "sub").exists()


def test_dev_results_fill_the_metadata(tmp_path):
    dev = tmp_path / "dev"
    scores = dev / "scores"
    scores.mkdir(parents=True)
    rows = [
        f"section_00_{d}_test_{lab}_{i:04d}_x.wav"
        for d in ("source", "target")
        for lab in ("normal", "anomaly")
        for i in range(5)
    ]
    values = [0.9 if "anomaly" in r else 0.1 for r in rows]
    (scores / "anomaly_score_fan_section_00_test.csv").write_text(
        "".join(f"{r},{v + 0.01 * i}\n" for i, (r, v) in enumerate(zip(rows, values, strict=True)))
    )
    evaluation = api.evaluate(scores, out=dev)
    (dev / "config.json").write_text(
        json.dumps({"status": "complete", "official_score": evaluation.official_score})
    )
    run = _fake_run(tmp_path / "run", 2025)
    build_submission([run], 2025, "Doe_UNI", tmp_path / "sub", dev_runs=[dev], names=["Plain AE"])
    meta = yaml.safe_load(
        (tmp_path / "sub" / "task2" / "Doe_UNI_task2_1" / "Doe_UNI_task2_1.meta.yaml").read_text()
    )
    assert meta["submission"]["name"] == "Plain AE"
    assert meta["results"]["development_dataset"]["official score"] == pytest.approx(
        evaluation.official_score, abs=1e-4
    )


def test_cli_submit_and_bad_team(tmp_path):
    run = _fake_run(tmp_path / "run", 2024)
    cmd = [sys.executable, "-m", "asdkit", "submit", str(run), "--year", "2024", "--out", str(tmp_path / "s")]
    ok = subprocess.run([*cmd, "--team", "Doe_UNI"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "Doe_UNI_task2_1: 18 files, 1800 clips" in ok.stdout
    bad = subprocess.run([*cmd, "--team", "Doe UNI"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --team 'Doe UNI'")
