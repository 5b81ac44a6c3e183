"""Text parameters with a fixed set of words are checked before any work, for every registered detector."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from asdkit.detectors.params import validate_params
from asdkit.detectors.registry import available_detectors, get_detector_class
from asdkit.errors import AsdkitError


def _declared(name: str) -> list[tuple[str, tuple[str, ...], object]]:
    """(parameter, its words, its default) for each declared choice the detector takes as a parameter."""
    cls = get_detector_class(name)
    parameters = cls.parameters()
    return [
        (key, words, parameters[key].default)
        for key, words in cls.parameter_choices().items()
        if key in parameters
    ]


CASES = [
    (name, key, words, default) for name in available_detectors() for key, words, default in _declared(name)
]


def test_the_detectors_that_say_so_declare_their_words() -> None:
    declared = {(name, key) for name, key, _, _ in CASES}
    for expected in [
        ("ensemble", "combine"),
        ("ensemble", "normalise"),
        ("patch_bank", "aggregate"),
        ("mahalanobis", "pooling"),
        ("ae", "score"),
        ("arcface", "ensemble_mode"),
        ("finetune", "head"),
        ("made", "proxy_outliers"),
        ("maf", "proxy_outliers"),
        ("density_ae", "proxy_outliers"),
        ("patch_bank", "domains"),
        ("vae", "preset"),
    ]:
        assert expected in declared


def test_every_declared_key_is_a_parameter_somewhere() -> None:
    """A misspelt key in ``choices`` would check nothing: each is a parameter of a detector declaring it."""
    for name in available_detectors():
        cls = get_detector_class(name)
        for klass in cls.__mro__:
            for key in klass.__dict__.get("choices", {}):
                holders = [n for n in available_detectors() if klass in get_detector_class(n).__mro__]
                assert any(key in get_detector_class(n).parameters() for n in holders), (klass, key)


@pytest.mark.parametrize(("name", "key", "words", "default"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_default_and_every_word_pass_and_others_fail_in_one_line(
    name: str, key: str, words: tuple[str, ...], default: object
) -> None:
    assert default is None or default in words  # None: not set (vae's preset)
    for word in words:
        assert validate_params(name, {key: word}) == {key: word}
    with pytest.raises(AsdkitError) as caught:
        validate_params(name, {key: "no-such-word"})
    message = str(caught.value)
    assert message == f"--param {key}=no-such-word: {name} expects one of {', '.join(words)}"


def test_the_command_line_names_a_wrong_word_before_any_work(tmp_path: Path) -> None:
    """It used to fail once per machine type at fit time; now one line, exit 2, nothing written."""
    out = tmp_path / "run"
    command = ["run", "--data", str(tmp_path / "missing"), "--out", str(out), "--model", "ensemble"]
    result = subprocess.run(
        [sys.executable, "-m", "asdkit", *command, "--param", "combine=vote", "--no-track"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --param combine=vote: ensemble expects one of mean, max"
    assert not out.exists()


def test_asdkit_detectors_lists_the_words() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "asdkit", "detectors"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    ensemble = lines.index(next(line for line in lines if line.startswith("ensemble: ")))
    assert (
        lines[ensemble + 2]
        == "    one of: normalise: zscore|rank; select: auto|evidence|none; combine: mean|max"
    )
