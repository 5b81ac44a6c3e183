"""The frozen-BEATs recipe end to end with a random-weight checkpoint in the published format (tiny
config): ``asdkit run`` completes, model.json fingerprints the weights, ``asdkit score`` and the service
score new clips, and a missing, wrong or swapped checkpoint is one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from asdkit import api
from asdkit.data.synthetic import SyntheticSpec, generate
from asdkit.models.encoders import checkpoint_sha256
from asdkit.models.encoders.beats import Beats
from tests.helpers.cli import asdkit_cli as cli

RECIPE = "genrep2025_frozen_beats_knn"


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    spec = SyntheticSpec.tiny(machines=("fan",))
    return generate(tmp_path_factory.mktemp("d22") / "data", layout="dcase2022", spec=spec)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return Beats.save_random_checkpoint(tmp_path_factory.mktemp("weights") / "BEATs_random.pt", seed=1)


@pytest.fixture(scope="module")
def run(tree, checkpoint, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    out = root / "frozen"
    given = ("--config", RECIPE, "--param", f"checkpoint={checkpoint}")
    done = cli("run", "--data", str(tree), "--out", str(out), *given, "--no-track", "-q",
               "--cache-dir", str(root / "cache"))  # fmt: skip
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
    from fastapi.testclient import TestClient

    from asdkit.service.app import create_app
    from asdkit.service.models import load_served_models

    clip = sorted((tree / "fan" / "test").glob("*.wav"))[0]
    new = shutil.copy(clip, tmp_path / clip.name)
    scored = cli("score", str(run), str(new), "--machine", "fan", "--cache-dir", str(tmp_path / "cache"))
    assert scored.returncode == 0, scored.stderr
    row = scored.stdout.strip().splitlines()[-1].split(",")
    offline, _ = api.score(run, [new], machine="fan", cache_dir=tmp_path / "cache2")
    assert float(row[2]) == pytest.approx(offline[0].score, rel=1e-6)
    with TestClient(create_app(load_served_models(run))) as client:
        body = client.post(
            "/score?model=fan", files={"file": (new.name, new.read_bytes(), "audio/wav")}
        ).json()
    assert body["detector"] == "knn"
    assert body["score"] == pytest.approx(offline[0].score, rel=1e-4, abs=1e-6)


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
    done = cli("run", "--data", str(tree), "--out", str(out), "--config", RECIPE, "--param",
               f"checkpoint={path}", "--no-track", "-q", "--cache-dir", str(tmp_path / "cache"))  # fmt: skip
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(path) in errors[0] and "github.com/microsoft/unilm" in errors[0]
    assert json.loads((out / "config.json").read_text())["status"] != "complete"
