"""The challenge's submission package: one folder per system with its score files and metadata YAML.

Layout (DCASE Task 2 submission instructions):

    OUT/task2/<TEAM>_task2_<n>/anomaly_score_<group>.csv      (every year)
    OUT/task2/<TEAM>_task2_<n>/decision_result_<group>.csv    (2021 on; 2020 asked for scores only)
    OUT/task2/<TEAM>_task2_<n>/<TEAM>_task2_<n>.meta.yaml

Each system's score files must cover the year's evaluation list exactly (:mod:`asdkit.reports.eval_lists`
or a list file given by the user); a missing or extra file or clip stops the build naming them. The
package is assembled in a staging folder and renamed into place, so a refused or interrupted build
leaves no folder that looks complete. The metadata is filled from each run's ``config.json``; the
authors and the technical report are the team's to fill in (marked ``FILL IN``).
"""

from __future__ import annotations

import csv
import math
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from asdkit.data.naming import evalset
from asdkit.errors import DataError
from asdkit.reports.eval_lists import EvalGroup, eval_groups, groups_from_list_file
from asdkit.reports.submission import DECISION_PREFIX, SCORE_PREFIX
from asdkit.run_result import read_config
from asdkit.rundir import CONFIG_FILE, RESULT_FILE, SCORES_DIR, seeds_hint
from asdkit.utils.io import atomic_write_text

FILL_IN = "FILL IN"
_TEAM = re.compile(r"^[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)?$")
_SHOWN = 5


@dataclass
class SystemPackage:
    label: str
    folder: Path
    run: Path
    files: int
    clips: int


def expected_groups(year: int, eval_list: Path | None = None) -> list[EvalGroup]:
    """The year's evaluation list: from ``eval_list`` when given, else rebuilt from the year's facts."""
    if eval_list is None:
        try:
            return eval_groups(year)
        except ValueError as exc:
            raise DataError(f"{exc}; give the organisers' list with --eval-list") from None
    try:
        return groups_from_list_file(Path(eval_list).read_text(), year)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{eval_list}: not an evaluation list ({exc})") from None


def build_submission(
    runs: Sequence[Path | str],
    year: int,
    team: str,
    out: Path | str,
    *,
    eval_list: Path | None = None,
    dev_runs: Sequence[Path | str] | None = None,
    names: Sequence[str] | None = None,
) -> list[SystemPackage]:
    """Write ``out/task2/<team>_task2_<n>/`` for each run (n = 1, 2, ... in the order given).

    ``dev_runs`` (same order, optional) are the systems' development-set runs whose results go into the
    metadata; a run that was itself evaluated is used when no development run is given. ``names`` are
    the systems' display names (default: detector and recipe).
    """
    if not _TEAM.match(team):
        raise DataError(f"--team {team!r}: expected Lastname_INST (letters and digits, one underscore)")
    if not runs:
        raise DataError("no runs to package")
    if len(runs) > 4:
        raise DataError(f"{len(runs)} runs: the challenge takes at most 4 systems per team")
    if dev_runs and len(dev_runs) != len(runs):
        raise DataError(f"{len(dev_runs)} development run(s) for {len(runs)} run(s): give one per run")
    expected = expected_groups(year, eval_list)
    out = Path(out)
    final_root = out / "task2"
    staging = out / ".task2.partial"
    shutil.rmtree(staging, ignore_errors=True)
    packages = []
    try:
        for n, run in enumerate(map(Path, runs), start=1):
            label = f"{team}_task2_{n}"
            folder = staging / label
            scores = _scores_dir(run)
            found = _check_complete(scores, expected, year, run)
            for score_file, decision_file in found.values():
                check_values(score_file, decision_file)
            folder.mkdir(parents=True)
            for group in expected:
                shutil.copyfile(found[group.group][0], folder / f"{SCORE_PREFIX}{group.group}.csv")
                if year >= 2021:
                    shutil.copyfile(found[group.group][1], folder / f"{DECISION_PREFIX}{group.group}.csv")
            dev = Path(dev_runs[n - 1]) if dev_runs else None
            name = names[n - 1] if names and len(names) >= n else None
            atomic_write_text(folder / f"{label}.meta.yaml", metadata_yaml(label, run, year, dev, name))
            packages.append(
                SystemPackage(
                    label,
                    final_root / label,
                    run,
                    len(list(folder.glob("*.csv"))),
                    sum(len(_names_in(folder / f"{SCORE_PREFIX}{g.group}.csv")) for g in expected),
                )
            )
        for p in packages:
            if p.folder.exists():
                raise DataError(f"{p.folder}: already exists; remove it or choose another --out")
        final_root.mkdir(parents=True, exist_ok=True)
        for p in packages:
            (staging / p.label).rename(p.folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return packages


def _scores_dir(run: Path) -> Path:
    if (run / SCORES_DIR).is_dir():
        return run / SCORES_DIR
    if run.is_dir() and any(run.glob(f"{SCORE_PREFIX}*.csv")):
        return run
    if hint := seeds_hint(run):
        raise DataError(f"{run}: not one run{hint}")
    raise DataError(f"{run}: no score files (expected a run directory with scores/ or a folder of them)")


def check_values(score_file: Path, decision_file: Path | None) -> None:
    """A DataError naming the first row whose score is not a finite number (or decision not 0 or 1).

    The challenge's files have no header, so every row is checked; ``evaluate`` would fail on such a
    package later, far from the run that wrote it.
    """
    for path, what in ((score_file, "score"), (decision_file, "decision")):
        if path is None:
            continue
        with open(path, newline="") as f:
            for line, row in enumerate(csv.reader(f), start=1):
                if not row or not any(cell.strip() for cell in row):
                    continue
                value = row[1].strip() if len(row) > 1 else ""
                if not _valid(value, what):
                    wanted = "a finite number" if what == "score" else "0 or 1"
                    raise DataError(
                        f"{path}, line {line}: {what} {value!r} of clip {row[0].strip()!r} is not {wanted}"
                    )


def _valid(text: str, what: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) if what == "score" else value in (0.0, 1.0)


def _names_in(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return [row[0].strip() for row in csv.reader(f) if row and row[0].strip()]


def _check_complete(
    scores: Path, expected: list[EvalGroup], year: int, run: Path
) -> dict[str, tuple[Path, Path | None]]:
    """Each expected group's (score file, decision file); a DataError naming what is missing or extra."""
    wanted = {g.group: g for g in expected}
    present = {p.name[len(SCORE_PREFIX) : -4]: p for p in scores.glob(f"{SCORE_PREFIX}*.csv")}
    problems: list[str] = []
    missing_files = sorted(set(wanted) - set(present))
    extra_files = sorted(set(present) - set(wanted))
    if missing_files:
        problems.append(f"missing score files for {_some(missing_files)}")
    if extra_files:
        problems.append(f"score files not in the {year} evaluation list: {_some(extra_files)}")
    found: dict[str, tuple[Path, Path | None]] = {}
    missing_clips: list[str] = []
    extra_clips: list[str] = []
    no_decisions: list[str] = []
    for group, g in wanted.items():
        if group not in present:
            continue
        names = _names_in(present[group])
        listed = set(g.names) if g.names_known else _unlisted_names(names, g, year, extra_clips)
        missing_clips += [f"{group}:{n}" for n in sorted(listed - set(names))]
        extra_clips += [f"{group}:{n}" for n in sorted(set(names) - listed)]
        decision = scores / f"{DECISION_PREFIX}{group}.csv"
        if year >= 2021:
            if not decision.is_file():
                no_decisions.append(group)
            else:
                d_names = set(_names_in(decision))
                missing_clips += [f"{decision.name}:{n}" for n in sorted(listed - d_names)]
                extra_clips += [f"{decision.name}:{n}" for n in sorted(d_names - listed)]
        found[group] = (present[group], decision if decision.is_file() else None)
    if missing_clips:
        problems.append(f"{len(missing_clips)} clip(s) missing: {_some(missing_clips)}")
    if extra_clips:
        problems.append(f"{len(extra_clips)} clip(s) not in the evaluation list: {_some(extra_clips)}")
    if no_decisions:
        problems.append(f"missing decision files for {_some(no_decisions)}")
    if problems:
        raise DataError(f"{run}: not a complete {year} evaluation submission: " + "; ".join(problems))
    return found


def _unlisted_names(names: list[str], group: EvalGroup, year: int, wrong: list[str]) -> set[str]:
    """The clips a group without a published list must hold: its own names, when each is an anonymised
    name of the group's section (the others are added to ``wrong``)."""
    section = group.group.rsplit("_section_", 1)[-1].split("_")[0]
    good = set()
    for n in names:
        parsed = evalset.parse_name(n)
        if parsed is not None and parsed[0] == min(year, 2022) and parsed[1].section == section:
            good.add(n)
        else:
            wrong.append(f"{group.group}:{n} (not an anonymised section_{section}_NNNN.wav name)")
    return good


def unlisted_warning(year: int, eval_list: Path | None) -> str | None:
    """What a package for a year without a published clip list could not check; None when all was."""
    try:
        if eval_list is not None or any(g.names_known for g in eval_groups(year)):
            return None
    except ValueError:
        return None
    return (
        f"no organisers' eval_data_list_{year}.csv was available to asdkit: the package has the {year} "
        "machine types' score files and anonymised clip names, but not every clip was checked; "
        "pass --eval-list with the organisers' list to check them"
    )


def _some(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def _read_config(run: Path) -> dict[str, Any]:
    return read_config(run) if (run / CONFIG_FILE).is_file() else {}


def metadata_yaml(label: str, run: Path, year: int, dev_run: Path | None, name: str | None) -> str:
    """The system's ``.meta.yaml``: the challenge's template, filled from the run's configuration."""
    from asdkit.reports.compare import overall_metrics

    config = _read_config(run)
    features = config.get("features") or {}
    model = str(config.get("model") or FILL_IN)
    results: dict[str, Any] = {}
    source = dev_run if dev_run is not None else (run if (run / RESULT_FILE).is_file() else None)
    if source is not None:
        results = {k: round(float(v), 4) for k, v in overall_metrics(Path(source)).items()}
    meta = {
        "submission": {
            "label": label,
            "name": name or f"asdkit {model}",
            "abbreviation": (name or model)[:10],
            "authors": [
                {
                    "lastname": FILL_IN,
                    "firstname": FILL_IN,
                    "email": FILL_IN,
                    "corresponding": True,
                    "affiliation": {"institution": FILL_IN, "location": FILL_IN},
                }
            ],
        },
        "system": {
            "description": {
                "input_sampling_rate": f"{int(features.get('sample_rate', 16000)) // 1000}kHz",
                "data_augmentation": FILL_IN,
                "front_end": "none",
                "acoustic_features": (
                    f"log-mel energies ({features.get('n_mels', '?')} bands, "
                    f"n_fft {features.get('n_fft', '?')}, hop {features.get('hop_length', '?')})"
                ),
                "machine_learning_method": model,
                "parameters": config.get("params") or {},
                "ensemble_method_subsystem_count": 1,
                "decision_making": "threshold at the gamma-distribution 90th percentile of held-out scores",
                "external_data_usage": "none",
            },
            "source_code": FILL_IN,
            "asdkit_run": {
                "asdkit": (config.get("environment") or {}).get("asdkit"),
                "seed": config.get("seed"),
                "data": config.get("data"),
                "command_line": (config.get("environment") or {}).get("command_line"),
            },
        },
        "results": {"development_dataset": results or FILL_IN},
        "technical_report": {"title": FILL_IN, "year": year},
    }
    return (
        f"# DCASE{year} Task 2 submission metadata, written by asdkit submit; replace every {FILL_IN}.\n"
        + (yaml.safe_dump(meta, sort_keys=False, allow_unicode=True))
    )
