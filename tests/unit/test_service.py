"""The scoring service through FastAPI's TestClient: good requests, and bad ones that must get a 4xx JSON."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers.served import save_run, write_wav

from asdkit import api
from asdkit.service.app import create_app
from asdkit.service.models import load_served_models


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = save_run(tmp_path_factory.mktemp("run"), {"fan": 1e6, "pump": 1.0})
    (root / "config.json").write_text('{"status": "complete", "official_score": 0.75}\n')
    (root / "result.csv").write_text(
        "fan\nsection,AUC (source),pAUC\n00,0.8,0.6\n\npump\nsection,AUC (source),pAUC\n00,0.7,0.5\n\n"
    )
    return root


@pytest.fixture(scope="module")
def client(run_dir) -> TestClient:
    with TestClient(create_app(load_served_models(run_dir), max_upload_mb=1)) as c:
        yield c


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> Path:
    return write_wav(tmp_path_factory.mktemp("wav") / "section_01_source_test_normal_0001.wav")


def _upload(path: Path, name: str | None = None) -> dict:
    return {"file": (name or path.name, path.read_bytes(), "audio/wav")}


def test_score_matches_the_offline_scoring_path(client, run_dir, wav, tmp_path):
    response = client.post("/score?model=fan", files=_upload(wav))
    assert response.status_code == 200, response.text
    body = response.json()
    offline, _ = api.score(run_dir, [wav], machine="fan", cache_dir=tmp_path)
    assert body["score"] == pytest.approx(offline[0].score, rel=1e-9)
    assert body["machine"] == "fan" and body["section"] == "01" and body["detector"] == "ae"
    assert body["threshold"] == 1e6 and body["decision"] == 0
    assert len(body["model_version"]) == 12 and "note" not in body
    assert body["timing_ms"]["total"] > 0 and body["duration_s"] == 1.0


def test_section_comes_from_the_query_or_the_file_name(client, wav):
    assert client.post("/score?model=fan&section=3", files=_upload(wav)).json()["section"] == "03"
    assert client.post("/score?model=fan", files=_upload(wav, "clip.wav")).json()["section"] is None
    bad = client.post("/score?model=fan&section=x1", files=_upload(wav))
    assert bad.status_code == 400 and "section 'x1'" in bad.json()["error"]


def test_models_are_chosen_by_name(client, wav):
    pump = client.post("/score", params={"model": "pump"}, files=_upload(wav)).json()
    fan = client.post("/score", params={"model": "fan"}, files=_upload(wav)).json()
    assert pump["decision"] == 1 and fan["decision"] == 0  # thresholds 1.0 and 1e6
    assert pump["model_version"] != fan["model_version"]


def test_health_and_model_description(client):
    assert client.get("/health").json()["models"] == ["fan", "pump"]
    info = client.get("/model", params={"model": "pump"}).json()
    assert info["threshold"] == 1.0 and info["params"]["hidden"] == 32
    assert info["metrics"]["official_score"] == 0.75
    assert info["metrics"]["result_csv"] == [{"section": "00", "AUC (source)": "0.7", "pAUC": "0.5"}]
    assert [m["name"] for m in client.get("/models").json()["models"]] == ["fan", "pump"]
    assert "/score/batch" in client.get("/openapi.json").json()["paths"]


def test_other_sample_rates_are_resampled_with_a_note(client, tmp_path):
    clip = write_wav(tmp_path / "clip.wav", rate=44100)
    body = client.post("/score?model=fan", files=_upload(clip)).json()
    assert body["note"] == "resampled from 44100 Hz to 16000 Hz (the model's rate)"
    assert np.isfinite(body["score"])


def test_batch_scores_good_files_and_counts_bad_ones(client, wav, tmp_path):
    loud = write_wav(tmp_path / "loud.wav", loud=True)
    files = [
        ("files", ("a.wav", wav.read_bytes(), "audio/wav")),
        ("files", ("junk.wav", b"not audio at all", "audio/wav")),
        ("files", ("b.wav", loud.read_bytes(), "audio/wav")),
    ]
    response = client.post("/score/batch?model=fan", files=files)
    assert response.status_code == 200
    body = response.json()
    assert [r["file"] for r in body["results"]] == ["a.wav", "b.wav"]
    alone = client.post("/score?model=fan", files=_upload(loud)).json()
    assert body["results"][1]["score"] == alone["score"] != body["results"][0]["score"]
    assert body["n_errors"] == 1 and "junk.wav: not readable as audio" in body["errors"][0]["error"]


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"files": {"file": ("x.wav", b"RIFF....WAVEfmt junk", "audio/wav")}}, 400, "not readable"),
        ({"files": {"file": ("x.wav", b"", "audio/wav")}}, 400, "empty upload"),
        ({"data": {"other": "1"}}, 422, "missing form field 'file'"),
        ({}, 422, "missing form field 'file'"),
        ({"content": b"\x00" * 100, "headers": {"content-type": "audio/wav"}}, 422, "missing form field"),
        ({"files": {"file": ("big.wav", b"\x00" * (2 * 2**20), "audio/wav")}}, 413, "limit of 1 MB"),
        (
            {"content": b"junk", "headers": {"content-type": "multipart/form-data; boundary=x"}},
            400,
            "multipart",
        ),
        ({"data": {"file": "not a file"}}, 422, "Expected UploadFile"),
    ],
)
def test_bad_uploads_get_a_4xx_json_error(client, kwargs, status, message):
    response = client.post("/score?model=fan", **kwargs)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_undeclared_oversized_body_is_refused_too(client):
    def chunks():
        for _ in range(3):
            yield b"\x00" * 2**19

    response = client.post("/score?model=fan", content=chunks(), headers={"content-type": "audio/wav"})
    assert response.status_code == 413


def test_model_choice_errors(client, wav):
    unknown = client.post("/score?model=lathe", files=_upload(wav))
    assert unknown.status_code == 404 and "unknown model 'lathe'" in unknown.json()["error"]
    assert "fan, pump" in unknown.json()["error"]
    ambiguous = client.post("/score", files=_upload(wav))
    assert ambiguous.status_code == 400 and "choose one with model=NAME" in ambiguous.json()["error"]


def test_too_short_silent_and_all_bad_batches(client, tmp_path):
    short = write_wav(tmp_path / "short.wav", seconds=0.05)
    response = client.post("/score?model=fan", files=_upload(short))
    assert response.status_code == 400 and "too short" in response.json()["error"]
    silent = io.BytesIO()
    import soundfile as sf

    sf.write(silent, np.zeros(16000), 16000, format="WAV", subtype="PCM_16")
    response = client.post("/score?model=fan", files={"file": ("s.wav", silent.getvalue(), "audio/wav")})
    assert response.status_code == 400 and "silent" in response.json()["error"]
    batch = client.post("/score/batch?model=fan", files=[("files", ("j.wav", b"junk", "audio/wav"))])
    assert batch.status_code == 400 and "none of the 1 file(s)" in batch.json()["error"]


def test_token_is_required_when_set(run_dir, wav):
    app = create_app(load_served_models(run_dir / "models" / "fan"), token="s3cret")
    with TestClient(app) as c:
        assert c.get("/health").status_code == 200  # liveness probes need no token
        denied = c.post("/score", files=_upload(wav))
        assert denied.status_code == 401 and "Bearer" in denied.json()["error"]
        wrong = c.get("/model", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = c.post("/score", files=_upload(wav), headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["machine"] == "fan"


def test_the_service_path_never_imports_lightning(run_dir, wav):
    code = (
        "import io, sys\n"
        "from asdkit.service.app import create_app\n"
        "from asdkit.service.models import load_served_models, score_audio\n"
        "from asdkit.service.watch import FolderWatcher\n"
        "from asdkit.export.onnx import export_onnx\n"
        f"models = load_served_models({str(run_dir)!r})\n"
        "create_app(models)\n"
        f"score_audio(models['fan'], {str(wav)!r}, 'clip.wav')\n"
        "assert not [m for m in sys.modules if m.startswith(('lightning', 'pytorch_lightning'))]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
