"""Command-line usage errors (issue 27, item 5): exit 2 with the usage line, as click and argparse do."""

from __future__ import annotations

import pytest

from tests.helpers.cli import asdkit_cli as cli


@pytest.mark.parametrize(
    ("args", "usage", "error"),
    [
        (["run", "--bogus"], "Usage: python -m asdkit run [OPTIONS]", "Error: No such option: --bogus"),
        (["score"], "Usage: python -m asdkit score [OPTIONS]", "Error: Missing argument"),
        (["nosuchcommand"], "Usage: python -m asdkit [OPTIONS] COMMAND", "Error: No such command"),
    ],
)
def test_a_usage_error_exits_2_with_the_usage_line(args: list[str], usage: str, error: str) -> None:
    proc = cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert usage in proc.stderr and error in proc.stderr
    assert "Traceback" not in proc.stderr and "error: NoSuchOption" not in proc.stderr


def test_a_bare_asdkit_prints_the_help() -> None:
    proc = cli()
    help_text = cli("--help").stdout
    assert proc.returncode == 2  # click's exit code for a command that needs arguments
    assert "NoArgsIsHelpError" not in proc.stdout + proc.stderr
    assert "Usage: python -m asdkit [OPTIONS] COMMAND [ARGS]" in proc.stdout + proc.stderr
    assert all(name in proc.stdout + proc.stderr for name in ("run", "score", "serve", "submit"))
    assert len((proc.stdout + proc.stderr).splitlines()) >= len(help_text.splitlines()) - 2
