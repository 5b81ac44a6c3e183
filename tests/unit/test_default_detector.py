"""`asdkit run`/`train`/`demo` without --model use one registered default, named in one place."""

from __future__ import annotations

import inspect

from asdkit import api
from asdkit.cli import main
from asdkit.detectors.registry import DEFAULT_DETECTOR, available_detectors


def test_cli_and_demo_use_the_registered_default():
    assert DEFAULT_DETECTOR in available_detectors()
    for command in (main.run, main.train, api.run, api.train):  # the Python API as the command line
        assert inspect.signature(command).parameters["model"].default == DEFAULT_DETECTOR
    assert api.DEFAULT_MODEL == DEFAULT_DETECTOR
