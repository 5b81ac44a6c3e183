"""A clip too short for a detector's window is a named, counted skip, in training, in a run's test clips and
in ``asdkit score`` (the good clip beside it is scored), for the default and every family of detectors; a
detector whose windows wrap round a short clip (the section classifiers) uses it instead."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asdkit import api
from asdkit.data.synthetic import SyntheticSpec, generate
from tests.helpers.cli import asdkit_cli as cli

#: 480 samples at 16 kHz: one log-mel frame, fewer than any stacked-frame or patch window
SHORT_SAMPLES = 480
SHORT_FRAMES = 1
#: the default (None), a reconstruction, a density and a section-classifier detector
MODELS = [None, "ae", "made", "resnet_section"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = generate(
        tmp_path_factory.mktemp("short") / "data",
        layout="dcase2022",
        spec=SyntheticSpec.tiny(machines=("fan",), n_train_source=8),
    )
    rng = np.random.default_rng(0)
    train = next((root / "fan" / "train").glob("section_00_source_train_normal_0000_*.wav"))
    test = next((root / "fan" / "test").glob("section_00_source_test_normal_0000_*.wav"))
    short_train = train.with_name(train.name.replace("_0000_", "_0900_"))
    short_test = test.with_name(test.name.replace("_0000_", "_0900_"))
    for path in (short_train, short_test):
        sf.write(path, rng.normal(0, 0.1, SHORT_SAMPLES).astype(np.float32), 16000, subtype="PCM_16")
    return root, short_train, short_test


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m or "default")
def test_short_clips_are_named_counted_skips_in_run_and_score(model, tree, tmp_path, caplog):
    root, short_train, short_test = tree
    out = tmp_path / "run"
    kwargs = {} if model is None else {"model": model}
    with caplog.at_level("WARNING"):
        result = api.run(root, out, debug=True, plots=False, cache_dir=tmp_path / "cache", **kwargs)
    config = json.loads((out / "config.json").read_text())
    assert config["status"] == "complete" and (out / "result.csv").is_file()
    reasons = dict(config["skipped"])
    scored = [Path(c.path) for s in result.scored.values() for c in s.clips]
    too_short = api.make_detector(model or api.DEFAULT_MODEL).tags().min_frames > SHORT_FRAMES
    if too_short:
        assert "shorter than the" in reasons[str(short_train)] and "window" in reasons[str(short_train)]
        assert "shorter than the" in reasons[str(short_test)]
        assert config["skipped_counts"]["training"] == 1 and config["skipped_counts"]["test"] == 1
        assert short_test not in scored and len(scored) > 0
        assert "skipped 1 too short training clip(s)" in caplog.text  # not "unreadable": it was read
        assert "skipped 1 too short test clip(s)" in caplog.text
    else:  # its windows wrap round the clip: trained on and scored like the others
        assert not reasons and short_test in scored

    incoming = tmp_path / "incoming"
    incoming.mkdir()
    good = next(p for p in (root / "fan" / "test").glob("*.wav") if p != short_test)
    for clip in (good, short_test):  # their names carry the section, which some detectors need
        shutil.copy(clip, incoming / clip.name)
    proc = cli("score", str(out), str(incoming), "--cache-dir", str(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stderr
    assert good.name in proc.stdout and "Traceback" not in proc.stderr
    if too_short:
        assert short_test.name not in proc.stdout
        assert short_test.name in proc.stderr and "window" in proc.stderr
    else:
        assert short_test.name in proc.stdout
