"""Choosing a detector without test labels: the pseudo-anomaly transforms, the evidence, and the default
ensemble that keeps the candidate the evidence prefers (recorded, saved and loaded)."""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import pytest

from asdkit.data.manifest import Clip
from asdkit.detectors.base import ClipFeatures, Detector
from asdkit.detectors.ensemble import DEFAULT_CANDIDATES, DEFAULT_MEMBERS, DEFAULT_WEIGHTS, EnsembleDetector
from asdkit.detectors.registry import create_detector
from asdkit.features.config import FeatureConfig
from asdkit.scoring import evidence as ev

CONFIG = FeatureConfig(n_mels=16)
PROFILE = np.linspace(-20, -60, 16)


def _bundle(n: int, seed: int, machine: str = "m", n_target: int = 0) -> ClipFeatures:
    rng = np.random.default_rng(seed)
    arrays = [(PROFILE[:, None] + rng.normal(0, 1.0, (16, 40))).astype(np.float32) for _ in range(n)]
    clips = [
        Clip(
            path=f"/{machine}/{i}.wav",
            machine=machine,
            section="00",
            domain="target" if i < n_target else "source",
        )
        for i in range(n)
    ]
    return ClipFeatures(arrays, clips, CONFIG)


def test_spectrum_shift_moves_whole_bands_and_repeats_the_edge():
    x = np.arange(16, dtype=float)[:, None] * np.ones((1, 5))
    out = ev.pseudo_anomaly(x, "spectrum_shift", np.random.default_rng(0))
    shift = out[8, 0] - x[8, 0]
    assert abs(shift) in (1, 2, 3)
    np.testing.assert_array_equal(out[:, 0], np.clip(np.arange(16) + shift, 0, 15))


def test_transient_raises_only_its_frames_and_by_at_least_its_level():
    x = np.zeros((16, 30))
    out = ev.pseudo_anomaly(x, "transient", np.random.default_rng(1))
    changed = np.flatnonzero((out != x).any(axis=0))
    assert len(changed) == ev.TRANSIENT_FRAMES and np.ptp(changed) == ev.TRANSIENT_FRAMES - 1
    lo, hi = ev.TRANSIENT_DB
    added = out[:, changed] - x[:, changed]  # power sum of 0 dB and L dB: 10 log10(1 + 10^(L/10))
    assert np.all(added >= 10 * np.log10(1 + 10 ** (lo / 10)) - 1e-9)
    assert np.all(added <= 10 * np.log10(1 + 10 ** (hi / 10)) + 1e-9)


def test_band_removed_attenuates_one_band_floored_at_the_minimum():
    x = np.full((20, 10), 50.0)
    x[0, 0] = 45.0  # the clip's minimum
    out = ev.pseudo_anomaly(x, "band_removed", np.random.default_rng(2))
    rows = np.flatnonzero((out != x).any(axis=1))
    assert len(rows) == round(ev.BAND_FRACTION * 20)
    drop = 50.0 - out[rows[0], 1]
    assert ev.BAND_DROP_DB[0] <= drop <= 5.0 + 1e-9 or drop == pytest.approx(5.0)  # floored at 45


def test_machine_mix_adds_power_and_never_lowers_the_clip():
    rng = np.random.default_rng(3)
    x, other = rng.normal(-30, 3, (16, 25)), rng.normal(-10, 3, (16, 7))  # the other clip is shorter
    out = ev.pseudo_anomaly(x, "machine_mix", rng, other)
    assert out.shape == x.shape and np.all(out >= x)
    # level-matched at most MIX_GAIN_DB[1] below: the sum rises at most 10 log10(1 + 10^(gain/10)) on average
    assert np.mean(out - x) < 10 * np.log10(1 + 10 ** (ev.MIX_GAIN_DB[1] / 10)) + 3
    with pytest.raises(ValueError, match="another machine"):
        ev.pseudo_anomaly(x, "machine_mix", rng)


class _Coin(Detector):
    """Scores every clip at random: no evidence should prefer it."""

    name: ClassVar[str] = "_coin"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _fit(self, X: ClipFeatures) -> None:
        pass

    def _score(self, X: ClipFeatures) -> np.ndarray:
        return np.random.default_rng([self.seed, len(X)]).random(len(X))


def test_evidence_prefers_a_detector_that_sees_the_pseudo_anomalies_over_a_coin():
    X = _bundle(30, 0)
    X = ClipFeatures(X.arrays, X.clips, CONFIG, proxy=_bundle(5, 9, machine="other"))
    result = ev.gather_evidence(
        [("coin", lambda: _Coin()), ("mahalanobis", lambda: create_detector("mahalanobis"))], X, folds=3
    ).to_dict()
    assert result["chosen"] == ["mahalanobis"]
    assert result["transforms"] == list(ev.TRANSFORMS)
    coin, maha = result["candidates"]
    assert maha["auc"] > 0.8 and coin["auc"] < maha["auc"]
    assert len(maha["per_fold"]) == 3 and maha["criterion"] == pytest.approx(maha["auc"] - maha["fold_std"])


def test_without_other_machine_types_the_mix_is_left_out():
    result = ev.gather_evidence([("mahalanobis", lambda: create_detector("mahalanobis"))], _bundle(12, 1))
    assert "machine_mix" not in result.transforms


def test_evidence_subset_is_bounded_and_keeps_the_few_target_clips():
    X = _bundle(400, 2, n_target=3)
    keep = ev.evidence_subset(X.clips, 60, seed=0)
    assert len(keep) <= 63 and {0, 1, 2} <= set(keep)


def test_default_ensemble_keeps_the_chosen_candidate_and_records_why(tmp_path):
    X = _bundle(24, 4)
    X = ClipFeatures(X.arrays, X.clips, CONFIG, proxy=_bundle(4, 8, machine="other"))
    ens = EnsembleDetector(members=["mahalanobis", "knn"], select="evidence", evidence_clips=24).fit(X)
    assert ens.tags().proxies == frozenset()  # fitted: scoring needs no other machine types
    assert len(ens.members_) == 1 and ens.selection_["chosen"][0] in ("mahalanobis", "knn")
    assert ens.members_[0].name == ens.selection_["chosen"][0]
    # the threshold was fitted on scores made with the weights that score: the kept member weighs 1
    assert ens.member_weights_ == [1.0]
    assert "chose" in ens.selection_note() and "pseudo-anomaly AUC" in ens.selection_note()
    ens.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "model.json").read_text())
    assert json.dumps(saved).count('"chosen"') == 1
    loaded = Detector.load(tmp_path / "m")
    test = _bundle(6, 5)
    np.testing.assert_allclose(loaded.anomaly_score(test), ens.anomaly_score(test))
    assert loaded.selection_ == ens.selection_


def test_the_default_is_its_stated_member_and_scores_as_it_does():
    assert DEFAULT_MEMBERS == ({"model": "mahalanobis", "params": {"stats": "pooled+delta+envelope"}},)
    assert DEFAULT_WEIGHTS is None
    X, test = _bundle(12, 4), _bundle(6, 5)
    default = EnsembleDetector().fit(X)
    assert default.member_weights_ == [1.0]
    member = default.members_[0]
    assert member.name == "mahalanobis" and member.stats == "pooled+delta+envelope"
    # its score is the member's z-score (with its held-out training statistics): the same ranking
    held_out = member.held_out_scores_[np.isfinite(member.held_out_scores_)]
    z = (member.anomaly_score(test) - held_out.mean()) / held_out.std()
    np.testing.assert_allclose(default.anomaly_score(test), z, rtol=1e-6, atol=1e-9)


def test_default_weights_apply_to_the_default_members_only(monkeypatch):
    import asdkit.detectors.ensemble as ens_module

    monkeypatch.setattr(
        ens_module,
        "DEFAULT_MEMBERS",
        ({"model": "mahalanobis"}, {"model": "patch_bank", "params": {"aggregate": "mean"}}),
    )
    monkeypatch.setattr(ens_module, "DEFAULT_WEIGHTS", (2.0, 1.0))
    X, test = _bundle(12, 4), _bundle(6, 5)
    default = EnsembleDetector().fit(X)
    assert default.member_weights_ == pytest.approx([2 / 3, 1 / 3])
    # its score is that weighted mean of the members' z-scores (each with its held-out training statistics)
    z = []
    for member in default.members_:
        held_out = member.held_out_scores_[np.isfinite(member.held_out_scores_)]
        z.append((member.anomaly_score(test) - held_out.mean()) / held_out.std())
    np.testing.assert_allclose(default.anomaly_score(test), 2 / 3 * z[0] + 1 / 3 * z[1], rtol=1e-6, atol=1e-9)
    # weights given, members listed or candidates chosen by evidence: the default's weights play no part
    assert EnsembleDetector(weights=[1, 1]).fit(X).member_weights_ == [0.5, 0.5]
    listed = EnsembleDetector(
        members=["mahalanobis", {"model": "patch_bank", "params": {"aggregate": "mean"}}]
    )
    assert listed._given_weights() is None and EnsembleDetector(select="auto")._given_weights() is None


def test_select_none_is_the_default_mean_of_all_members():
    ens = EnsembleDetector(select="none")
    assert ens._specs() == list(DEFAULT_MEMBERS)
    assert EnsembleDetector()._specs() == list(DEFAULT_MEMBERS)  # select=none is asdkit's default
    assert EnsembleDetector(select="auto")._specs() == list(DEFAULT_CANDIDATES)
    assert "machines" in EnsembleDetector(select="auto").tags().proxies
    assert "machines" not in ens.tags().proxies
    for select in ("none", "auto"):  # listed members are averaged unless evidence is asked for
        fitted = EnsembleDetector(members=["mahalanobis", "knn"], select=select).fit(_bundle(12, 6))
        assert len(fitted.members_) == 2 and fitted.selection_ is None


def test_unknown_select_mode_is_refused():
    from asdkit.errors import ModelError

    with pytest.raises(ModelError, match="select"):
        EnsembleDetector(members=["knn"], select="vote").fit(_bundle(8, 7))
