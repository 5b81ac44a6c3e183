"""The fine-tuned BEATs recipe end to end with a random-weight checkpoint in the published format (tiny
config, a few steps): ``asdkit run`` completes, the model holds the fine-tuned encoder (LoRA merged, no
need for the user's file to score), ``asdkit score`` and the service score new clips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asdkit.models.encoders import checkpoint_sha256
from tests.helpers.beats_recipes import (
    assert_checkpoint_fails_in_one_line,
    assert_new_clip_scored_alike,
    fan_tree,
    random_checkpoint,
    run_recipe,
)

RECIPE = "dcase2025_finetuned_beats_arcface"
#: the recipe at a size for 2 CPU cores: the tiny encoder, one epoch of 1-s crops, bf16 autocast
TINY = ("epochs=1", "batch_size=8", "segment_seconds=1.0", "embedding_dim=16", "accelerator=cpu",
        "precision=bf16-mixed")  # fmt: skip


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return fan_tree(tmp_path_factory.mktemp("d22"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return random_checkpoint(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def run(tree, checkpoint, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    out = root / "finetuned"
    done = run_recipe(tree, out, root / "cache", RECIPE, f"checkpoint={checkpoint}", *TINY, timeout=900)
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
    moved = checkpoint.rename(checkpoint.with_suffix(".away"))  # the fine-tuned weights are in the model
    try:
        assert_new_clip_scored_alike(run, tree, tmp_path, detector="finetune")
    finally:
        moved.rename(checkpoint)


def test_a_missing_checkpoint_fails_the_run_in_one_line(tree, tmp_path):
    path = tmp_path / "missing.pt"
    out = tmp_path / "run"
    done = run_recipe(tree, out, tmp_path / "cache", RECIPE, f"checkpoint={path}", *TINY)
    assert_checkpoint_fails_in_one_line(done, path, out)
