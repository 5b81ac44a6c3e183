"""The frame-level memory bank: short events count, banks stay bounded, the threshold sees left-out clips."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from asdkit.data.manifest import Clip
from asdkit.detectors.banks.patch_bank import PatchBankDetector, aggregate, greedy_coreset
from asdkit.detectors.base import ClipFeatures, Detector
from asdkit.errors import ModelError
from asdkit.features.config import FeatureConfig

CONFIG = FeatureConfig(n_mels=16)


def _clips(
    n: int, rng: np.random.Generator, click: bool = False, domain: str = "source", frames: int = 60
) -> ClipFeatures:
    """A steady machine (fixed band profile plus noise); a click lifts a few bands for 3 frames only."""
    profile = np.linspace(-20, -60, CONFIG.n_mels)[:, None]
    arrays, clips = [], []
    for i in range(n):
        x = profile + rng.normal(0, 1.0, size=(CONFIG.n_mels, frames))
        if click:
            t = int(rng.integers(5, frames - 8))
            x[2:9, t : t + 3] += 12.0
        arrays.append(x.astype(np.float32))
        clips.append(
            Clip(
                path=f"/d/m/{domain}{'c' if click else 'n'}{i}.wav", machine="m", section="00", domain=domain
            )
        )
    return ClipFeatures(arrays, clips, CONFIG)


def _join(*parts: ClipFeatures) -> ClipFeatures:
    return ClipFeatures([a for p in parts for a in p.arrays], [c for p in parts for c in p.clips], CONFIG)


def test_a_short_click_is_not_averaged_away():
    rng = np.random.default_rng(0)
    train = _clips(20, rng)
    test = _join(_clips(10, rng), _clips(10, rng, click=True))
    labels = np.array([0] * 10 + [1] * 10)
    top = PatchBankDetector(bank_size=256).fit(train).anomaly_score(test)
    mean = PatchBankDetector(bank_size=256, aggregate="mean").fit(train).anomaly_score(test)
    assert roc_auc_score(labels, top) == 1.0
    # 3 of 58 frame contexts differ: the clip mean dilutes them, the top-10% mean does not.
    gap = lambda s: s[10:].min() - s[:10].max()  # noqa: E731
    assert gap(top) > 0 and gap(top) / np.std(top[:10]) > gap(mean) / np.std(mean[:10])


def test_banks_stay_bounded_and_keep_rare_frames():
    rng = np.random.default_rng(1)
    detector = PatchBankDetector(bank_size=32).fit(_clips(40, rng))
    assert [b["shapes"]["bank"][0] for b in detector.bank_layout_] == [32]
    points = np.concatenate([rng.normal(0, 0.1, size=(500, 8)), np.full((1, 8), 50.0)])
    assert 500 in greedy_coreset(points, 10, np.random.default_rng(0))


def test_source_and_target_banks_each_bounded_and_a_target_clip_scores_low():
    rng = np.random.default_rng(2)
    source = _clips(20, rng)
    target = _clips(3, rng, domain="target")
    for a in target.arrays:
        a += 6.0  # the target machine is louder
    detector = PatchBankDetector(bank_size=64).fit(_join(source, target))
    assert [(b["domain"], b["shapes"]["bank"][0]) for b in detector.bank_layout_] == [
        ("source", 64),
        ("target", 64),
    ]
    new_target = _clips(5, rng, domain="target")
    for a in new_target.arrays:
        a += 6.0
    clicks = _clips(5, rng, click=True)
    scores = detector.anomaly_score(_join(new_target, clicks))
    assert scores[:5].max() < scores[5:].min()


def test_threshold_comes_from_left_out_clips():
    # A bank that holds every training frame scores each training frame 0 in-sample; the left-out
    # scores (each clip against the others) are what a new normal clip sees, so the threshold is above 0
    # and flags about a tenth of new normal clips, not all of them.
    rng = np.random.default_rng(3)
    detector = PatchBankDetector(bank_size=10_000).fit(_clips(30, rng))
    assert detector.threshold_ > 0
    assert detector.predict(_clips(40, rng)).mean() <= 0.35


def test_save_load_keeps_scores(tmp_path):
    rng = np.random.default_rng(4)
    detector = PatchBankDetector(bank_size=50, aggregate="quantile", fraction=0.05).fit(_clips(10, rng))
    test = _clips(4, rng, click=True)
    loaded = Detector.load(detector.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.anomaly_score(test), detector.anomaly_score(test))
    assert loaded.frame_scores(test.arrays[0], "00").shape == (58,)


def test_aggregates():
    s = np.arange(10, dtype=float)
    assert aggregate(s, "top_mean", 0.2) == 8.5
    assert aggregate(s, "top_mean", 0.01) == 9.0
    assert aggregate(s, "max", 0.1) == 9.0 and aggregate(s, "mean", 0.1) == 4.5
    assert aggregate(s, "quantile", 0.5) == pytest.approx(4.5)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"aggregate": "median"}, "aggregate must be one of"),
        ({"fraction": 0.0}, "fraction must be"),
        ({"bank_size": 0}, "bank_size must be"),
        ({"domains": "min_scaled"}, "domains must be"),
        ({"n_frames": 100}, "fewer than n_frames"),
    ],
)
def test_bad_parameters_are_named(params, message):
    with pytest.raises(ModelError, match=message):
        PatchBankDetector(**params).fit(_clips(4, np.random.default_rng(5)))
