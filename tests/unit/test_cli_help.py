"""Every command's --help prose is one line per paragraph, so the help wraps it to the terminal."""

from __future__ import annotations

import typer

from asdkit.cli.main import app


def _commands(command: object, name: str = "asdkit") -> list[tuple[str, str]]:
    if hasattr(command, "commands"):
        return [c for key, sub in command.commands.items() for c in _commands(sub, f"{name} {key}")]
    return [(name, getattr(command, "help", None) or "")]


def test_help_paragraphs_are_not_broken_where_the_source_lines_end():
    commands = _commands(typer.main.get_command(app))
    assert len(commands) >= 19  # every command and plot's subcommands
    for name, text in commands:
        for paragraph in text.split("\n\n"):
            if not any(line.startswith(" ") for line in paragraph.splitlines()):  # examples keep their lines
                assert "\n" not in paragraph.strip(), f"{name}: {paragraph!r}"
