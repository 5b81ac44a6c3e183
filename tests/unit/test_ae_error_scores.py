"""The AE's DCASE2023/2024-baseline scoring: Mahalanobis norm of reconstruction-error vectors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from asdkit.data.manifest import Clip
from asdkit.detectors.base import ClipFeatures, Detector
from asdkit.detectors.reconstruction.autoencoder import AutoencoderDetector
from asdkit.errors import ModelError
from asdkit.features.config import FeatureConfig
from asdkit.scoring.embedding import DomainBanks
from asdkit.scoring.error_mahalanobis import MAX_ITEMS, ErrorCovariance, clip_scores, item_share

CONFIG = FeatureConfig(n_mels=8)


def _clips(n: int, rng: np.random.Generator, domain: str = "source", anomalous: bool = False) -> ClipFeatures:
    profile = np.linspace(-20, -60, 8)[:, None]
    arrays, clips = [], []
    for i in range(n):
        x = profile + rng.normal(0, 1, (8, 40))
        if domain == "target":
            x[:4] += 5.0
        if anomalous:
            x[5:7] += 12.0
        arrays.append(x.astype(np.float32))
        clips.append(Clip(path=f"/{domain}{int(anomalous)}{i}.wav", machine="m", section="00", domain=domain))
    return ClipFeatures(arrays, clips, CONFIG)


def _join(*parts: ClipFeatures) -> ClipFeatures:
    return ClipFeatures([a for p in parts for a in p.arrays], [c for p in parts for c in p.clips], CONFIG)


def _ae(score: str) -> AutoencoderDetector:
    return AutoencoderDetector(
        hidden=32, bottleneck=4, n_hidden=1, standardise=True, score=score, epochs=15, accelerator="cpu"
    )


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    train = _join(_clips(20, rng), _clips(4, rng, "target"))
    test = _join(_clips(5, rng), _clips(5, rng, "target"), _clips(10, rng, anomalous=True))
    return train, test, np.array([0] * 10 + [1] * 10)


@pytest.mark.parametrize(
    ("score", "banks"), [("mahalanobis", ["all"]), ("selective_mahalanobis", ["source", "target"])]
)
def test_error_mahalanobis_separates_and_round_trips(data, score, banks, tmp_path):
    train, test, labels = data
    ae = _ae(score).fit(train)
    assert [b["domain"] for b in ae.error_layout_] == banks
    scores = ae.anomaly_score(test)
    assert roc_auc_score(labels, scores) >= 0.9
    loaded = Detector.load(ae.save(tmp_path / "m"))
    assert loaded.get_params()["score"] == score
    np.testing.assert_allclose(loaded.anomaly_score(test), scores, rtol=1e-6)


def test_scores_differ_from_mse_on_the_same_network(data):
    train, test, _ = data
    mse = _ae("mse").fit(train).anomaly_score(test)
    maha = _ae("mahalanobis").fit(train).anomaly_score(test)  # same seed: the same trained network
    assert not np.allclose(mse, maha)


def test_error_covariance_is_an_uncentred_quadratic_form():
    rng = np.random.default_rng(1)
    E = rng.normal(0, [1.0, 3.0], size=(5000, 2))
    state = ErrorCovariance().fit(E)
    np.testing.assert_allclose(state["precision"], np.linalg.inv(np.cov(E.T)), rtol=1e-3)
    d = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    np.testing.assert_allclose(ErrorCovariance().score(state, d), [0.0, 1.0, 1.0], atol=0.05)


def test_selective_takes_the_nearer_domain_per_clip():
    rng = np.random.default_rng(2)
    small, large = rng.normal(0, 0.1, (400, 3)), rng.normal(0, 10.0, (400, 3))
    banks = DomainBanks(ErrorCovariance(), "min").fit(
        np.concatenate([small, large]), ["00"] * 800, ["source"] * 400 + ["target"] * 400
    )
    per_bank = [ErrorCovariance().score(s, np.full((1, 3), 5.0))[0] for s in banks.states]
    score = clip_scores(banks, [np.full((4, 3), 5.0)], ["00"])
    assert score[0] == pytest.approx(min(per_bank)) and per_bank[1] < per_bank[0]


def test_covariance_items_per_bank_are_bounded():
    counts, keys = [300] * 1000, ["a"] * 990 + ["b"] * 10
    chosen = item_share(counts, keys)
    assert sum(len(c) for c, k in zip(chosen, keys, strict=True) if k == "a") <= MAX_ITEMS
    assert all(len(c) == 300 for c, k in zip(chosen, keys, strict=True) if k == "b")


def test_unknown_score_is_refused(data):
    with pytest.raises(ModelError, match="score must be one of"):
        _ae("l1").fit(data[0])


def test_onnx_export_refuses_error_mahalanobis(data, tmp_path):
    from asdkit.export.onnx import export_onnx

    with pytest.raises(ModelError, match="score=mse only"):
        export_onnx(_ae("mahalanobis").fit(data[0]), tmp_path / "m.onnx")
