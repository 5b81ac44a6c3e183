"""Several devices via Lightning DDP: a 2-process training on CPU (gloo) of a section classifier.

Lightning's ``ddp`` strategy re-launches the running script for each extra rank, so the training runs in a
small script in a subprocess (inside pytest it would re-run pytest).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = r"""
import json, os, sys
from pathlib import Path
import numpy as np
import torch
import torch.distributed as dist
torch.set_num_threads(1)
from asdkit.data.manifest import Clip
from asdkit.detectors.base import ClipFeatures
from asdkit.detectors.section.resnet import ResNetSectionDetector
from asdkit.features.config import FeatureConfig

out = Path(sys.argv[1])
seen = set()
plain_loss = ResNetSectionDetector._loss

def loss(self, network, batch):
    seen.add((dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1))
    return plain_loss(self, network, batch)

ResNetSectionDetector._loss = loss
rng = np.random.default_rng(0)
config = FeatureConfig(n_mels=16)
arrays, clips = [], []
for i in range(16):
    x = np.linspace(-20, -60, 16)[:, None] + rng.normal(0, 1, (16, 32))
    x[3 + 6 * (i % 2)] += 10
    arrays.append(x.astype(np.float32))
    clips.append(Clip(path=f"/d/{i}.wav", machine="m", section=f"0{i % 2}"))
data = ClipFeatures(arrays, clips, config)
detector = ResNetSectionDetector(
    snippet_frames=16, hop_frames=8, base_channels=4, n_stages=2, blocks_per_stage=1, epochs=2,
    batch_size=8, proxy_outliers=False, accelerator="cpu", devices=2, strategy="ddp",
).fit(data)
rank = int(os.environ.get("LOCAL_RANK", "0"))
(out / f"rank{rank}.json").write_text(json.dumps(sorted(seen)))
if rank == 0:
    detector.save(out / "model")
    (out / "scores.json").write_text(json.dumps(detector.anomaly_score(data).tolist()))
"""


@pytest.mark.slow
def test_two_process_ddp_training_on_cpu(tmp_path):
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "rank0.json").read_text()) == [[0, 2]]
    assert json.loads((tmp_path / "rank1.json").read_text()) == [[1, 2]]
    from asdkit.detectors.base import Detector

    assert Detector.load(tmp_path / "model").sections_ == ["00", "01"]
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert len(scores) == 16 and all(s == s for s in scores)
