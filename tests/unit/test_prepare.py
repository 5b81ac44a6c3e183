"""``asdkit prepare``: the evaluator's ground truth lands where ``--ground-truth`` reads it."""

from __future__ import annotations

import pytest

from asdkit.data.ground_truth import load_ground_truth
from asdkit.data.layouts import scan
from asdkit.data.prepare import prepare_ground_truth
from asdkit.errors import DataError
from tests.helpers.trees import make_tree


def test_prepared_ground_truth_labels_the_eval_set(tmp_path):
    gt = tmp_path / "evaluator" / "ground_truth_data"
    data = make_tree(tmp_path / "data" / "dcase2022" / "eval_data", "eval", ground_truth=gt, year=2022)
    dest, n = prepare_ground_truth("2022", gt, tmp_path / "data")
    assert dest == tmp_path / "data" / "dcase2022" / "ground_truth" and n > 0
    assert load_ground_truth(dest).labels == load_ground_truth(gt).labels
    manifest = scan(data, layout="eval", ground_truth=dest)
    assert all(c.label is not None for c in manifest if c.split == "test")


def test_a_folder_without_lists_leaves_nothing(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="no official ground-truth lists"):
        prepare_ground_truth("2023", tmp_path / "junk", tmp_path / "data")
    assert not (tmp_path / "data").exists()
