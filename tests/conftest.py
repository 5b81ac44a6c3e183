"""Shared test fixtures. Tests that need ../shared/data skip cleanly when it is absent, unless
``ASDKIT_REQUIRE_SHARED=1`` (set by ``.ci/run``) says this run must have it: then pytest stops at start."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    candidate = Path(os.environ.get("ASDKIT_SHARED_DATA", REPO.parent / "shared" / "data"))
    return candidate if candidate.is_dir() else None


#: Set by the project's own CI (``.ci/run``): the real clips must be there, so their absence is an error
#: instead of dozens of quiet skips. Not the generic ``CI``, which other CI services set for a user's clone.
REQUIRE_SHARED_VARIABLE = "ASDKIT_REQUIRE_SHARED"


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get(REQUIRE_SHARED_VARIABLE, "") not in ("", "0") and shared_data_dir() is None:
        wanted = os.environ.get("ASDKIT_SHARED_DATA", REPO.parent / "shared" / "data")
        raise pytest.UsageError(
            f"../shared/data is absent ({wanted} is not a folder) and {REQUIRE_SHARED_VARIABLE}=1 requires it"
        )


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
