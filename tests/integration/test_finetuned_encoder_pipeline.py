"""The fine-tuned BEATs recipe end to end with a random-weight checkpoint in the published format (tiny
config, a few steps): ``asdkit run`` completes, the model holds the fine-tuned encoder (LoRA merged, no
need for the user's file to score), ``asdkit score`` and the service score new clips."""

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

RECIPE = "dcase2025_finetuned_beats_arcface"
#: the recipe at a size for 2 CPU cores: the tiny encoder, one epoch of 1-s crops, bf16 autocast
TINY = ("epochs=1", "batch_size=8", "segment_seconds=1.0", "embedding_dim=16", "accelerator=cpu",
        "precision=bf16-mixed")  # fmt: skip


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
    out = root / "finetuned"
    params = [arg for p in (f"checkpoint={checkpoint}", *TINY) for arg in ("--param", p)]
    done = cli("run", "--data", str(tree), "--out", str(out), "--config", RECIPE, *params, "--no-track", "-q",
               "--cache-dir", str(root / "cache"), timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


def test_the_finetuned_recipe_completes_with_the_finetuned_encoder_saved(run, checkpoint):
    config = json.loads((run / "config.json").read_text())
    assert config["status"] == "complete"
    model = json.loads((run / "models" / "fan" / "model.json").read_text())
    assert model["detector"] == "finetune"
    assert model["params"]["tuning"] == "lora" and model["params"]["head"] == "arcface"
    assert model["inputs"]["waveform"]["config"]["sample_rate"] == 16000
    embedder = model["state"]["embedder"]
    assert embedder["weights_sha256"] == checkpoint_sha256(checkpoint)
    assert all(c[-1].startswith("domain=") for c in embedder["classes"])  # attribute + domain classes
    assert list((run / "scores").glob("anomaly_score_*.csv"))


def test_asdkit_score_and_the_service_score_new_clips_without_the_users_file(run, tree, checkpoint, tmp_path):
    from fastapi.testclient import TestClient

    from asdkit.service.app import create_app
    from asdkit.service.models import load_served_models

    clip = sorted((tree / "fan" / "test").glob("*.wav"))[0]
    new = shutil.copy(clip, tmp_path / clip.name)
    moved = checkpoint.rename(checkpoint.with_suffix(".away"))  # the fine-tuned weights are in the model
    try:
        scored = cli("score", str(run), str(new), "--machine", "fan", "--cache-dir", str(tmp_path / "c"))
        assert scored.returncode == 0, scored.stderr
        row = scored.stdout.strip().splitlines()[-1].split(",")
        offline, _ = api.score(run, [new], machine="fan", cache_dir=tmp_path / "c2")
        assert float(row[2]) == pytest.approx(offline[0].score, rel=1e-6)
        with TestClient(create_app(load_served_models(run))) as client:
            body = client.post(
                "/score?model=fan", files={"file": (new.name, new.read_bytes(), "audio/wav")}
            ).json()
        assert body["detector"] == "finetune"
        assert body["score"] == pytest.approx(offline[0].score, rel=1e-4, abs=1e-6)
    finally:
        moved.rename(checkpoint)


def test_a_missing_checkpoint_fails_the_run_in_one_line(tree, tmp_path):
    path = tmp_path / "missing.pt"
    out = tmp_path / "run"
    params = [arg for p in (f"checkpoint={path}", *TINY) for arg in ("--param", p)]
    done = cli("run", "--data", str(tree), "--out", str(out), "--config", RECIPE, *params, "--no-track", "-q",
               "--cache-dir", str(tmp_path / "cache"))  # fmt: skip
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(path) in errors[0] and "github.com/microsoft/unilm" in errors[0]
    assert json.loads((out / "config.json").read_text())["status"] != "complete"
