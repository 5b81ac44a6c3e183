"""How many torch and BLAS threads a job gets: chosen by the size of the work, or given (``--threads``).

On a machine shared with other processes, OpenMP's intra-op threads wait at barriers for cores another
process holds: a small fit with every core's thread took 10.8 s where one thread took 6.1 s while one other
process kept a core busy, and a per-epoch time went from 0.4 s to 12-18 s under heavier load. Threads pay
off only when each op has enough work to split, so small jobs run on one thread and large ones on the CPUs
this process may use (its affinity mask). The choice covers torch's intra-op pool and the BLAS/OpenMP pools
numpy and scikit-learn use (threadpoolctl), and is undone afterwards.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from asdkit.errors import AsdkitError
from asdkit.features.logmel import available_cpus

#: Log-mel frames below which a job runs on one thread (about 160 clips of 10 s).
SMALL_WORK_FRAMES = 50_000


def check_threads(threads: int | None) -> int | None:
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise AsdkitError(f"--threads must be a positive whole number, got {threads!r}")
    return threads


def idle_cpus() -> int:
    """CPUs of this process's share that other processes leave idle: the CPUs minus the 1-minute load
    average beyond this process (at least 1)."""
    cpus = available_cpus()
    try:
        load = os.getloadavg()[0]
    except OSError:
        return cpus
    return max(1, min(cpus, round(cpus - max(load - 1.0, 0.0))))


def threads_for(frames: int, threads: int | None = None) -> int:
    """``threads`` when given; else 1 for fewer than :data:`SMALL_WORK_FRAMES` frames, and above it the
    CPUs that the machine's other load leaves idle (on a busy machine 1: the default detector's fit on 257
    clips took 210 s with 2 threads against 20 s with 1 while other processes held the cores)."""
    if check_threads(threads) is not None:
        return int(threads)  # type: ignore[arg-type]
    return 1 if frames < SMALL_WORK_FRAMES else idle_cpus()


def frames_of(arrays: Sequence[np.ndarray]) -> int:
    """The work of a job: the log-mel frames of its clips."""
    return int(sum(np.shape(a)[-1] for a in arrays))


@contextlib.contextmanager
def thread_limit(n: int) -> Iterator[int]:
    """Run the block with ``n`` torch intra-op threads and ``n`` BLAS/OpenMP threads; restored after."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield n
    finally:
        torch.set_num_threads(before)
