"""The service with bank models (issue 27, item 8): the default ensemble and k-NN banks score uploads that
carry no section against every bank without a warning per request."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers.served import fitted_bank_model, write_wav

from asdkit import api
from asdkit.detectors.registry import DEFAULT_DETECTOR
from asdkit.scoring import embedding
from asdkit.service.app import create_app
from asdkit.service.models import load_served_models


@pytest.fixture(scope="module", params=[DEFAULT_DETECTOR, "knn"])
def bank_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp(request.param)
    fitted_bank_model(request.param).save(root / "models" / "fan", metadata={"machine": "fan"})
    return root


def test_uploads_without_a_section_are_scored_without_a_warning_per_request(
    bank_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clip = write_wav(tmp_path / "upload.wav", seconds=2.0, seed=99)
    loud = write_wav(tmp_path / "loud.wav", seconds=2.0, seed=98, loud=True)
    with TestClient(create_app(load_served_models(bank_run))) as client, caplog.at_level(logging.WARNING):
        bodies = [
            client.post("/score", files={"file": (p.name, p.read_bytes(), "audio/wav")}).json()
            for p in (clip, clip, clip, loud)
        ]
    assert all(b["section"] is None and np.isfinite(b["score"]) for b in bodies), bodies
    assert bodies[0]["score"] == bodies[1]["score"] == bodies[2]["score"]
    assert bodies[3]["score"] > bodies[0]["score"]  # the loud whine is further from every bank
    assert "memory bank" not in caplog.text
    offline, _ = api.score(bank_run, [clip], machine="fan", cache_dir=tmp_path / "cache")
    assert bodies[0]["score"] == pytest.approx(offline[0].score, rel=1e-6)


def test_a_named_section_without_a_bank_is_reported_once(
    bank_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedding, "_reported_unbanked", set())  # what earlier tests reported
    clip = write_wav(tmp_path / "section_07_clip.wav", seconds=2.0, seed=97)
    with TestClient(create_app(load_served_models(bank_run))) as client, caplog.at_level(logging.WARNING):
        for _ in range(3):
            response = client.post("/score", files={"file": (clip.name, clip.read_bytes(), "audio/wav")})
            assert response.status_code == 200 and response.json()["section"] == "07"
    warnings = [r.getMessage() for r in caplog.records if "memory bank" in r.getMessage()]
    assert len(warnings) == 1 and "section(s) 07 have no memory bank" in warnings[0], warnings
