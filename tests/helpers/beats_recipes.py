"""The BEATs recipes end to end on a tiny tree with a random-weight checkpoint in the published format:
what the frozen and the fine-tuned recipe's tests share (the tree, the weights, scoring a new clip three
ways, a checkpoint that fails the run)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from asdkit import api
from asdkit.data.synthetic import SyntheticSpec, generate
from asdkit.models.encoders.beats import Beats
from tests.helpers.cli import asdkit_cli as cli


def fan_tree(root: Path) -> Path:
    """A tiny synthetic dcase2022 tree with one machine type."""
    return generate(root / "data", layout="dcase2022", spec=SyntheticSpec.tiny(machines=("fan",)))


def random_checkpoint(root: Path) -> Path:
    return Beats.save_random_checkpoint(root / "BEATs_random.pt", seed=1)


def run_recipe(
    tree: Path, out: Path, cache: Path, recipe: str, *params: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``asdkit run --config RECIPE`` with each of ``params`` given as ``--param``."""
    given = [arg for p in params for arg in ("--param", p)]
    return cli("run", "--data", str(tree), "--out", str(out), "--config", recipe, *given, "--no-track", "-q",
               "--cache-dir", str(cache), timeout=timeout)  # fmt: skip


def assert_new_clip_scored_alike(run: Path, tree: Path, tmp_path: Path, detector: str) -> None:
    """``asdkit score``, :func:`api.score` and the service give a copied test clip the same score."""
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
    assert body["detector"] == detector
    assert body["score"] == pytest.approx(offline[0].score, rel=1e-4, abs=1e-6)


def assert_checkpoint_fails_in_one_line(
    done: subprocess.CompletedProcess[str], path: Path, out: Path
) -> None:
    """A bad checkpoint fails the run with one error line naming it; the run does not look complete."""
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(path) in errors[0] and "github.com/microsoft/unilm" in errors[0]
    config = out / "config.json"  # a missing file is named before the run folder is made
    assert not config.exists() or json.loads(config.read_text())["status"] != "complete"
