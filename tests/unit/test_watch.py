"""The folder watcher on a temporary folder: new files, files still being written, restarts, bad files."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from helpers.served import save_run, write_wav

from asdkit.errors import AsdkitError, DataError
from asdkit.service.models import load_served_models
from asdkit.service.watch import FolderWatcher, read_log_keys


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return load_served_models(save_run(tmp_path_factory.mktemp("run"), {"fan": 1.0, "pump": 1e6}))


def _age(path: Path, seconds: float = 60.0) -> Path:
    past = time.time() - seconds
    os.utime(path, (past, past))
    return path


def _lines(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_scores_new_files_once_and_survives_restarts(models, tmp_path):
    watched, log = tmp_path / "in", tmp_path / "scores.jsonl"
    for i in range(2):
        _age(write_wav(watched / "fan" / f"clip_{i}.wav", seed=i))
    counts = FolderWatcher(watched, models, log, settle=0.01).run(once=True)
    assert (counts.scored, counts.failed) == (2, 0)
    first = _lines(log)
    assert [e["file"] for e in first] == ["fan/clip_0.wav", "fan/clip_1.wav"]
    assert all(e["model"] == "fan" and e["decision"] == int(e["score"] > 1.0) for e in first)

    _age(write_wav(watched / "pump" / "clip_2.wav", seed=2))
    counts = FolderWatcher(watched, models, log, settle=0.01).run(once=True)  # a restart
    assert counts.scored == 1
    lines = _lines(log)
    assert lines[:2] == first and lines[2]["file"] == "pump/clip_2.wav" and lines[2]["model"] == "pump"
    assert FolderWatcher(watched, models, log, settle=0.01).run(once=True).scored == 0


def test_files_still_being_written_and_temp_names_are_not_read(models, tmp_path):
    watched, log = tmp_path / "in", tmp_path / "scores.jsonl"
    growing = write_wav(watched / "growing.wav", seconds=0.5)
    watcher = FolderWatcher(watched, models, log, machine="fan", settle=30)
    (watched / "upload.wav.part").write_bytes(growing.read_bytes())
    (watched / ".hidden.wav").write_bytes(growing.read_bytes())
    _age(watched / "upload.wav.part")
    _age(watched / ".hidden.wav")
    assert watcher.scan() == ([], 1)
    with open(growing, "ab") as f:  # still being written: size and mtime move
        f.write(b"\x00" * 64)
    assert watcher.scan() == ([], 1)
    _age(growing)  # the writer stopped long ago
    assert watcher.scan() == ([], 1)  # one look at the settled size is not enough
    ready, waiting = watcher.scan()
    assert [p.name for p, _ in ready] == ["growing.wav"] and waiting == 0


def test_corrupt_files_are_logged_and_counted_not_fatal(models, tmp_path):
    watched, log = tmp_path / "in", tmp_path / "scores.jsonl"
    watched.mkdir()
    (watched / "broken.wav").write_bytes(b"RIFF not really a wav")
    _age(watched / "broken.wav")
    _age(write_wav(watched / "good.wav"))
    counts = FolderWatcher(watched, models, log, machine="pump", settle=0.01).run(once=True)
    assert (counts.scored, counts.failed) == (1, 1)
    entries = {e["file"]: e for e in _lines(log)}
    assert "not readable as audio" in entries["broken.wav"]["error"]
    assert entries["good.wav"]["model"] == "pump"
    assert FolderWatcher(watched, models, log, machine="pump", settle=0.01).run(once=True).failed == 0


def test_clips_no_model_is_chosen_for_are_scored_after_a_restart_with_machine(models, tmp_path, caplog):
    """Several models, no --machine and no machine folder: the setup is wrong, not the clips, so they stay
    out of the log (named once, not every pass), and the same command with --machine scores them."""
    watched, log = tmp_path / "in", tmp_path / "scores.jsonl"
    for i in range(2):
        _age(write_wav(watched / f"clip_{i}.wav", seed=i))
    watcher = FolderWatcher(watched, models, log, settle=0.01)
    counts = watcher.run(once=True)
    assert (counts.scored, counts.failed, counts.unrouted) == (0, 0, 2)
    assert not log.exists() or _lines(log) == []
    warned = [r.getMessage() for r in caplog.records if "pass --machine" in r.getMessage()]
    assert len(warned) == 2 and "clip_0.wav" in warned[0]
    assert watcher.run(once=True).unrouted == 0  # named once per clip, not at every look
    counts = FolderWatcher(watched, models, log, machine="fan", settle=0.01).run(once=True)
    assert (counts.scored, counts.unrouted) == (2, 0)
    assert [e["model"] for e in _lines(log)] == ["fan", "fan"]


def test_a_torn_last_line_is_cut_and_its_clip_scored_again(models, tmp_path):
    watched, log = tmp_path / "in", tmp_path / "scores.jsonl"
    _age(write_wav(watched / "a.wav"))
    FolderWatcher(watched, models, log, machine="fan", settle=0.01).run(once=True)
    whole = log.read_text()
    log.write_text(whole + whole[: len(whole) // 2])  # a crash in the middle of a second line
    assert len(read_log_keys(log)) == 1 and log.read_text() == whole
    _age(write_wav(watched / "a.wav", seed=5))  # replaced under the same name: a new recording
    FolderWatcher(watched, models, log, machine="fan", settle=0.01).run(once=True)
    assert len(_lines(log)) == 2


def test_bad_setups_are_one_line_errors(models, tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        FolderWatcher(tmp_path / "nope", models, tmp_path / "log.jsonl")
    with pytest.raises(AsdkitError, match="no model for machine 'lathe'"):
        FolderWatcher(tmp_path, models, tmp_path / "log.jsonl", machine="lathe")
    (tmp_path / "other.jsonl").write_text("hello\n")
    with pytest.raises(DataError, match=r"other\.jsonl:1: not a line of asdkit watch.s log"):
        FolderWatcher(tmp_path, models, tmp_path / "other.jsonl")
    (tmp_path / "x.wav").write_bytes(b"")
    _age(write_wav(tmp_path / "unsorted.wav"))
    counts = FolderWatcher(tmp_path, models, tmp_path / "log.jsonl", settle=0.01).run(once=True)
    # an empty file and a clip, neither in a folder named fan or pump: no model is chosen for either
    assert (counts.failed, counts.unrouted) == (0, 2)
    counts = FolderWatcher(tmp_path, models, tmp_path / "log.jsonl", machine="pump", settle=0.01).run(
        once=True
    )
    assert (counts.scored, counts.failed) == (1, 1)
    errors = [e["error"] for e in _lines(tmp_path / "log.jsonl") if "error" in e]
    assert len(errors) == 1 and "x.wav" in errors[0]
