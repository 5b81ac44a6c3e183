"""DDP from the command line: two CPU processes (gloo), as a user with two GPUs would type it.

Lightning's ``ddp`` strategy starts the command again for the second rank; only rank 0 may lock and write
the run directory. ``ddp_spawn`` trains in spawned processes; its training curve must still come back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from asdkit.rundir import (
    CONFIG_FILE,
    LOCK_NAME,
    MANIFEST_FILE,
    MODEL_FILE,
    MODELS_DIR,
    RESULT_FILE,
    SCORES_DIR,
)
from tests.helpers.trees import make_tree

#: Bounded: a hang in a collective (a rank waiting for one that never comes) fails the test, not CI.
TIMEOUT_S = 300


#: ``asdkit`` as its console script runs it, plus a note at exit of each process's rank and world size
#: (Lightning starts this same script again for rank 1).
WRAPPER = """
import atexit, json, os, sys
from pathlib import Path

def note():
    import torch.distributed as dist
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    rank = os.environ.get("LOCAL_RANK", "0")
    Path(os.environ["RANK_NOTES"], f"rank{rank}.json").write_text(json.dumps({"world": world}))

if __name__ == "__main__":  # ddp_spawn's processes import this file again
    atexit.register(note)
    from asdkit.cli.main import main
    main()
"""


def _asdkit(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "asdkit_cli.py"
    script.write_text(WRAPPER)
    notes = tmp_path / "notes"
    notes.mkdir(exist_ok=True)
    env = {**os.environ, "RANK_NOTES": str(notes)}
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=TIMEOUT_S, env=env
    )


def _worlds(tmp_path: Path) -> dict[str, int]:
    return {p.stem: json.loads(p.read_text())["world"] for p in sorted((tmp_path / "notes").glob("*.json"))}


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "ddp_spawn"])
def test_a_two_process_run_ends_complete_with_one_set_of_outputs(tmp_path, strategy):
    tree = make_tree(tmp_path / "data", "dcase2022", machines=("fan",), n_train=6)
    out = tmp_path / "run"
    done = _asdkit(
        tmp_path, "run", "--data", str(tree), "--out", str(out), "--model", "ae",
        "--cache-dir", str(tmp_path / "cache"), "--param", "epochs=2", "--param", "accelerator=cpu",
        "--param", "devices=2", "--param", f"strategy={strategy}", "--no-track", "--no-plots", "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    if strategy == "ddp":  # the command ran twice, both in one process group of two
        assert _worlds(tmp_path) == {"rank0": 2, "rank1": 2}
    assert "in use by another" not in done.stderr
    config = json.loads((out / CONFIG_FILE).read_text())
    assert config["status"] == "complete"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [CONFIG_FILE, MANIFEST_FILE, MODELS_DIR, RESULT_FILE, SCORES_DIR]
    )  # the lock is gone, nothing written twice or beside
    assert sorted(p.name for p in (out / MODELS_DIR).iterdir()) == ["fan"]
    model = json.loads((out / MODELS_DIR / "fan" / MODEL_FILE).read_text())
    assert [row["epoch"] for row in model["history"]] == [0.0, 1.0]
    assert all(row["train_loss"] > 0 for row in model["history"])
    assert len(list((out / SCORES_DIR).glob("anomaly_score_*.csv"))) == 2  # sections 00 and 01, once
    assert not (out / LOCK_NAME).exists()


@pytest.mark.slow
def test_a_two_process_train_refuses_a_second_writer_only_on_rank_zero(tmp_path):
    """``train`` takes the same path: rank 1 never meets the lock; a rerun into the folder is refused."""
    tree = make_tree(tmp_path / "data", "dcase2022", machines=("fan",), n_train=6)
    out = tmp_path / "models"
    args = [
        "train", "--data", str(tree), "--out", str(out), "--model", "ae",
        "--cache-dir", str(tmp_path / "cache"), "--param", "epochs=1", "--param", "accelerator=cpu",
        "--param", "devices=2", "--param", "strategy=ddp", "--no-track", "--quiet",
    ]  # fmt: skip
    done = _asdkit(tmp_path, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _worlds(tmp_path) == {"rank0": 2, "rank1": 2}
    assert json.loads((out / CONFIG_FILE).read_text())["status"] == "complete"
    again = _asdkit(tmp_path, *args)
    assert again.returncode == 2 and "already holds a run (status: complete)" in again.stderr
