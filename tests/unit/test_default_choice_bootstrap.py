"""The bootstrap of `benchmarks/default_choice.py --bootstrap`: paired, stratified, with known answers."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from asdkit.metrics import ScoreRecord


def _script(name: str) -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


choice = _script("default_choice")

# One 2022+ section: 8 source and 4 target normals, 3 source and 3 target anomalies.
LAYOUT = [("source", 0)] * 8 + [("target", 0)] * 4 + [("source", 1)] * 3 + [("target", 1)] * 3
LABELS = np.array([label for _, label in LAYOUT])


def _records() -> list[ScoreRecord]:
    return [
        ScoreRecord("fan", "00", domain, label, 0.0, name=f"clip_{i:02d}.wav")
        for i, (domain, label) in enumerate(LAYOUT)
    ]


def _test_set(scores: dict[str, list[np.ndarray]]) -> object:
    return choice.TestSet(_records(), "dcase2022", scores)


def _noisy(rng: np.random.Generator, shift: float) -> np.ndarray:
    return rng.normal(size=len(LAYOUT)) + shift * LABELS


def test_a_draw_keeps_every_section_domain_and_label_at_its_size():
    test_set = _test_set({"a": [np.arange(len(LAYOUT), dtype=float)]})
    rng = np.random.default_rng(0)
    for _ in range(20):
        index = test_set.draw(rng)
        drawn = [LAYOUT[i] for i in index]
        assert sorted(drawn) == sorted(LAYOUT)
    assert len({test_set.draw(rng).tobytes() for _ in range(20)}) > 1


def test_full_data_score_is_the_evaluators_per_machine_score():
    perfect = np.where(LABELS == 1, 10.0, 0.0) + np.arange(len(LAYOUT)) * 0.01
    test_set = _test_set({"perfect": [perfect], "flat": [np.zeros(len(LAYOUT))]})
    scores = choice.unit_scores([test_set])
    assert scores["perfect"] == pytest.approx(1.0)
    assert scores["flat"] == pytest.approx(0.5)  # AUC 0.5 twice and McClish pAUC 0.5: their hmean


def test_identical_configurations_have_gap_exactly_zero_in_every_resample():
    rng = np.random.default_rng(1)
    shared = [_noisy(rng, 1.0), _noisy(rng, 1.0)]  # two seeds
    other = [_noisy(rng, 1.5), _noisy(rng, 1.5)]
    test_set = _test_set({"a": shared, "b": [v.copy() for v in shared], "c": other})
    result = choice.bootstrap([test_set], ("a", "b", "c"), 60, np.random.default_rng(2))
    gap_a, gap_b = result.fixed["a"], result.fixed["b"]
    np.testing.assert_array_equal(gap_a, gap_b)  # paired: the same clips for both, every time
    np.testing.assert_array_equal(result.repicked["a"], result.repicked["b"])
    assert result.full["a"] == result.full["b"]


def test_a_perfect_detector_against_one_at_chance_is_behind_far_from_zero():
    perfect = np.where(LABELS == 1, 10.0, 0.0) + np.arange(len(LAYOUT)) * 0.01
    flat = np.zeros(len(LAYOUT))
    test_set = _test_set({"perfect": [perfect], "flat": [flat]})
    result = choice.bootstrap([test_set], ("perfect", "flat"), 100, np.random.default_rng(3))
    np.testing.assert_allclose(result.fixed["flat"], 0.5)  # 1.0 - 0.5 on every resample
    np.testing.assert_allclose(result.fixed["perfect"], 0.0)
    low, high = choice.interval(result.fixed["flat"])
    assert choice.verdict(low, high) == "behind" and low == pytest.approx(0.5)
    assert choice.verdict(*choice.interval(result.fixed["perfect"])) == "within"


def test_repicking_the_best_single_in_each_resample_can_only_widen_the_gap():
    rng = np.random.default_rng(4)
    # Two singles of almost equal quality: which one is best flips between resamples.
    x, y = _noisy(rng, 1.0), _noisy(rng, 1.0)
    test_set = _test_set({"x": [x], "y": [y], "fusion": [(x + y) / 2]})
    result = choice.bootstrap([test_set], ("x", "y"), 150, np.random.default_rng(5))
    best = min(("x", "y"), key=lambda c: result.full[c])
    assert result.full[best] == 0.0
    np.testing.assert_array_equal(result.fixed[best], 0.0)
    for c in ("x", "y", "fusion"):
        assert np.all(result.repicked[c] >= result.fixed[c] - 1e-12)
    assert np.mean(result.repicked[best] > 0) > 0.05  # the other single wins some resamples
    low, high = choice.interval(result.fixed["fusion"])
    assert low < result.full["fusion"] < high


def test_a_real_unit_averages_its_folds_and_draws_each_fold_on_its_own():
    rng = np.random.default_rng(6)
    folds = [_test_set({"a": [_noisy(rng, 1.0)], "b": [_noisy(rng, 2.0)]}) for _ in range(3)]
    full = choice.unit_scores(folds)
    per_fold = [choice.unit_scores([f]) for f in folds]
    assert full["a"] == pytest.approx(np.mean([s["a"] for s in per_fold]))
    result = choice.bootstrap(folds, ("a", "b"), 50, np.random.default_rng(7))
    assert result.fixed["a"].shape == (50,) and np.ptp(result.fixed["a"]) > 0


@pytest.mark.parametrize(
    ("low", "high", "word"),
    [(0.03, 0.2, "behind"), (-0.1, 0.02, "within"), (0.0, 0.05, "undecided"), (0.02, 0.03, "undecided")],
)
def test_verdict_reads_the_interval_against_the_bar(low, high, word):
    assert choice.verdict(low, high) == word


def test_run_folders_are_read_back_and_must_agree_with_per_machine_csv(tmp_path):
    from asdkit import api
    from tests.helpers.trees import make_tree

    bench_quality = _script("bench_quality")
    data = make_tree(tmp_path / "data", "dcase2022", machines=("fan",), n_train=4, n_test=3)
    out = tmp_path / "bench"
    for model in ("mahalanobis", "knn"):
        api.run(data, out / model, model=model, seeds=[0, 1], cache_dir=out / "cache", plots=False, threads=1)
    rows = bench_quality.per_machine_rows([out / "mahalanobis", out / "knn"], [0, 1])
    (out / "per_machine.csv").write_text("\n".join(",".join(r) for r in rows) + "\n")
    sets = choice.read_test_sets(out, ["mahalanobis", "knn"])
    (fan,) = sets.values()
    # one stratum per section, domain and label, as the run's manifest records them
    keys = [
        {(fan.records[i].section, fan.records[i].domain, fan.records[i].label) for i in s} for s in fan.strata
    ]
    assert all(len(k) == 1 for k in keys)
    found = [next(iter(k)) for k in keys]
    assert len(set(found)) == len(found) and sum(map(len, fan.strata)) == len(fan.records)
    assert {d for _, d, _ in found} == {"source", "target"} and {y for _, _, y in found} == {0, 1}
    units = choice.units([], [out])
    resampled = choice.resampled_units([], [out], ["mahalanobis", "knn"], ("mahalanobis", "knn"), 20, 0)
    choice.check_full_gaps(units, resampled, ("mahalanobis", "knn"))  # the folders give the table's gaps
    rows[1][2] = f"{float(rows[1][2]) + 0.1:.4f}"
    rows[1][4:] = [f"{float(v) + 0.1:.4f}" for v in rows[1][4:]]
    (out / "per_machine.csv").write_text("\n".join(",".join(r) for r in rows) + "\n")
    with pytest.raises(SystemExit, match="other runs than the table"):
        choice.check_full_gaps(choice.units([], [out]), resampled, ("mahalanobis", "knn"))
