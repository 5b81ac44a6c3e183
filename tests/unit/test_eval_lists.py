"""The evaluation lists rebuilt from their rule equal the organisers' eval_data_list_<YEAR>.csv files."""

from __future__ import annotations

import pytest

from asdkit.reports.eval_lists import YEARS, eval_groups, groups_from_list_file

LISTS = "evaluator_ground_truth/nttcslab_dcase2023_task2_baseline_ae/datasets"


@pytest.mark.shared
@pytest.mark.parametrize("year", YEARS)
def test_rebuilt_list_equals_the_published_one(shared_data, year):
    path = shared_data / LISTS / f"eval_data_list_{year}.csv"
    if not path.is_file():
        pytest.skip(f"{path.name} is absent")
    published = groups_from_list_file(path.read_text(), year)
    rebuilt = eval_groups(year)
    assert [g.machine for g in rebuilt] == [g.machine for g in published]
    assert [(g.group, sorted(g.names)) for g in rebuilt] == [(g.group, sorted(g.names)) for g in published]


@pytest.mark.parametrize(
    ("year", "machines", "clips"), [(2020, 6, 7103), (2021, 7, 8635), (2022, 7, 4200), (2023, 7, 1400)]
)
def test_list_sizes(year, machines, clips):
    groups = eval_groups(year)
    assert len({g.machine for g in groups}) == machines
    assert sum(len(g.names) for g in groups) == clips
