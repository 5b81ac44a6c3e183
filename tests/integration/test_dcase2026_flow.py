"""A synthetic DCASE2026 two-channel tree through scan, run (each --channel), evaluate and submit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asdkit import api
from asdkit.data.catalogue import RELEASES
from asdkit.data.synthetic import SyntheticSpec, generate
from asdkit.features.noise_aware import channel_features
from tests.helpers.cli import asdkit_cli as cli

SPEC = SyntheticSpec.tiny(machines=("fan", "valve"), sections=1, duration=1.5)
CHOICES = ("0", "1", "mix", "pair", "noise_aware")
FAST = "mahalanobis"  # seconds per run; the default detector runs once, through the command line


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("d26") / "data", layout="dcase2026", spec=SPEC)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def runs(tree, cache_dir, tmp_path_factory) -> dict[str, api.RunResult]:
    root = tmp_path_factory.mktemp("runs")
    return {
        c: api.run(tree, root / c, model=FAST, features=channel_features(c), cache_dir=cache_dir, plots=False)
        for c in CHOICES
    }


def test_the_tree_has_two_channel_clips_named_as_2022_with_a_noise_attribute(tree):
    clips = sorted(tree.rglob("*.wav"))
    assert len(clips) == 2 * (4 + 1 + 2 * 2 * 2)
    for path in clips[:3]:
        x, rate = sf.read(path)
        assert rate == 16000 and x.shape == (24000, 2)
        assert "_noise_" in path.name
        # the far channel holds less of the machine and more noise: it differs from the near one
        assert np.corrcoef(x[:, 0], x[:, 1])[0, 1] < 0.95
    res = cli("scan", str(tree))
    assert res.returncode == 0 and "dcase2022 layout" in res.stdout and "fan" in res.stdout


def test_each_channel_choice_runs_and_is_recorded(runs):
    for choice, result in runs.items():
        config = json.loads((result.run_dir / "config.json").read_text())
        assert config["status"] == "complete", choice
        assert 0.0 <= result.evaluation.official_score <= 1.0
        model = json.loads((result.run_dir / "models" / "fan" / "model.json").read_text())
        assert model["features"] == channel_features(choice).to_dict() == config["features"]
    pair = json.loads(runs["pair"].run_dir.joinpath("models", "fan", "model.json").read_text())
    assert (pair["features"]["front_end"], pair["features"]["method"]) == ("noise_aware", "pair")
    assert pair["inputs"]["logmel"]["front_end"] == "noise_aware"  # the inputs name the variant read
    # the choices read different audio: their scores differ
    scores = {c: np.concatenate([s for s in r.scores.values()]) for c, r in runs.items()}
    assert all(not np.allclose(scores["0"], scores[c]) for c in CHOICES[1:])


def test_evaluate_repeats_the_run_and_score_reads_both_channels(runs, tree):
    for choice in ("0", "noise_aware"):
        result = runs[choice]
        again = api.evaluate(result.run_dir)
        assert again.official_score == pytest.approx(result.evaluation.official_score)
    clip = next((tree / "fan" / "test").glob("*anomaly*.wav"))
    res = cli("score", str(runs["noise_aware"].run_dir), str(clip), "--machine", "fan")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[1].startswith(str(clip))


def test_default_detector_with_the_noise_aware_front_end_from_the_command_line(tree, tmp_path):
    out = tmp_path / "na"
    res = cli("run", "--data", str(tree), "--out", str(out), "--channel", "noise_aware", "--no-plots", "-q")
    assert res.returncode == 0, res.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["status"] == "complete" and config["features"]["front_end"] == "noise_aware"
    assert config["model"] == "ensemble"


def test_a_recipe_sets_the_front_end_and_a_flag_overrides_the_channel(tree, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {FAST}\nfeatures: {{front_end: noise_aware, gain_floor: 0.2}}\n")
    res = cli(
        "run", "--config", str(recipe), "--data", str(tree), "--out", str(tmp_path / "a"), "-q", "--no-plots"
    )
    assert res.returncode == 0, res.stderr
    features = json.loads((tmp_path / "a" / "config.json").read_text())["features"]
    assert features["front_end"] == "noise_aware" and features["gain_floor"] == 0.2
    res = cli(
        "run", "--config", str(recipe), "--data", str(tree), "--out", str(tmp_path / "b"), "-q", "--no-plots",
        "--channel", "1",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    features = json.loads((tmp_path / "b" / "config.json").read_text())["features"]
    assert "front_end" not in features and features["channel"] == 1


def test_a_one_channel_tree_with_a_two_channel_front_end_is_one_clear_error(tmp_path, cache_dir):
    mono = generate(
        tmp_path / "mono", layout="dcase2022", spec=SyntheticSpec.tiny(machines=("fan",), sections=1)
    )
    res = cli(
        "run", "--data", str(mono), "--out", str(tmp_path / "r"), "--channel", "pair", "-q", "--no-plots"
    )
    assert res.returncode != 0
    assert "has 1 channel" in res.stderr and "Traceback" not in res.stderr


def _eval_tree(dev: Path, root: Path) -> Path:
    """The dev tree as a 2026 evaluation set: the evaluation machine types' names, anonymised test clips."""
    machines = RELEASES[2026].eval_machines
    sources = sorted(p.name for p in dev.iterdir() if p.is_dir())
    for k, name in enumerate(machines):
        src = dev / sources[k % len(sources)]
        shutil.copytree(src / "train", root / name / "train")
        (root / name / "test").mkdir(parents=True)
        for i, clip in enumerate(sorted((src / "test").glob("*.wav"))):
            shutil.copy(clip, root / name / "test" / f"section_00_{i:04d}.wav")
    return root


def test_an_evaluation_run_is_submitted_for_2026(tree, cache_dir, tmp_path):
    data = _eval_tree(tree, tmp_path / "eval_data")
    run = tmp_path / "eval_run"
    api.run(data, run, model=FAST, features=channel_features("noise_aware"), cache_dir=cache_dir, plots=False)
    res = cli("submit", str(run), "--year", "2026", "--team", "Doe_UNI", "--out", str(tmp_path / "sub"))
    assert res.returncode == 0, res.stderr
    assert "eval_data_list_2026.csv" in res.stderr  # says what it could not check
    folder = tmp_path / "sub" / "task2" / "Doe_UNI_task2_1"
    names = sorted(p.name for p in folder.glob("anomaly_score_*.csv"))
    assert names == sorted(f"anomaly_score_{m}_section_00_test.csv" for m in RELEASES[2026].eval_machines)
    rows = (folder / "anomaly_score_ToyDrone_section_00_test.csv").read_text().splitlines()
    assert len(rows) == 8 and rows[0].startswith("section_00_0000.wav,")
