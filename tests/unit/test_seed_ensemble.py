"""``n_models=K`` on the margin classifiers: K seeds trained, normalised and averaged, saved as one model."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from asdkit.data.manifest import Clip
from asdkit.detectors.base import WEIGHTS_NAME, ClipFeatures, Detector
from asdkit.detectors.margin.family import AdaCosDetector
from asdkit.errors import ModelError
from asdkit.features.config import FeatureConfig

CONFIG = FeatureConfig(n_mels=16)
SMALL = {"epochs": 4, "base_channels": 4, "embedding_dim": 16, "accelerator": "cpu", "proxy_classes": False}


def _clips(n: int, rng: np.random.Generator, anomalous: bool = False) -> ClipFeatures:
    """One section (so the band-shift pretext classes are used); anomalies add a strong band."""
    profile = np.linspace(-20, -60, CONFIG.n_mels)[:, None]
    arrays, clips = [], []
    for i in range(n):
        x = profile + rng.normal(0, 1.0, size=(CONFIG.n_mels, 80))
        x[10] += 8.0
        if anomalous:
            x[4:7] += 15.0
        arrays.append(x.astype(np.float32))
        clips.append(Clip(path=f"/d/m/{'a' if anomalous else 'n'}{i}.wav", machine="m", section="00"))
    return ClipFeatures(arrays, clips, CONFIG)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    train, normal, anomalous = _clips(12, rng), _clips(6, rng), _clips(6, rng, anomalous=True)
    test = ClipFeatures(
        list(normal.arrays) + list(anomalous.arrays), list(normal.clips) + list(anomalous.clips), CONFIG
    )
    return train, test, np.array([0] * 6 + [1] * 6)


def test_seed_ensemble_trains_k_seeds_and_round_trips(data, tmp_path):
    train, test, labels = data
    detector = AdaCosDetector(n_models=2, seed=3, **SMALL).fit(train)
    assert [m.seed for m in detector.ensemble_.members_] == [6, 7]
    scores = detector.anomaly_score(test)
    assert roc_auc_score(labels, scores) >= 0.9
    path = detector.save(tmp_path / "m")
    assert (path / "seed_ensemble" / "members" / "m1" / WEIGHTS_NAME).is_file()  # each seed a saved model
    loaded = Detector.load(path)
    assert loaded.get_params()["n_models"] == 2
    np.testing.assert_allclose(loaded.anomaly_score(test), scores, rtol=1e-6)


def test_seed_ensemble_is_the_mean_of_its_members_normalised_scores(data):
    train, test, _ = data
    detector = AdaCosDetector(n_models=2, **SMALL).fit(train)
    norm = detector.ensemble_.normalisers_
    members = [m.anomaly_score(test) for m in detector.ensemble_.members_]
    z = [(s - norm[f"m{i}__mean"]) / norm[f"m{i}__std"] for i, s in enumerate(members)]
    np.testing.assert_allclose(detector.anomaly_score(test), np.mean(z, axis=0), rtol=1e-6)


def test_n_models_must_be_positive(data):
    with pytest.raises(ModelError, match="n_models must be a positive integer"):
        AdaCosDetector(n_models=0, **SMALL).fit(data[0])


def test_seed_ensemble_threshold_rests_on_every_held_out_clip(data):
    """Members of different seeds hold out the outer seed's clips, so none of the held-out clips is lost
    to the intersection of K different splits."""
    train, _, _ = data
    single = AdaCosDetector(n_models=1, seed=1, **SMALL).fit(train)
    ensemble = AdaCosDetector(n_models=3, seed=1, **SMALL).fit(train)
    held = np.isfinite(single.held_out_scores_)
    assert held.sum() >= 2
    np.testing.assert_array_equal(np.isfinite(ensemble.held_out_scores_), held)
    assert all(m.split_seed == 1 for m in ensemble.ensemble_.members_)
