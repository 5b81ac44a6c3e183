"""``python -m asdkit`` is the ``asdkit`` command."""

from asdkit.cli.main import main

main()
