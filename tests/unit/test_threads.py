"""Thread counts by the size of the work, and ``--threads``."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch

from asdkit.data.manifest import TRAIN, Clip, Manifest
from asdkit.errors import AsdkitError
from asdkit.features.config import FeatureConfig
from asdkit.pipeline import RunPlan, machine_threads, work_frames
from asdkit.threads import SMALL_WORK_FRAMES, frames_of, thread_limit, threads_for


def test_small_work_runs_on_one_thread_large_work_on_the_idle_cpus(monkeypatch):
    monkeypatch.setattr("asdkit.threads.available_cpus", lambda: 6)
    monkeypatch.setattr("os.getloadavg", lambda: (1.0, 1.0, 1.0))  # this process alone
    assert threads_for(SMALL_WORK_FRAMES - 1) == 1
    assert threads_for(SMALL_WORK_FRAMES) == 6
    monkeypatch.setattr("os.getloadavg", lambda: (4.2, 1.0, 1.0))  # three other busy processes
    assert threads_for(SMALL_WORK_FRAMES) == 3
    monkeypatch.setattr("os.getloadavg", lambda: (33.0, 30.0, 30.0))  # a crowded machine
    assert threads_for(SMALL_WORK_FRAMES) == 1
    assert threads_for(10, threads=3) == 3  # given: used as is


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_bad_thread_counts_are_one_line_errors(bad):
    with pytest.raises(AsdkitError, match="--threads"):
        threads_for(10, threads=bad)


def test_frames_of_counts_log_mel_frames():
    assert frames_of([np.zeros((4, 10)), np.zeros((4, 7))]) == 17


def test_thread_limit_sets_torch_and_blas_threads_and_restores_them():
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    with thread_limit(1):
        assert torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert torch.get_num_threads() == before


def _wav(path, seconds: float, rate: int) -> Clip:
    sf.write(path, np.zeros(int(seconds * rate), dtype=np.float32), rate)
    return Clip(path=path, machine=path.stem.split("_")[0], section="00", split=TRAIN, label=0)


def test_the_parent_chooses_each_machine_types_threads_from_its_training_frames(tmp_path, monkeypatch):
    fan = [_wav(tmp_path / f"fan_{i}.wav", 10.0, 16000) for i in range(2)]
    pump = [_wav(tmp_path / "pump_0.wav", 10.0, 32000)]  # resampled to 16 kHz: the same frames
    (tmp_path / "fan_broken.wav").write_bytes(b"not a wav")
    broken = Clip(path=tmp_path / "fan_broken.wav", machine="fan", section="00", split=TRAIN, label=0)
    config = FeatureConfig()
    frames = 1 + 160_000 // config.hop_length
    assert work_frames([*fan, broken], config) == 2 * frames
    assert work_frames(pump, config) == frames
    manifest = Manifest([*fan, broken, *pump], layout="folder")
    monkeypatch.setattr("asdkit.pipeline.threads_for", lambda n: 2 if n > frames else 1)
    plan = RunPlan(data=manifest, out=None, model="knn", params={})
    chosen = machine_threads(plan, manifest)
    assert chosen == {"fan": 2, "pump": 1}
    plan = replace(plan, machine_threads=chosen)
    assert (plan.stage_threads("fan"), plan.stage_threads("pump")) == (2, 1)
    given = replace(plan, threads=3)
    assert machine_threads(given, manifest) == {} and given.stage_threads("pump") == 3


def test_seeds_get_the_thread_counts_chosen_once_in_the_calling_process(tmp_path, monkeypatch):
    from asdkit import api
    from asdkit.data.synthetic import SyntheticSpec, generate

    root = generate(tmp_path / "d", layout="dcase2022", spec=SyntheticSpec.tiny(machines=("fan", "pump")))
    passed = {}
    monkeypatch.setattr("asdkit.pipeline.threads_for", lambda n: 7)
    monkeypatch.setattr("asdkit.seeds.run_seeds", lambda run, data, out, seeds, **kw: passed.update(kw))
    api.run(root, tmp_path / "r", model="knn", seeds=[0, 1], jobs=2)
    assert passed["threads"] == {"fan": 7, "pump": 7}  # what each seed's worker process then uses
    api.run(root, tmp_path / "r2", model="knn", seeds=[0, 1], jobs=2, threads=3)
    assert passed["threads"] == 3
