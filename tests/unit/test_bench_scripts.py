"""The quality harness's pieces that decide what is measured: configuration parsing and protocol folds."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest


def _script(name: str) -> ModuleType:
    """A benchmark script as a module, without putting benchmarks/ on everyone's import path."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script runs
    spec.loader.exec_module(module)
    return module


bench_quality = _script("bench_quality")
parse_config = bench_quality.parse_config
build = _script("real_protocol").build


def test_configuration_values_may_hold_commas_inside_json():
    folder, model, params = parse_config(
        'ensemble:members=["mahalanobis",{"model":"patch_bank","params":{"aggregate":"mean"}}],normalise=rank'
    )
    assert model == "ensemble"
    assert params == {
        "members": ["mahalanobis", {"model": "patch_bank", "params": {"aggregate": "mean"}}],
        "normalise": "rank",
    }
    assert "," not in folder and "/" not in folder
    assert parse_config('knn:quantiles="0.1,0.9",k=2')[2] == {"quantiles": "0.1,0.9", "k": 2}


def _sample(root: Path) -> Path:
    """A DCASE2020-style sample: id 06 with five normals and two anomalies, id 00 with two normals."""
    test = root / "fan" / "test"
    test.mkdir(parents=True)
    for name in [f"normal_id_06_{i:08d}.wav" for i in range(5)] + [
        "anomaly_id_06_00000100.wav",
        "anomaly_id_06_00000101.wav",
        "normal_id_00_00000000.wav",
        "normal_id_00_00000001.wav",
    ]:
        (test / name).write_bytes(b"")
    return root


@pytest.mark.parametrize("test_normals", [1, 2])
def test_protocol_folds_test_every_evaluated_normal_and_never_train_on_a_tested_one(tmp_path, test_normals):
    source = _sample(tmp_path / "sample")
    tested: set[str] = set()
    folds = -(-5 // test_normals)
    for fold in range(folds):
        out = tmp_path / f"fold{fold}"
        summary = build(source, out, test_normals, fold)
        assert summary["fan"] == ("06", 7 - test_normals, test_normals + 2, folds)
        test = {p.name for p in (out / "fan" / "test").iterdir()}
        train = {p.name for p in (out / "fan" / "train").iterdir()}
        assert not test & train and "normal_id_00_00000000.wav" in train
        tested |= {n for n in test if n.startswith("normal")}
    assert tested == {f"normal_id_06_{i:08d}.wav" for i in range(5)}
    with pytest.raises(SystemExit, match="--fold"):
        build(source, tmp_path / "bad", test_normals, folds)


def test_selection_report_gives_the_default_gap_and_the_rank_correlation():
    selection = _script("bench_selection")
    rows = []
    for seed in (0, 1):
        # evidence ranks a > b > c, real ranks them the same: rho = +1; the default chose b (real 0.7)
        for name, evidence, real, chosen in (("a", 0.9, 0.8, 0), ("b", 0.8, 0.7, 1), ("c", 0.7, 0.6, 0)):
            rows.append(
                {"data": "d", "machine": "fan", "seed": seed, "candidate": name, "evidence": evidence,
                 "real": real, "chosen": chosen}
            )  # fmt: skip
        rows.append({"data": "d", "machine": "fan", "seed": seed, "candidate": "DEFAULT", "evidence": None,
                     "real": 0.7, "chosen": 0})  # fmt: skip
    text = selection.report(rows)
    assert "| d | fan | 0.700 | a | 0.800 | -0.100 | +1.00 |" in text
    assert "| d | fan | b | 0.800 ± 0.000 | 0.700 ± 0.000 | 2/2 |" in text
    assert selection.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_the_scale_benchmark_sizes_are_the_real_ones_and_a_quarter(tmp_path):
    scale = _script("bench_scale")
    full, quarter = scale.TREES["dcase2023"], scale.TREES["dcase2023"].scaled(True)
    assert full.n_train() == 7 * 1000 and full.n_train(["pump"]) == 1000
    assert quarter.n_train(["pump"]) == 257  # 247 source + the 10 target clips a real set has
    assert scale.TREES["dcase2020"].n_train() >= 3000
    assert not scale.machine_ready(quarter, tmp_path, "pump")  # nothing written: generated, not reused


@pytest.mark.parametrize("scheme", ["dcase2020", "dcase2022"])
def test_per_machine_scores_are_the_official_statistic_of_each_machine_type_alone(scheme):
    from asdkit.metrics import ScoreRecord, ScoreTable, evaluate

    rng = np.random.default_rng(0)

    def records(machine: str, shift: float) -> list[ScoreRecord]:
        return [
            ScoreRecord(
                machine, s, d, label, float(rng.normal() + label * shift), name=f"{machine}{s}{d}{label}{i}"
            )
            for s in ("00", "01")
            for d in ("source", "target")
            for label in (0, 1)
            for i in range(8)
        ]

    fan, valve = records("fan", 2.0), records("valve", 0.3)
    both = bench_quality.machine_scores(evaluate(ScoreTable(fan + valve, scheme)))
    # each machine type's score is the official score of an evaluation of that machine type alone
    for machine, recs in (("fan", fan), ("valve", valve)):
        alone = evaluate(ScoreTable(recs, scheme)).official_score
        assert both[machine] == pytest.approx(alone, abs=1e-12)
    assert both["fan"] > both["valve"]


def test_per_machine_rows_give_mean_and_sample_std_over_seeds(tmp_path, monkeypatch):
    scores = {0: {"fan": 0.6, "valve": 0.5}, 1: {"fan": 0.8, "valve": 0.5}}
    monkeypatch.setattr(bench_quality, "load_run", lambda d: SimpleNamespace(evaluation=int(d.name[-1])))
    monkeypatch.setattr(bench_quality, "machine_scores", lambda seed: scores[seed])
    rows = bench_quality.per_machine_rows([tmp_path / "knn"], [0, 1])
    assert rows[0] == ["configuration", "machine", "mean", "std", "seed_0", "seed_1"]
    assert rows[1] == ["knn", "fan", "0.7000", "0.1414", "0.6000", "0.8000"]
    assert rows[2] == ["knn", "valve", "0.5000", "0.0000", "0.5000", "0.5000"]


def _per_machine(folder: Path, rows: list[tuple[str, str, float]]) -> Path:
    folder.mkdir(parents=True)
    lines = ["configuration,machine,mean,std,seed_0"] + [f"{c},{m},{v},0.0,{v}" for c, m, v in rows]
    (folder / "per_machine.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_default_rule_puts_the_real_worst_gap_first_then_all_units_then_the_real_mean(tmp_path):
    choice = _script("default_choice")
    singles = ("a", "b")
    # real fan, mean of two folds: a 0.8, b 0.6; best single 0.8
    folds = [
        _per_machine(
            tmp_path / "f0",
            [("a", "fan", 0.9), ("b", "fan", 0.6), ("x", "fan", 0.8), ("y", "fan", 0.79), ("z", "fan", 0.6)],
        ),
        _per_machine(
            tmp_path / "f1",
            [("a", "fan", 0.7), ("b", "fan", 0.6), ("x", "fan", 0.8), ("y", "fan", 0.79), ("z", "fan", 0.6)],
        ),
    ]
    # synthetic valve: b best (0.7); x trails by 0.2, y by 0.05, z leads
    synthetic = _per_machine(
        tmp_path / "s",
        [
            ("a", "valve", 0.5),
            ("b", "valve", 0.7),
            ("x", "valve", 0.5),
            ("y", "valve", 0.65),
            ("z", "valve", 0.9),
        ],
    )
    units = choice.units(folds, [synthetic])
    assert [u.name for u in units] == ["real / fan", "s / valve"]
    assert units[0].scores["a"] == pytest.approx(0.8)
    ranked = choice.rank(units, ["x", "y", "z"], singles, tie=0.01)
    # x (real gap 0) and y (0.01) tie on the real units; y's worst gap overall is smaller; z trails on real
    assert [r["configuration"] for r in ranked] == ["y", "x", "z"]
    assert ranked[0]["worst_gap"] == pytest.approx(0.05) and ranked[2]["worst_real_gap"] == pytest.approx(0.2)
    assert [r["configuration"] for r in choice.rank(units, ["x", "y", "z"], singles, tie=0.0)] == [
        "x",
        "y",
        "z",
    ]


def test_a_real_unit_is_per_seed_the_mean_of_its_folds_and_the_table_marks_the_default_gap(tmp_path):
    choice = _script("default_choice")
    head = "configuration,machine,mean,std,seed_0,seed_1\n"
    folds = []
    for fold, (a0, a1) in enumerate(((0.6, 0.8), (0.8, 1.0))):
        folder = tmp_path / f"f{fold}"
        folder.mkdir()
        lines = [f"a,fan,{(a0 + a1) / 2},0,{a0},{a1}", "d,fan,0.5,0,0.5,0.5"]
        (folder / "per_machine.csv").write_text(head + "\n".join(lines) + "\n")
        folds.append(folder)
    (unit,) = choice.units(folds, [])
    np.testing.assert_allclose(unit.per_seed["a"], [0.7, 0.9])
    assert unit.scores["a"] == pytest.approx(0.8) and unit.stds["a"] == pytest.approx(
        np.std([0.7, 0.9], ddof=1)
    )
    rows = choice.unit_rows([unit], ["a", "d"], ("a",), default="d")
    assert rows[0][-2:] == ["d - best", "within 0.02"]
    assert rows[1] == ["real / fan", "0.800 ± 0.141", "0.500 ± 0.000", "a", "-0.300", "no"]
