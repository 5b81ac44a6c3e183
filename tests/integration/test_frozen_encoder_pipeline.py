"""The frozen-BEATs recipe end to end with a random-weight checkpoint in the published format (tiny
config): ``asdkit run`` completes, model.json fingerprints the weights, ``asdkit score`` and the service
score new clips, and a missing, wrong or swapped checkpoint is one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from asdkit.models.encoders import checkpoint_sha256
from asdkit.models.encoders.beats import Beats
from tests.helpers.beats_recipes import (
    assert_checkpoint_fails_in_one_line,
    assert_new_clip_scored_alike,
    fan_tree,
    random_checkpoint,
    run_recipe,
)
from tests.helpers.cli import asdkit_cli as cli

RECIPE = "genrep2025_frozen_beats_knn"


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return fan_tree(tmp_path_factory.mktemp("d22"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return random_checkpoint(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def run(tree, checkpoint, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    out = root / "frozen"
    done = run_recipe(tree, out, root / "cache", RECIPE, f"checkpoint={checkpoint}")
    assert done.returncode == 0, done.stderr
    return out


def test_the_frozen_recipe_completes_and_fingerprints_the_weights(run, checkpoint):
    config = json.loads((run / "config.json").read_text())
    assert config["status"] == "complete"
    model = json.loads((run / "models" / "fan" / "model.json").read_text())
    beats = model["inputs"]["beats"]
    assert beats["front_end"] == "beats"
    assert beats["config"]["weights_sha256"] == checkpoint_sha256(checkpoint)
    assert beats["config"]["checkpoint"] == str(checkpoint)
    assert model["inputs"]["logmel"]["config"] == model["features"]
    assert model["params"]["input"] == "beats" and model["params"]["metric"] == "cosine"
    assert list((run / "scores").glob("anomaly_score_*.csv"))


def test_asdkit_score_and_the_service_score_new_clips(run, tree, tmp_path):
    assert_new_clip_scored_alike(run, tree, tmp_path, detector="knn")


def test_a_swapped_checkpoint_is_refused_when_scoring(run, tree, checkpoint, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    other = Beats.save_random_checkpoint(tmp_path / "other.pt", seed=9)
    model_json = copy / "models" / "fan" / "model.json"
    model = json.loads(model_json.read_text())
    model["params"]["checkpoint"] = str(other)
    model_json.write_text(json.dumps(model))
    clip = sorted((tree / "fan" / "test").glob("*.wav"))[0]
    scored = cli("score", str(copy), str(clip), "--machine", "fan", "--cache-dir", str(tmp_path / "cache"))
    assert scored.returncode != 0
    assert "is not the checkpoint this model was fitted with" in scored.stderr
    assert len(scored.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("given", ["missing.pt", "junk.pt"])
def test_a_missing_or_wrong_checkpoint_fails_the_run_in_one_line(tree, tmp_path, given):
    path = tmp_path / given
    if given == "junk.pt":
        path.write_text("not weights")
    out = tmp_path / "run"
    done = run_recipe(tree, out, tmp_path / "cache", RECIPE, f"checkpoint={path}")
    assert_checkpoint_fails_in_one_line(done, path, out)
