"""Every detector that trains with Lightning takes the one DDP path; a DDP launch's other ranks write nothing.

The two-process run itself is tests/integration/test_ddp_cli.py; here the cheap checks: each network
detector hands its devices and strategy to :func:`asdkit.detectors.training.fit_network` (the only place
that builds a Lightning Trainer), and a process launched as another rank neither locks nor writes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from asdkit import api
from asdkit.data.manifest import Clip
from asdkit.detectors import training
from asdkit.detectors.base import ClipFeatures
from asdkit.detectors.deep import DeepDetector, TrainerConfig
from asdkit.detectors.registry import available_detectors, create_detector, get_detector_class
from asdkit.features.config import FeatureConfig
from asdkit.rundir import RANK_VARIABLES, RunLock, launch_rank
from tests.helpers.trees import make_tree

CONFIG = FeatureConfig(n_mels=16)
#: Every network detector fed log-mel here (``finetune`` reads waveforms and a checkpoint file; it trains
#: as a DeepDetector like these; tests/unit/test_finetune.py fits it on waveforms).
NETWORK_DETECTORS = [
    n
    for n in available_detectors()
    if issubclass(get_detector_class(n), DeepDetector) and "waveform" not in create_detector(n).tags().inputs
]
#: Small enough for a unit test wherever a detector has the knob.
SMALL = {"epochs": 1, "batch_size": 16, "hidden": 16, "n_blocks": 1, "base_channels": 4}


def _features(n: int, machine: str = "m") -> ClipFeatures:
    rng = np.random.default_rng(0)
    arrays = [rng.normal(-40, 5, size=(CONFIG.n_mels, 40)).astype(np.float32) for _ in range(n)]
    clips = [Clip(path=f"/d/{machine}/{i}.wav", machine=machine, section=f"0{i % 2}") for i in range(n)]
    return ClipFeatures(arrays, clips, CONFIG)


def test_the_network_detectors_are_the_lightning_ones():
    """Lightning trains only the DeepDetector family (fit_network is imported in deep.py alone)."""
    source = Path(api.__file__).parent
    importers = sorted(
        p.relative_to(source).as_posix()
        for p in source.rglob("*.py")
        if "asdkit.detectors.training import" in p.read_text() or "import lightning" in p.read_text()
    )
    assert importers == ["detectors/deep.py", "detectors/training.py"]
    assert len(NETWORK_DETECTORS) >= 10
    for name in available_detectors():
        is_network = issubclass(get_detector_class(name), DeepDetector)
        assert ("strategy" in get_detector_class(name)().get_params()) == is_network, name


@pytest.mark.parametrize("name", NETWORK_DETECTORS)
def test_every_network_detector_trains_through_the_one_ddp_path(name, monkeypatch):
    seen: list[TrainerConfig] = []

    def record(network, loss_fn, train, val, config, lr_lambda=None, param_groups=None):
        seen.append(config)
        assert next(iter(train)) is not None  # the stream feeds batches (each rank its share)
        return [{"epoch": 0.0, "train_loss": 1.0}]

    monkeypatch.setattr(training, "fit_network", record)
    cls = get_detector_class(name)
    known = cls().get_params()
    params = {k: v for k, v in SMALL.items() if k in known}
    detector = create_detector(name, **params, accelerator="cpu", devices=2, strategy="ddp")
    X = replace(_features(24), proxy=_features(24, machine="other"))
    detector.fit(X)
    assert seen, f"{name} trained without fit_network"
    assert all((c.devices, c.strategy, c.accelerator) == (2, "ddp", "cpu") for c in seen)
    assert detector.training_history() != []


@pytest.mark.parametrize("variable", RANK_VARIABLES)
def test_launch_rank_reads_every_launcher(variable, monkeypatch):
    for name in RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert launch_rank() == 0
    monkeypatch.setenv(variable, "0")
    assert launch_rank() == 0
    monkeypatch.setenv(variable, "3")
    assert launch_rank() == 3


def test_another_rank_neither_locks_nor_writes(tmp_path, monkeypatch):
    tree = make_tree(tmp_path / "data", "dcase2022", machines=("fan",), n_train=4)
    out = tmp_path / "run"
    out.mkdir()
    held = RunLock.acquire(out)  # rank 0 holds the run directory
    try:
        monkeypatch.setenv("LOCAL_RANK", "1")
        result = api.run(tree, out, model="knn", cache_dir=tmp_path / "cache", plots=False)
        detectors = api.train(tree, out, model="knn", cache_dir=tmp_path / "cache")
    finally:
        held.release()
    assert sorted(p.name for p in out.iterdir()) == []  # its lock file went with release: nothing else
    assert list(detectors) == ["fan"] and detectors["fan"].threshold_ > 0
    assert result.config["status"] == "running" and result.scored == {}
