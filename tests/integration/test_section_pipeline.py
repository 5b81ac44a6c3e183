"""Section classifiers end to end: api.run with proxy outliers from the other machine type, CCSA fine-tuning
from that run directory, and scoring files whose section comes from their names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from asdkit import api
from asdkit.data.synthetic import SyntheticSpec, generate
from asdkit.errors import AsdkitError, DataError

TINY = {
    "epochs": 1,
    "batch_size": 32,
    "accelerator": "cpu",
    "base_channels": 4,
    "n_stages": 2,
    "blocks_per_stage": 1,
    "snippet_frames": 16,
    "hop_frames": 16,
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    spec = SyntheticSpec.tiny(machines=("pump", "fan"), duration=1.0)
    return generate(tmp_path_factory.mktemp("sec") / "data", layout="dcase2022", spec=spec)


@pytest.mark.slow
def test_train_fine_tune_and_score_through_the_api(tree, tmp_path, monkeypatch):
    from asdkit.detectors.section.resnet import ResNetSectionDetector

    proxies: list[tuple[set[str], int]] = []
    fit = ResNetSectionDetector.fit

    def record(self, X):
        proxies.append(({c.machine for c in X.proxy.clips}, len(X.proxy)))
        return fit(self, X)

    monkeypatch.setattr(ResNetSectionDetector, "fit", record)
    cache = tmp_path / "cache"
    first = api.run(tree, tmp_path / "rn", model="resnet_section", params=TINY, cache_dir=cache)
    assert first.evaluation is not None and np.isfinite(first.evaluation.official_score)
    n_train = {m: len(first.manifest.filter(machine=m, split="train")) for m in ("fan", "pump")}
    assert proxies == [({"pump"}, n_train["pump"]), ({"fan"}, n_train["fan"])]  # fan trains first

    tuned = api.run(
        tree,
        tmp_path / "ccsa",
        model="resnet_section",
        params={**TINY, "init_from": str(first.run_dir), "ccsa_weight": 1.0, "learning_rate": 1e-4},
        cache_dir=cache,
    )
    config = json.loads((tuned.run_dir / "config.json").read_text())
    assert config["status"] == "complete" and config["params"]["init_from"] == str(first.run_dir)

    files = sorted((tree / "fan" / "test").glob("section_01_*.wav"))[:2]
    scored, skipped = api.score(tuned.run_dir, files, machine="fan", cache_dir=cache)
    assert not skipped and len(scored) == 2 and all(np.isfinite(s.score) for s in scored)

    # the only machine type cannot be trained: the run names it and why (a machine type among others that
    # could be trained would be a counted failure of a partial run instead)
    (tmp_path / "not_a_run").mkdir()
    with pytest.raises(DataError, match=r"fan: .*neither a model folder nor a run directory with fan"):
        api.run(
            tree,
            tmp_path / "bad",
            model="resnet_section",
            params={**TINY, "init_from": str(tmp_path / "not_a_run")},
            machines=["fan"],
            cache_dir=cache,
        )
    # a path that is not there at all: named before any work, no run folder made
    with pytest.raises(AsdkitError, match=r"--param init_from=.*missing: no such file or folder"):
        api.run(
            tree,
            tmp_path / "bad2",
            model="resnet_section",
            params={**TINY, "init_from": str(tmp_path / "missing")},
            machines=["fan"],
            cache_dir=cache,
        )
    assert not (tmp_path / "bad2").exists()
