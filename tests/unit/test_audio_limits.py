"""Limits on decoded audio (issue 27, item 2): checked from the header before decoding, for every reader
(the service, ``score``, the watcher, training), with a 413 from the service and a named skip elsewhere."""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from helpers.served import save_run, write_wav

from asdkit import api
from asdkit.data import audio
from asdkit.data.audio import AudioLimits, decode_audio, load_audio
from asdkit.errors import AsdkitError, AudioError, AudioTooLongError
from asdkit.service.app import create_app
from asdkit.service.models import load_served_models
from tests.helpers.faults import long_8bit_wav


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return long_8bit_wav(tmp_path_factory.mktemp("long") / "long_8bit_1khz.wav")


def test_a_long_clip_is_refused_from_its_header_before_decoding(
    long_wav: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert long_wav.stat().st_size > 5_000_000
    decoded: list[int] = []
    monkeypatch.setattr(audio, "_read_frames", lambda f, cap: decoded.append(cap))  # must not be reached
    with pytest.raises(AudioTooLongError) as info:
        load_audio(long_wav)
    message = str(info.value)
    assert str(long_wav) in message and "5000.0 s of audio" in message and "limit of 300 s" in message
    assert "ASDKIT_MAX_AUDIO_SECONDS" in message and decoded == []


def test_limits_are_configurable_by_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = write_wav(tmp_path / "two_seconds.wav", seconds=2.0)
    assert load_audio(clip).size == 32000
    monkeypatch.setenv("ASDKIT_MAX_AUDIO_SECONDS", "1.5")
    with pytest.raises(AudioTooLongError, match=r"2\.0 s of audio .* limit of 1\.5 s"):
        load_audio(clip)
    monkeypatch.setenv("ASDKIT_MAX_AUDIO_SECONDS", "2")
    assert load_audio(clip).size == 32000  # exactly at the limit is allowed
    monkeypatch.setenv("ASDKIT_MAX_AUDIO_SECONDS", "soon")
    with pytest.raises(
        AsdkitError, match="ASDKIT_MAX_AUDIO_SECONDS='soon': expected a positive number"
    ) as info:
        load_audio(clip)
    assert not isinstance(info.value, AudioError)  # a set-up error, not a clip to skip


def test_the_sample_limit_counts_every_channel(tmp_path: Path) -> None:
    path = tmp_path / "eight_mics.wav"
    sf.write(path, np.full((16000, 8), 0.1, dtype=np.float32), 16000)
    limits = AudioLimits(max_seconds=60, max_samples=100_000)
    with pytest.raises(AudioTooLongError, match=r"128000 samples \(16000 frames x 8 channels\)"):
        load_audio(path, limits=limits)
    assert load_audio(path, limits=AudioLimits(max_seconds=60, max_samples=128_000)).size == 16000


def test_a_stream_is_checked_too(long_wav: Path) -> None:
    with pytest.raises(AudioTooLongError, match=r"upload\.wav: 5000\.0 s"):
        decode_audio(io.BytesIO(long_wav.read_bytes()), "upload.wav")


def test_the_service_answers_413_naming_the_upload(long_wav: Path, tmp_path: Path) -> None:
    run = save_run(tmp_path / "run", {"fan": 100.0})
    good = write_wav(tmp_path / "good.wav")
    with TestClient(create_app(load_served_models(run), max_upload_mb=20)) as client:
        response = client.post("/score", files={"file": ("long.wav", long_wav.read_bytes(), "audio/wav")})
        assert response.status_code == 413, response.text
        assert response.json()["error"].startswith("long.wav: 5000.0 s of audio")
        batch = client.post(
            "/score/batch",
            files=[
                ("files", ("long.wav", long_wav.read_bytes(), "audio/wav")),
                ("files", ("good.wav", good.read_bytes(), "audio/wav")),
            ],
        ).json()
    assert batch["n_scored"] == 1 and batch["errors"][0]["file"] == "long.wav"


def test_score_skips_the_long_clip_naming_it_and_scores_the_rest(long_wav: Path, tmp_path: Path) -> None:
    run = save_run(tmp_path / "run", {"fan": 100.0})
    good = write_wav(tmp_path / "good.wav")
    scored, skipped = api.score(run, [good, long_wav], machine="fan", cache_dir=tmp_path / "cache")
    assert [s.path.name for s in scored] == ["good.wav"]
    assert len(skipped) == 1 and skipped[0][0] == long_wav and "5000.0 s of audio" in skipped[0][1]


def test_the_watcher_logs_an_error_line_for_the_long_clip_and_scores_the_rest(
    long_wav: Path, tmp_path: Path
) -> None:
    from asdkit.service.watch import FolderWatcher

    run = save_run(tmp_path / "run", {"fan": 100.0})
    folder = tmp_path / "incoming"
    folder.mkdir()
    shutil.copyfile(long_wav, folder / "long.wav")
    write_wav(folder / "good.wav")
    past = time.time() - 60
    for clip in folder.iterdir():
        os.utime(clip, (past, past))
    log_path = tmp_path / "log.jsonl"
    counts = FolderWatcher(folder, load_served_models(run), log_path, settle=0).run(once=True)
    assert counts.failed == 1 and counts.scored == 1
    records = {r["file"]: r for r in map(json.loads, log_path.read_text().splitlines())}
    assert "5000.0 s of audio" in records["long.wav"]["error"] and "score" in records["good.wav"]
