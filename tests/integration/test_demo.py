"""The demo's synthetic set: reused when current, rebuilt when the generator changes, never over user data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asdkit.data import synthetic
from asdkit.demo import demo_data
from asdkit.errors import DataError


def _wavs(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*.wav"))}


def test_demo_data_is_reused_then_rebuilt_when_the_generator_changes(tmp_path, monkeypatch):
    data = demo_data(tmp_path, seed=0, debug=True, progress=None)
    first = _wavs(data)
    assert first, "the tiny synthetic set has wav files"
    marker = json.loads((data / ".asdkit-synthetic.json").read_text())
    assert marker["generator"] == synthetic.GENERATOR_VERSION

    assert demo_data(tmp_path, seed=0, debug=True, progress=None) == data
    assert _wavs(data) == first, "a current set is not regenerated"

    (data / "stale-extra.wav").write_bytes(b"left over from an older generator")
    monkeypatch.setattr(synthetic, "GENERATOR_VERSION", synthetic.GENERATOR_VERSION + 1)
    demo_data(tmp_path, seed=0, debug=True, progress=None)
    assert not (data / "stale-extra.wav").exists(), "a rebuilt set starts from an empty folder"
    assert set(_wavs(data)) == set(first)
    assert not (tmp_path / "data-debug.partial").exists()


def test_demo_refuses_a_folder_it_did_not_write(tmp_path):
    mine = tmp_path / "data-debug"
    mine.mkdir()
    (mine / "precious.wav").write_bytes(b"user data")
    with pytest.raises(DataError, match="not written by asdkit demo"):
        demo_data(tmp_path, seed=0, debug=True, progress=None)
    assert (mine / "precious.wav").read_bytes() == b"user data"
