"""Thread counts by the size of the work, and ``--threads``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asdkit.errors import AsdkitError
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
