"""The real command line in a subprocess, as a user types it."""

from __future__ import annotations

import subprocess
import sys


def asdkit_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``asdkit ARGS`` through ``python -m asdkit`` with captured text output."""
    return subprocess.run(
        [sys.executable, "-m", "asdkit", *args], capture_output=True, text=True, timeout=timeout
    )
