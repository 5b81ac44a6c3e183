"""A two-branch (spectrum + log-mel) margin classifier end to end: a run caches both front ends, and a
file scored later through the API and through the service gets the score the run gave it."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from asdkit import api
from asdkit.data.synthetic import SyntheticSpec, generate
from asdkit.features import SpectrumConfig
from asdkit.features.spectrum import SpectrumFrontEnd
from asdkit.rundir import SCORES_DIR
from asdkit.service.models import load_served_models, score_audio

PARAMS = {
    "inputs": "spectrum+logmel",
    "spectrum_fft": 4096,
    "epochs": 1,
    "batch_size": 32,
    "base_channels": 4,
    "embedding_dim": 16,
    "snippet_frames": 16,
    "hop_frames": 16,
    "accelerator": "cpu",
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = SyntheticSpec.tiny(machines=("pump", "fan"), duration=1.0)
    return generate(tmp_path_factory.mktemp("two") / "data", layout="dcase2022", spec=spec)


def _run_scores(run_dir: Path, machine: str) -> dict[str, float]:
    rows: dict[str, float] = {}
    for path in (run_dir / SCORES_DIR).glob(f"anomaly_score_{machine}_*.csv"):
        rows.update({name: float(value) for name, value in csv.reader(path.open())})
    return rows


@pytest.mark.slow
def test_run_then_score_files_through_the_api_and_the_service(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    result = api.run(tree, tmp_path / "arc", model="arcface", params=PARAMS, cache_dir=cache)
    assert result.evaluation is not None and np.isfinite(result.evaluation.official_score)
    folder = cache / SpectrumFrontEnd(SpectrumConfig(n_fft=4096)).cache_key()
    assert folder.is_dir() and any(folder.glob("*.npy"))

    files = sorted((tree / "fan" / "test").glob("section_01_*.wav"))[:2]
    in_run = _run_scores(result.run_dir, "fan")
    scored, skipped = api.score(result.run_dir, files, machine="fan", cache_dir=cache)
    assert not skipped
    for clip in scored:
        assert clip.score == pytest.approx(in_run[clip.path.name], rel=1e-6)

    served = load_served_models(result.run_dir)["fan"]
    answer = score_audio(served, str(files[0]), files[0].name)
    assert answer["section"] == "01"
    assert answer["score"] == pytest.approx(in_run[files[0].name], rel=1e-5)
