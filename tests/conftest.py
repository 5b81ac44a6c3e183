"""Shared test fixtures. Tests that need ../shared/data skip cleanly when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    candidate = Path(os.environ.get("ASDKIT_SHARED_DATA", REPO.parent / "shared" / "data"))
    return candidate if candidate.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data is absent (real DCASE clips are only beside the project in CI)")
    return path


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread_per_xdist_worker() -> None:
    """Two xdist workers on two cores: one intra-op thread each, or OpenMP threads spin against each other."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _no_mlflow_tracking_unless_asked() -> None:
    """No MLflow store per test run (seconds each) unless a test passes TrackingOptions(mlflow=True)."""
    os.environ.setdefault("ASDKIT_TRACKING", "off")
