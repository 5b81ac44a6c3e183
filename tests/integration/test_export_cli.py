"""``asdkit export`` of a default-detector run: the ONNX graph scores clips as ``asdkit score`` does."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from helpers.trees import make_tree

from asdkit.data.audio import load_audio
from asdkit.data.naming.clipname import section_from_name
from asdkit.export.onnx import onnx_scores


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    # one BLAS thread: the Mahalanobis banks' fits crawl with many threads on a busy 2-core machine
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "ASDKIT_TRACKING": "off"}
    return subprocess.run(
        [sys.executable, "-m", "asdkit", *args], capture_output=True, text=True, timeout=600, env=env
    )


def test_the_default_detector_exports_and_scores_as_asdkit_score(tmp_path):
    data = make_tree(tmp_path / "data", "dcase2022", machines=("fan",), n_train=8, n_target_train=2, n_test=2)
    run = tmp_path / "run"
    args = (
        "--data",
        str(data),
        "--out",
        str(run),
        "--quiet",
        "--no-plots",
        "--cache-dir",
        str(tmp_path / "c"),
    )
    assert (proc := cli("run", *args)).returncode == 0, proc.stderr
    assert json.loads((run / "models" / "fan" / "model.json").read_text())["detector"] == "ensemble"

    out = tmp_path / "fan.onnx"
    assert (proc := cli("export", str(run), "--machine", "fan", "-o", str(out))).returncode == 0, proc.stderr
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["detector"] == "ensemble" and props["inputs"] == "waveform, section"

    clips = sorted((data / "fan" / "test").glob("*.wav"))
    loose = tmp_path / "loose.wav"  # a file without a section in its name: every bank is searched
    loose.write_bytes(clips[-1].read_bytes())
    clips.append(loose)
    proc = cli("score", str(run), *map(str, clips))
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [Path(r["file"]) for r in rows] == clips
    expected = np.array([float(r["score"]) for r in rows])
    sections = [section_from_name(c.name) or "" for c in clips]
    got = onnx_scores(out, [load_audio(c) for c in clips], sections)
    assert np.ptp(expected) > 0
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    threshold = float(props["threshold"])
    assert [int(s > threshold) for s in got] == [int(r["decision"]) for r in rows]
