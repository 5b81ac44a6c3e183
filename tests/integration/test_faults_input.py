"""Bad input that used to pass for a complete result (issue 14, items 9-13 and the cache fingerprint).

Each test feeds one kind of bad input and checks that it ends as a named, counted skip or a one-line error
naming the file and the field: never read as a "normal" score, never aborting the good clips beside it.
The scoring faults hold for one representative of every detector family (``tests/helpers/families.py``;
the family is the test id), the default detector included.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from asdkit import api
from asdkit.detectors.base import CONFIG_NAME, Detector
from asdkit.errors import ModelError
from asdkit.features.cache import FeatureCache
from asdkit.features.config import FeatureConfig
from asdkit.service.app import create_app
from asdkit.service.models import load_served_models
from asdkit.service.watch import FolderWatcher, WatchCounts
from tests.helpers.cli import asdkit_cli as cli
from tests.helpers.families import FAMILY_IDS, train_family
from tests.helpers.served import save_run, write_wav
from tests.helpers.trees import make_tree


def run_knn(tree: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """``asdkit run`` with the k-NN detector (no training epochs), its cache beside the run."""
    cache = out.parent / "cache"
    return cli(
        "run",
        "--data",
        str(tree),
        "--out",
        str(out),
        "--model",
        "knn",
        "--no-plots",
        "--cache-dir",
        str(cache),
    )


def huge_wav(path: Path, peak: float = 1e18) -> Path:
    """A float wav whose samples are finite but so large that the log-mel (and the score) overflow."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(16000) / 16000
    sf.write(path, (peak * np.sin(2 * np.pi * 120 * t)).astype(np.float32), 16000, subtype="FLOAT")
    return path


def truncate(path: Path, keep: float = 0.6) -> Path:
    """Cut the file's data short while its header still declares every frame (a half-copied wav)."""
    with path.open("r+b") as f:
        f.truncate(int(path.stat().st_size * keep))
    return path


# -- 9-12 for every family: one representative of each, trained small on a tiny tree ------------------------
@pytest.fixture(scope="module", params=FAMILY_IDS)
def family_model(request, tmp_path_factory) -> Path:
    """The family's representative for "fan" (one model: every clip goes to it); clips named
    ``section_00_*`` so that section-conditioned families know their section."""
    root = tmp_path_factory.mktemp(f"family-{request.param}")
    tree = make_tree(root / "data", "dcase2022", machines=("fan",), n_train=6, n_test=1)
    return train_family(request.param, tree, root / "run", root / "cache") / "models" / "fan"


def _clip(folder: Path, name: str, **kwargs: object) -> Path:
    return write_wav(folder / f"section_00_{name}.wav", **kwargs)


# -- 9: a non-finite score is an error for that clip -----------------------------------------------------
def test_non_finite_score_is_a_named_skip_in_score(family_model, tmp_path):
    good = _clip(tmp_path / "clips", "good")
    bad = huge_wav(tmp_path / "clips" / "section_00_huge.wav")
    scored, skipped = api.score(family_model, [good, bad], cache_dir=tmp_path / "cache")
    assert [s.path.name for s in scored] == [good.name] and np.isfinite(scored[0].score)
    assert [p.name for p, _ in skipped] == [bad.name]
    assert "not finite" in skipped[0][1]


def test_non_finite_score_is_a_400_json_error_and_batch_keeps_the_good_clip(family_model, tmp_path):
    good = _clip(tmp_path, "good")
    bad = huge_wav(tmp_path / "section_00_huge.wav")
    with TestClient(create_app(load_served_models(family_model))) as client:
        one = client.post("/score", files={"file": (bad.name, bad.read_bytes(), "audio/wav")})
        assert one.status_code == 400 and "not finite" in one.json()["error"]
        files = [("files", (p.name, p.read_bytes(), "audio/wav")) for p in (good, bad)]
        batch = client.post("/score/batch", files=files)
    assert batch.status_code == 200, batch.text
    body = batch.json()
    assert [r["file"] for r in body["results"]] == [good.name]
    assert [e["file"] for e in body["errors"]] == [bad.name] and "not finite" in body["errors"][0]["error"]


def test_non_finite_score_is_a_valid_json_error_line_in_the_watch_log(family_model, tmp_path):
    folder = tmp_path / "incoming"
    bad = huge_wav(folder / "section_00_huge.wav")
    good = _clip(folder, "good")
    past = time.time() - 60
    for clip in (bad, good):
        os.utime(clip, (past, past))
    log_path = tmp_path / "log.jsonl"
    watcher = FolderWatcher(folder, load_served_models(family_model), log_path, settle=0)
    counts = watcher.run(once=True)
    assert counts.failed == 1 and counts.scored == 1
    records = {r["file"]: r for r in map(json.loads, log_path.read_text().splitlines())}  # strict JSON
    assert "not finite" in records[bad.name]["error"] and "score" not in records[bad.name]
    assert np.isfinite(records[good.name]["score"])


# -- 10: clips shorter than the detector's window ---------------------------------------------------------
def test_too_short_clips_are_named_skips_not_an_aborted_batch(family_model, tmp_path):
    """A clip shorter than the detector's window is a named skip; detectors whose window repeats a short
    clip (snippets, patches: ``asdkit.detectors.windows``) may score it. Either way the good clip beside
    it is scored, and no clip vanishes or aborts the batch."""
    good = _clip(tmp_path / "clips", "good")
    shorts = [
        _clip(tmp_path / "clips", "short", seconds=0.1),
        _clip(tmp_path / "clips", "one", seconds=1 / 16000),
    ]
    proc = cli(
        "score", str(family_model), str(good), *map(str, shorts), "--cache-dir", str(tmp_path / "cache")
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    scored = {Path(row.split(",")[0]).name for row in proc.stdout.splitlines()[1:]}
    skipped = [line for line in proc.stderr.splitlines() if line.startswith("skipped:")]
    assert good.name in scored
    for short in shorts:
        named = [line for line in skipped if short.name in line]
        assert (short.name in scored) != bool(named), (short.name, proc.stdout, proc.stderr)
    assert len(skipped) == sum(s.name not in scored for s in shorts)


# -- 11: truncated wavs --------------------------------------------------------------------------------------
def test_truncated_wav_is_scored_with_a_warning_and_counted_in_the_run(tmp_path):
    tree = make_tree(tmp_path / "data", "dcase2022", machines=("fan",), n_train=4, n_test=2)
    victim = sorted((tree / "fan" / "test").glob("*.wav"))[0]
    truncate(victim)
    out = tmp_path / "run"
    proc = run_knn(tree, out)
    assert proc.returncode == 0, proc.stderr
    assert "truncated" in proc.stderr and victim.name in proc.stderr
    config = json.loads((out / "config.json").read_text())
    assert [Path(p).name for p, _ in config["truncated"]] == [victim.name]


def test_watcher_waits_for_a_truncated_wav_then_gives_up_with_an_error_line(family_model, tmp_path):
    folder = tmp_path / "incoming"
    clip = truncate(_clip(folder, "half"))
    past = time.time() - 60
    os.utime(clip, (past, past))
    log_path = tmp_path / "log.jsonl"
    models = load_served_models(family_model)
    watcher = FolderWatcher(folder, models, log_path, settle=0, truncated_wait=30)
    now = time.time()
    watcher.scan(now)
    ready, waiting = watcher.scan(now + 1)
    assert ready == [] and waiting == 1  # maybe still being written: no score yet
    ready, _ = watcher.scan(now + 31)
    assert [p.name for p, _ in ready] == [clip.name]
    counts = WatchCounts()
    watcher.process(ready, counts)
    record = json.loads(log_path.read_text().splitlines()[0])
    assert counts.failed == 1 and "truncated" in record["error"] and "score" not in record


# -- 12: vanishing clips: dangling symlinks, symlink loops, flac ---------------------------------------------
def test_tree_reads_flac_and_names_dangling_and_looping_links(tmp_path):
    tree = make_tree(tmp_path / "data", "dcase2022", machines=("fan",), n_train=4, n_test=2)
    test_dir, train_dir = tree / "fan" / "test", tree / "fan" / "train"
    wav = sorted(test_dir.glob("*.wav"))[0]
    data, rate = sf.read(wav)
    sf.write(wav.with_suffix(".flac"), data, rate)
    wav.unlink()
    (test_dir / "section_00_source_test_normal_0900_x.wav").symlink_to(tmp_path / "gone.wav")
    (train_dir / "loop_a.wav").symlink_to(train_dir / "loop_b.wav")
    (train_dir / "loop_b.wav").symlink_to(train_dir / "loop_a.wav")
    manifest = api.scan_data(tree)
    assert wav.with_suffix(".flac") in {Path(c.path) for c in manifest}
    reasons = {p.name: why for p, why in manifest.skipped}
    assert "dangling" in reasons["section_00_source_test_normal_0900_x.wav"]
    assert "loop" in reasons["loop_a.wav"] and "loop" in reasons["loop_b.wav"]
    out = tmp_path / "run"
    proc = run_knn(tree, out)
    assert proc.returncode == 0, proc.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["skipped_counts"]["scan"] == 3
    assert {Path(p).name for p, _ in config["skipped"]} >= set(reasons)
    assert "skipped 3 clip(s)" in proc.stderr
    scores = "".join(p.read_text() for p in (out / "scores").glob("anomaly_score_*.csv"))
    assert wav.with_suffix(".flac").name in scores


def test_training_skips_are_recorded_in_config_json(tmp_path):
    tree = make_tree(tmp_path / "data", "dcase2022", machines=("fan",), n_train=4, n_test=2)
    broken = sorted((tree / "fan" / "train").glob("*.wav"))[0]
    broken.write_bytes(b"RIFF not really a wav")
    out = tmp_path / "run"
    proc = run_knn(tree, out)
    assert proc.returncode == 0, proc.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["skipped_counts"]["training"] == 1
    assert broken.name in {Path(p).name for p, _ in config["skipped"]}


def test_a_symlink_loop_given_to_score_is_a_named_skip(family_model, tmp_path):
    folder = tmp_path / "clips"
    good = _clip(folder, "good")
    (folder / "a.wav").symlink_to(folder / "b.wav")
    (folder / "b.wav").symlink_to(folder / "a.wav")
    scored, skipped = api.score(family_model, [folder], section="00", cache_dir=tmp_path / "cache")
    assert [s.path.name for s in scored] == [good.name]
    assert {p.name for p, _ in skipped} == {"a.wav", "b.wav"}


# -- 13: model.json valid JSON but wrong ---------------------------------------------------------------------
def _model(tmp_path: Path) -> Path:
    return save_run(tmp_path / "run", {"fan": 1.0}) / "models" / "fan"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda c: None, "JSON object"),
        (lambda c: c | {"threshold": "abc"}, "'threshold'"),
        (lambda c: {k: v for k, v in c.items() if k != "params"}, "'params'"),
        (lambda c: c | {"state": {}}, "'state'"),
        (lambda c: c | {"features": c["features"] | {"n_mels": 64}}, "n_mels"),
        (lambda c: c | {"features": c["features"] | {"n_mels": "x"}}, "'features.n_mels'"),
    ],
    ids=["null", "threshold-abc", "missing-params", "missing-state", "n_mels-changed", "n_mels-text"],
)
def test_wrong_model_json_is_one_error_naming_the_file_and_field(tmp_path, change, field):
    model = _model(tmp_path)
    config_path = model / CONFIG_NAME
    config_path.write_text(json.dumps(change(json.loads(config_path.read_text()))))
    with pytest.raises(ModelError) as info:
        Detector.load(model)
    message = str(info.value)
    assert str(config_path) in message and field in message and "\n" not in message
    proc = cli("score", str(model), str(write_wav(tmp_path / "clip.wav")))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [f"error: {message}"]


# -- the feature cache's content fingerprint -----------------------------------------------------------------
def test_a_file_rewritten_in_place_with_the_same_mtime_is_not_served_stale(tmp_path):
    clip = write_wav(tmp_path / "clip.wav", seed=1)
    cache = FeatureCache(FeatureConfig(n_mels=32), cache_dir=tmp_path / "cache")
    before = np.array(cache.load(clip))
    st = clip.stat()
    write_wav(clip, seed=2, loud=True)  # same length, other samples
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert clip.stat().st_size == st.st_size and clip.stat().st_mtime_ns == st.st_mtime_ns
    after = np.array(cache.load(clip))
    assert not np.allclose(before, after)
