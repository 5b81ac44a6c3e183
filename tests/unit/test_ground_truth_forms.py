"""Every form in which the official evaluators ship their ground truth gives the same labels and numbers.

The real lists (``../shared/data/evaluator_ground_truth``) are read as a user would point at them: the
evaluator's root folder, its ``ground_truth_data/`` folder (domains found beside it) and single files.
A made-up submission that scores every listed clip is then evaluated with each form.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from asdkit import api
from asdkit.data.ground_truth import load_ground_truth
from asdkit.data.naming import evalset
from asdkit.errors import DataError

GT = "evaluator_ground_truth"
#: Evaluator folders with ground_truth_data/, and the year their lists are.
EVALUATORS = {
    "y-kawagu_dcase2021_task2_evaluator": 2021,
    "Kota-Dohi_dcase2022_evaluator": 2022,
    "nttcslab_dcase2023_task2_evaluator": 2023,
    "nttcslab_dcase2024_task2_evaluator": 2024,
}
EVAL_LISTS = "nttcslab_dcase2023_task2_baseline_ae/datasets"
SCHEME = {2020: "dcase2020", 2021: "dcase2021"}


def _root(shared_data: Path, name: str) -> Path:
    path = shared_data / GT / name
    if not path.is_dir():
        pytest.skip(f"{name} is absent")
    return path


def _group(machine: str, name: str) -> str:
    parsed = evalset.parse_name(name)
    if parsed is None:
        raise AssertionError(f"not an evaluation-set name: {name}")
    year, fields = parsed
    return evalset.group(year, machine, fields.section, fields.domain)


def write_submission(folder: Path, keys: list[tuple[str, str]], seed: int = 0) -> Path:
    """One score per listed clip, in the challenge's file names; scores are seeded noise."""
    rng = np.random.default_rng(seed)
    groups: dict[str, list[tuple[str, str]]] = {}
    for machine, name in sorted(keys):
        groups.setdefault(_group(machine, name), []).append((name, repr(float(rng.random()))))
    folder.mkdir(parents=True, exist_ok=True)
    for group, rows in groups.items():
        with open(folder / f"anomaly_score_{group}.csv", "w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(rows)
    return folder


@pytest.mark.shared
@pytest.mark.parametrize("evaluator", sorted(EVALUATORS))
def test_evaluator_root_labels_folder_and_single_file_agree(shared_data, evaluator):
    root = _root(shared_data, evaluator)
    year = EVALUATORS[evaluator]
    whole = load_ground_truth(root)
    labels_only = load_ground_truth(root / "ground_truth_data")
    assert labels_only.labels and labels_only.labels.items() <= whole.labels.items()
    # The root may name clips twice (2024: correspondence tables); they are the same recordings.
    machines = labels_only.machines()
    assert set(labels_only.listed(machines)) == set(whole.listed(machines))
    # Domains come from the file names (2021) or from ground_truth_domain/ beside the labels folder.
    assert set(labels_only.domains) >= set(labels_only.labels)
    assert {labels_only.domains[k] for k in labels_only.labels} == {"source", "target"}
    assert whole.year_of(whole.labels) == year and labels_only.year_of(whole.labels) == year

    one_file = sorted((root / "ground_truth_data").glob("*.csv"))[0]
    single = load_ground_truth(one_file)
    assert single.labels and set(single.labels) <= set(whole.labels)
    assert all(single.domains[k] == whole.domains[k] for k in single.labels)


@pytest.mark.shared
@pytest.mark.parametrize("evaluator", sorted(EVALUATORS))
def test_a_full_submission_gets_one_official_score_from_every_form(shared_data, tmp_path, evaluator):
    root = _root(shared_data, evaluator)
    year = EVALUATORS[evaluator]
    truth = load_ground_truth(root / "ground_truth_data")
    submission = write_submission(tmp_path / "submission", list(truth.labels))
    one_file = sorted((root / "ground_truth_data").glob("*.csv"))[0]
    scores = {}
    for form in (root, root / "ground_truth_data"):
        ev = api.evaluate(submission, ground_truth=form)
        assert ev.scheme == SCHEME.get(year, "dcase2022") and ev.rules.year == year
        assert ev.coverage is not None and ev.coverage.complete
        assert not ev.left_out
        scores[form] = ev.official_score
    assert len(set(scores.values())) == 1
    # A single file lists one section: the rest of the submission has no truth and is refused by name.
    with pytest.raises(DataError, match="pass the ground truth"):
        api.evaluate(submission, ground_truth=one_file)


@pytest.mark.shared
@pytest.mark.parametrize("year", [2020, 2021, 2022, 2023, 2024, 2025])
def test_each_years_eval_list_alone_labels_and_dates_its_clips(shared_data, tmp_path, year):
    path = _root(shared_data, EVAL_LISTS) / f"eval_data_list_{year}.csv"
    if not path.is_file():
        pytest.skip(f"{path.name} is absent")
    truth = load_ground_truth(path)
    assert truth.labels and truth.year_of(truth.labels) == year
    if year >= 2021:
        assert set(truth.domains) >= set(truth.labels)
    submission = write_submission(tmp_path / "submission", list(truth.labels), seed=year)
    ev = api.evaluate(submission, ground_truth=path)
    assert ev.scheme == SCHEME.get(year, "dcase2022") and ev.rules.year == year
    assert ev.coverage is not None and ev.coverage.complete
