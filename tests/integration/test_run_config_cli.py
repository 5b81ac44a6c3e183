"""``asdkit run --config``: a recipe sets the run, flags and --param override it, config.json repeats it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asdkit.data.synthetic import SyntheticSpec, generate
from asdkit.detectors.registry import get_detector_class
from tests.helpers.cli import asdkit_cli as cli

SPEC = SyntheticSpec.tiny(machines=("pump", "fan"))


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("d22") / "data", layout="dcase2022", spec=SPEC)


def test_recipe_flags_override_and_config_json_repeats(tree, tmp_path):
    out = tmp_path / "runs" / "knn"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"# test recipe\nmodel: knn\ndata: {tree}\nout: {out}\nmachines: [fan]\n"
        "params: {k: 2, metric: cosine}\nfeatures: {n_mels: 64}\nplots: false\n"
    )
    common = ("--no-track", "-q", "--cache-dir", str(tmp_path / "cache"))
    first = cli("run", "--config", str(recipe), "--param", "k=3", *common)
    assert first.returncode == 0, first.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "knn" and config["machines"] == ["fan"]
    assert config["params"]["k"] == 3 and config["params"]["metric"] == "cosine"  # --param wins per key
    assert config["features"]["n_mels"] == 64
    assert not (out / "plots").exists()

    again = tmp_path / "runs" / "again"
    second = cli("run", "--config", str(out / "config.json"), "--out", str(again), "--seed", "4", *common)
    assert second.returncode == 0, second.stderr
    repeated = json.loads((again / "config.json").read_text())
    for key in ("model", "machines", "params", "features", "layout"):
        assert repeated[key] == config[key], key
    assert repeated["seed"] == 4
    first_scores = sorted(p.name for p in (out / "scores").iterdir())
    assert first_scores == sorted(p.name for p in (again / "scores").iterdir())


def test_bad_recipe_is_one_line(tree, tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(f"model: knn\ndata: {tree}\nout: {tmp_path / 'o'}\nparams: {{kk: 2}}\n")
    res = cli("run", "--config", str(recipe), "--no-track", "-q")
    assert res.returncode == 2
    known = ", ".join(get_detector_class("knn")().get_params())
    assert res.stderr.strip() == f"error: {recipe}: params.kk: not a parameter of knn ({known})"
    assert not (tmp_path / "o").exists()
    res = cli(
        "run", "--config", "cpjku2021_resnet_step2_ccsa", "--data", str(tree), "--out", str(tmp_path / "s")
    )
    assert res.returncode == 2 and "params.init_from: required" in res.stderr
