"""Pretext classes of the margin classifiers: band shift, statistics exchange, feature exchange."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from asdkit.data.manifest import Clip
from asdkit.data.synthetic import SyntheticSpec, generate
from asdkit.detectors.base import ClipFeatures, Detector
from asdkit.detectors.margin.family import AdaCosDetector, ArcFaceDetector
from asdkit.detectors.margin.pretext import (
    SHIFTED_DOWN,
    SHIFTED_UP,
    TASKS,
    band_shift,
    feature_exchange,
    partners,
    pretext_classes,
    pretext_items,
    resolve,
    stats_exchange,
)
from asdkit.errors import ModelError
from asdkit.features.config import FeatureConfig
from tests.helpers.cli import asdkit_cli

FRAMES, BANDS = 12, 8


def _batch(n: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Snippets [n, FRAMES, BANDS] with distinct per-band levels and spreads, labels of 3 classes."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(-60, -20, size=(n, 1, BANDS))
    spread = rng.uniform(0.5, 4.0, size=(n, 1, BANDS))
    x = (level + spread * rng.normal(size=(n, FRAMES, BANDS))).astype(np.float32)
    return x, np.arange(n) % 3


def test_auto_keeps_the_band_shift_of_a_single_class_and_nothing_else():
    assert resolve("auto", 1) == ("band_shift",)
    assert resolve("auto", 4) == ()
    assert resolve("none", 1) == ()
    assert resolve("stats_exchange", 4) == ("stats_exchange",)
    assert resolve("all", 2) == TASKS
    with pytest.raises(ModelError, match="pretext must be one of auto, none, band_shift"):
        resolve("cutmix", 2)


def test_each_exchange_adds_an_own_and_a_partner_class_per_class():
    classes = [("m", "00"), ("m", "01"), ("n", "00")]
    assert pretext_classes(("band_shift",), classes) == [SHIFTED_UP, SHIFTED_DOWN]
    added = pretext_classes(TASKS, classes)
    assert len(added) == 2 + 2 * 6 and len(set(added)) == len(added)
    assert added[2] == ("stats_exchange", "own", "m", "00")
    assert added[2 + 3] == ("stats_exchange", "partner", "m", "00")


def test_band_shift_rolls_the_bands_both_ways():
    x, _ = _batch()
    shifted, direction = band_shift(x, 2)
    assert shifted.shape == (12, FRAMES, BANDS)
    np.testing.assert_array_equal(shifted[0, :, 2:], x[0, :, :-2])
    np.testing.assert_array_equal(shifted[6, :, :-2], x[0, :, 2:])
    assert direction.tolist() == [0] * 6 + [1] * 6


def test_partners_come_from_another_class_and_repeat_under_a_seed():
    labels = np.array([0, 0, 0, 1, 2, 2])
    chosen = partners(labels, np.random.default_rng(3))
    assert np.all(labels[chosen] != labels)
    np.testing.assert_array_equal(chosen, partners(labels, np.random.default_rng(3)))
    one_class = partners(np.zeros(5, dtype=int), np.random.default_rng(0))
    assert np.all(one_class != np.arange(5))  # another snippet, when there is no other class
    assert partners(np.zeros(1, dtype=int), np.random.default_rng(0)).tolist() == [0]


def test_stats_exchange_gives_each_snippet_its_partners_band_statistics():
    x, labels = _batch()
    partner = partners(labels, np.random.default_rng(0))
    out = stats_exchange(x, partner)
    assert out.shape == x.shape and out.dtype == x.dtype
    np.testing.assert_allclose(out.mean(axis=1), x[partner].mean(axis=1), atol=1e-3)
    np.testing.assert_allclose(out.std(axis=1), x[partner].std(axis=1), rtol=1e-3)
    own = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
    new = (out - out.mean(axis=1, keepdims=True)) / out.std(axis=1, keepdims=True)
    np.testing.assert_allclose(new, own, atol=1e-3)  # the snippet's own pattern stays
    flat = np.full((2, FRAMES, BANDS), -40.0, dtype=np.float32)
    assert np.all(np.isfinite(stats_exchange(flat, np.array([1, 0]))))


def test_feature_exchange_swaps_the_upper_bands_or_the_spectrum():
    x, labels = _batch()
    partner = partners(labels, np.random.default_rng(0))
    out, none = feature_exchange(x, partner)
    assert none is None
    np.testing.assert_array_equal(out[..., : BANDS // 2], x[..., : BANDS // 2])
    np.testing.assert_array_equal(out[..., BANDS // 2 :], x[partner][..., BANDS // 2 :])
    spectra = np.arange(6 * 5, dtype=np.float32).reshape(6, 5)
    same, swapped = feature_exchange(x, partner, spectra)
    np.testing.assert_array_equal(same, x)
    np.testing.assert_array_equal(swapped, spectra[partner])


def test_items_of_every_task_are_labelled_after_the_real_classes_and_repeat_under_a_seed():
    x, labels = _batch()
    items = pretext_items(TASKS, x, labels, 3, np.random.default_rng(7))
    assert [len(i.snippets) for i in items] == [12, 6, 6]
    shift, stats, feature = items
    assert shift.share == 1 and set(shift.labels.tolist()) == {3, 4}
    for item, offset in ((stats, 5), (feature, 11)):
        assert item.share == 0.5
        np.testing.assert_array_equal(item.labels, offset + labels)  # own part: the snippet's class
        assert np.all((item.partner_labels >= offset + 3) & (item.partner_labels < offset + 6))
        assert np.all(item.partner_labels - offset - 3 != labels)  # partner part: another class
    assert max(int(i.partner_labels.max()) for i in items) < 3 + len(pretext_classes(TASKS, [()] * 3))
    again = pretext_items(TASKS, x, labels, 3, np.random.default_rng(7))
    for a, b in zip(items, again, strict=True):
        np.testing.assert_array_equal(a.snippets, b.snippets)
        np.testing.assert_array_equal(a.partner_labels, b.partner_labels)
    spectra = np.ones((6, 20), dtype=np.float32)
    with_spectra = pretext_items(TASKS, x, labels, 3, np.random.default_rng(7), spectra)
    assert [i.spectra.shape for i in with_spectra] == [(12, 20), (6, 20), (6, 20)]


# -- in the detectors ---------------------------------------------------------------------------------------
CONFIG = FeatureConfig(n_mels=16)
QUICK = dict(epochs=2, batch_size=16, base_channels=4, embedding_dim=8, snippet_frames=16, hop_frames=16)


def _one_class(n: int, seed: int, boost: float = 0.0) -> ClipFeatures:
    rng = np.random.default_rng(seed)
    arrays = [
        (np.linspace(-20, -60, 16)[:, None] + rng.normal(size=(16, 48))).astype(np.float32) for _ in range(n)
    ]
    for a in arrays:
        a[5:8] += boost
    clips = [
        Clip(path=f"/m/{seed}_{i}.wav", machine="m", section="00", label=int(boost > 0)) for i in range(n)
    ]
    return ClipFeatures(arrays, clips, CONFIG)


@pytest.mark.parametrize("pretext", ["stats_exchange", "feature_exchange", "all"])
@pytest.mark.parametrize("detector", [ArcFaceDetector, AdaCosDetector])
def test_a_one_class_machine_trains_on_each_pretext_and_saves(detector, pretext, tmp_path):
    train = _one_class(12, 0)
    model = detector(pretext=pretext, accelerator="cpu", **QUICK).fit(train)
    n_added = len(pretext_classes(resolve(pretext, 1), [("m", "00")]))
    assert model.classes_[0] == ("m", "00") and len(model.classes_) == 1 + n_added
    normal, odd = _one_class(3, 1), _one_class(3, 2, boost=20)
    test = ClipFeatures(normal.arrays + odd.arrays, normal.clips + odd.clips, CONFIG)
    scores = model.anomaly_score(test)
    assert np.all(np.isfinite(scores))
    loaded = Detector.load(model.save(tmp_path / "model"))
    np.testing.assert_allclose(loaded.anomaly_score(test), scores, rtol=1e-6)


def test_a_seed_repeats_an_exchange_training():
    train = _one_class(10, 0)
    first = ArcFaceDetector(pretext="all", accelerator="cpu", **QUICK).fit(train)
    second = ArcFaceDetector(pretext="all", accelerator="cpu", **QUICK).fit(train)
    losses = [[h["train_loss"] for h in m.history_] for m in (first, second)]
    assert losses[0] == losses[1]
    np.testing.assert_array_equal(first.anomaly_score(train), second.anomaly_score(train))


def test_bad_or_empty_pretexts_are_clear_errors():
    train = _one_class(6, 0)
    with pytest.raises(ModelError, match="arcface: pretext must be one of"):
        ArcFaceDetector(pretext="mixup", accelerator="cpu", **QUICK).fit(train)
    with pytest.raises(ModelError, match="one class; pretext=none leaves nothing to learn"):
        ArcFaceDetector(pretext="none", accelerator="cpu", **QUICK).fit(train)


@pytest.mark.slow
def test_cli_run_with_a_pretext_fits_and_scores_a_one_section_tree(tmp_path: Path):
    spec = SyntheticSpec.tiny(machines=("fan",), sections=1, duration=1.0)
    tree = generate(tmp_path / "data", layout="dcase2022", spec=spec)
    out = tmp_path / "run"
    done = asdkit_cli(
        "run", "--data", str(tree), "--out", str(out), "--model", "arcface", "--debug",
        "--param", "pretext=all", "--param", "labels=section", "--param", "snippet_frames=16",
        "--param", "hop_frames=16", "--param", "accelerator=cpu",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["status"] == "complete" and config["params"]["pretext"] == "all"
    assert (out / "result.csv").is_file()
    bad = asdkit_cli("run", "--data", str(tree), "--out", str(tmp_path / "bad"), "--model", "arcface",
                     "--debug", "--param", "pretext=cutmix")  # fmt: skip
    assert bad.returncode == 2
    assert "--param pretext=cutmix: arcface expects one of auto, none, band_shift" in bad.stderr
