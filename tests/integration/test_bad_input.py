"""Bad input ends in one line naming the problem (or a warning and a counted skip), never a traceback."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asdkit import api
from asdkit.data.audio import forget_reported_rates
from asdkit.data.synthetic import SyntheticSpec, generate
from asdkit.errors import DataError
from tests.helpers.cli import asdkit_cli as cli

QUICK = {"epochs": 1, "batch_size": 256, "accelerator": "cpu"}


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.fixture
def tree(tmp_path) -> Path:
    return generate(tmp_path / "data", layout="dcase2022", spec=SyntheticSpec.tiny(machines=("fan",)))


def test_missing_data_folder(tmp_path):
    proc = cli("run", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"))
    assert_one_line_error(proc, "nowhere")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(cli("scan", str(tmp_path / "empty")), "empty")


def test_unrecognised_tree_says_what_was_found_and_expected(tmp_path):
    (tmp_path / "odd" / "stuff").mkdir(parents=True)
    sf.write(tmp_path / "odd" / "stuff" / "recording.wav", np.zeros(160), 16000)
    proc = cli("scan", str(tmp_path / "odd"))
    assert_one_line_error(proc, "recording.wav", "dcase2022")


def test_unknown_machine_lists_the_known_ones(tree, tmp_path):
    proc = cli("run", "--data", str(tree), "--out", str(tmp_path / "run"), "--machine", "spaceship")
    assert_one_line_error(proc, "spaceship", "fan")


def test_unknown_detector(tree, tmp_path):
    assert_one_line_error(
        cli("run", "--data", str(tree), "--out", str(tmp_path / "r"), "--model", "nope"), "nope"
    )


def test_bad_param_syntax(tree, tmp_path):
    proc = cli("run", "--data", str(tree), "--out", str(tmp_path / "r"), "--param", "epochs")
    assert_one_line_error(proc, "KEY=VALUE")


def _corrupt(train: Path) -> list[Path]:
    clips = sorted(train.glob("*.wav"))
    clips[0].write_bytes(b"RIFF....not really a wav file")
    clips[1].write_bytes(b"")
    sf.write(clips[2], np.zeros(16000, dtype=np.float32), 16000, subtype="PCM_16")
    data, _ = sf.read(clips[3], dtype="float32")
    sf.write(clips[3], data, 8000, subtype="PCM_16")  # another sample rate: resampled, not skipped
    return clips


def test_corrupt_zero_length_and_silent_training_clips_are_skipped_and_counted(tree, tmp_path, caplog):
    clips = _corrupt(tree / "fan" / "train")
    forget_reported_rates()
    with caplog.at_level("WARNING"):
        result = api.run(tree, tmp_path / "run", model="ae", params=QUICK, cache_dir=tmp_path / "cache")
    assert result.evaluation is not None
    assert "skipped 3 unusable training clip(s)" in caplog.text
    assert "resampling" in caplog.text and clips[3].name in caplog.text
    model_meta = json.loads((tmp_path / "run" / "models" / "fan" / "model.json").read_text())["metadata"]
    assert model_meta["n_train_clips"] == len(clips) - 3


def test_every_training_clip_unreadable_is_an_error(tmp_path):
    tree = generate(tmp_path / "data", layout="dcase2022", spec=SyntheticSpec.tiny(machines=("fan",)))
    for clip in (tree / "fan" / "train").glob("*.wav"):
        clip.write_bytes(b"garbage")
    with pytest.raises(DataError, match="every training clip was unreadable"):
        api.run(tree, tmp_path / "run", model="ae", params=QUICK, cache_dir=tmp_path / "cache")


def test_scoring_a_corrupt_file_reports_it_and_scores_the_rest(tree, tmp_path):
    api.train(tree, tmp_path / "model", model="ae", params=QUICK, cache_dir=tmp_path / "cache")
    test = tmp_path / "incoming"
    test.mkdir()
    good = next((tree / "fan" / "test").glob("*.wav"))
    (test / "good.wav").write_bytes(good.read_bytes())
    (test / "bad.wav").write_bytes(b"not audio")
    proc = cli("score", str(tmp_path / "model"), str(test), "--cache-dir", str(tmp_path / "cache"))
    assert proc.returncode == 0
    assert "good.wav" in proc.stdout and "bad.wav" not in proc.stdout
    assert "bad.wav" in proc.stderr and "Traceback" not in proc.stderr


def test_not_a_model(tmp_path):
    clip = tmp_path / "x.wav"
    sf.write(clip, np.random.default_rng(0).normal(0, 0.1, 16000), 16000)
    assert_one_line_error(cli("score", str(tmp_path), str(clip)), "run directory")


def test_evaluate_an_empty_folder(tmp_path):
    assert_one_line_error(cli("evaluate", str(tmp_path)), str(tmp_path.name))


def test_bad_channel_option(tree, tmp_path):
    proc = cli("run", "--data", str(tree), "--out", str(tmp_path / "r"), "--channel", "left")
    assert_one_line_error(proc, "--channel", "left")


@pytest.mark.parametrize("command", ["run", "train"])
def test_a_missing_checkpoint_is_named_before_any_work(tree, tmp_path, command):
    """A pretrained encoder's weights that are not there: one line, before features are computed and
    before the run folder is made, not one failure per machine type after each one's features."""
    missing = tmp_path / "BEATs_iter3_plus_AS2M.pt"
    out = tmp_path / "run"
    proc = cli(
        command, "--data", str(tree), "--out", str(out), "--model", "knn",
        "--param", "input=beats", "--param", f"checkpoint={missing}",
    )  # fmt: skip
    assert_one_line_error(proc, f"--param checkpoint={missing}: knn: {missing}: no such checkpoint file")
    assert proc.returncode == 2 and "features of" not in proc.stderr
    assert not out.exists()


def test_one_reason_for_every_machine_type_is_said_once(tmp_path):
    """A setting wrong for every machine type (here a file that is not a checkpoint) fails the run in one
    line that gives the reason once, naming the machine types, not once per machine type."""
    data = generate(tmp_path / "data", layout="dcase2022", spec=SyntheticSpec.tiny(machines=("fan", "pump")))
    junk = tmp_path / "junk.pt"
    junk.write_text("not weights")
    proc = cli(
        "run", "--data", str(data), "--out", str(tmp_path / "run"), "--model", "knn", "--debug",
        "--param", "input=beats", "--param", f"checkpoint={junk}",
    )  # fmt: skip
    assert_one_line_error(proc, "no machine type could be trained: fan, pump: ")
    error = next(line for line in proc.stderr.splitlines() if line.startswith("error:"))
    assert error.count("not a readable checkpoint") == 1
