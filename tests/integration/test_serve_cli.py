"""The serve, watch and export commands end to end (subprocesses, as a user runs them)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import onnx
import pytest
from helpers.served import save_run, write_wav


def cli(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asdkit", *args], capture_output=True, text=True, timeout=300, **kwargs
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return save_run(tmp_path_factory.mktemp("run"), {"fan": 50.0, "pump": 1e6})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_on_loopback(run_dir, tmp_path):
    port = _free_port()
    env = {**os.environ, "ASDKIT_TOKEN": "t0k"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "asdkit", "serve", str(run_dir), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        wav = write_wav(tmp_path / "clip.wav")
        files = {"file": ("clip.wav", wav.read_bytes(), "audio/wav")}
        headers = {"Authorization": "Bearer t0k"}
        ok = httpx.post(f"{url}/score", params={"model": "pump"}, files=files, headers=headers, timeout=30)
        assert ok.status_code == 200 and ok.json()["decision"] == 0
        denied = httpx.post(f"{url}/score", params={"model": "pump"}, files=files, timeout=30)
        assert denied.status_code == 401
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_serve_beyond_loopback_needs_a_token(run_dir):
    proc = cli("serve", str(run_dir), "--host", "0.0.0.0")
    assert proc.returncode == 2 and "error: --host 0.0.0.0 exposes the service" in proc.stderr


def test_watch_once_and_export(run_dir, tmp_path):
    incoming = tmp_path / "incoming"
    clip = write_wav(incoming / "fan" / "a.wav")
    (incoming / "fan" / "b.wav.part").write_bytes(clip.read_bytes())  # an upload in progress
    log = tmp_path / "scores.jsonl"
    proc = cli("watch", str(incoming), "--model", str(run_dir), "--log", str(log), "--once", "--settle", "0")
    assert proc.returncode == 0, proc.stderr
    assert "scored 1, unreadable 0" in proc.stderr
    assert [json.loads(line)["file"] for line in log.read_text().splitlines()] == ["fan/a.wav"]

    out = tmp_path / "fan.onnx"
    proc = cli("export", str(run_dir), "--machine", "fan", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert {p.key for p in onnx.load(str(out)).metadata_props} >= {"threshold", "machine", "model_version"}
    ambiguous = cli("export", str(run_dir))
    assert ambiguous.returncode == 2 and "several models are served (fan, pump)" in ambiguous.stderr
    assert cli("export", str(run_dir), "--format", "tflite").stderr.startswith("error: --format 'tflite'")


def test_help_has_examples():
    for command in ("serve", "watch", "export"):
        proc = cli(command, "--help")
        assert proc.returncode == 0 and "Examples" in proc.stdout and f"asdkit {command}" in proc.stdout
