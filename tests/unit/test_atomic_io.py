"""Atomic writes: all or nothing, and the file as readable as any other the user creates."""

from __future__ import annotations

import os
import stat

import pytest

from asdkit.utils.io import atomic_open, atomic_write_text


def test_written_file_has_the_umask_permissions_not_mkstemps_0600(tmp_path):
    path = tmp_path / "result.csv"
    atomic_write_text(path, "a,b\n")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert path.read_text() == "a,b\n"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "config.json"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError), atomic_open(path) as f:
        f.write("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]
