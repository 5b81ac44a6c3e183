"""The CI switch: with ``ASDKIT_REQUIRE_SHARED=1`` pytest stops at start, in one line, when ../shared/data
is absent; without it the tests that need the real clips skip. Run on a copy of the real conftest."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"
NEEDS_SHARED = "def test_reads_the_real_clips(shared_data):\n    assert shared_data.is_dir()\n"


def _pytest(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    tests = tmp_path / "repo" / "tests"
    tests.mkdir(parents=True)
    shutil.copy(CONFTEST, tests / "conftest.py")
    (tests / "test_shared.py").write_text(NEEDS_SHARED)
    dropped = ("ASDKIT_REQUIRE_SHARED", "PYTEST_XDIST_WORKER")
    environ = {k: v for k, v in os.environ.items() if k not in dropped}
    environ |= {"ASDKIT_SHARED_DATA": str(tmp_path / "no-shared" / "data"), **env}
    plugins = ["-p", "no:cacheprovider", "-p", "no:xdist"]
    command = [sys.executable, "-m", "pytest", "-q", "-rs", *plugins, str(tests)]
    return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=environ, timeout=120)


def test_without_the_switch_tests_needing_shared_skip(tmp_path):
    proc = _pytest(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 skipped" in proc.stdout and "../shared/data is absent" in proc.stdout


@pytest.mark.parametrize("value", ["1", "yes"])
def test_with_the_switch_pytest_fails_at_start_in_one_line(tmp_path, value):
    proc = _pytest(tmp_path, ASDKIT_REQUIRE_SHARED=value)
    assert proc.returncode not in (0, 5), proc.stdout + proc.stderr
    output = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert len(output) == 1, output
    assert "../shared/data is absent" in output[0] and "ASDKIT_REQUIRE_SHARED=1" in output[0]
    assert "passed" not in proc.stdout and "skipped" not in proc.stdout


def test_with_the_switch_and_the_data_present_the_tests_run(tmp_path):
    data = tmp_path / "shared" / "data"
    data.mkdir(parents=True)
    proc = _pytest(tmp_path, ASDKIT_REQUIRE_SHARED="1", ASDKIT_SHARED_DATA=str(data))
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout + proc.stderr


def test_the_project_ci_sets_the_switch():
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert "export ASDKIT_REQUIRE_SHARED=1" in ci.splitlines()
