"""``n_models=K`` on the margin classifiers: K seeds trained and combined (normalised scores averaged, or one
back end on their joint embeddings), saved as one model."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from asdkit.data.manifest import Clip
from asdkit.detectors.base import WEIGHTS_NAME, ClipFeatures, Detector
from asdkit.detectors.margin.family import AdaCosDetector, ArcFaceDetector
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


@pytest.mark.parametrize("cls", [ArcFaceDetector, AdaCosDetector], ids=["arcface", "adacos"])
def test_embedding_ensemble_scores_joint_embeddings_and_round_trips(cls, data, tmp_path):
    train, test, labels = data
    detector = cls(n_models=2, ensemble_mode="embeddings", seed=3, **SMALL).fit(train)
    assert [m.seed for m in detector.seed_members_] == [6, 7]
    joint = detector.embed(test)
    assert joint.shape == (len(test), 2 * SMALL["embedding_dim"])
    np.testing.assert_allclose(np.linalg.norm(joint, axis=1), 1.0, rtol=1e-9)
    scores = detector.anomaly_score(test)
    assert roc_auc_score(labels, scores) >= 0.9
    path = detector.save(tmp_path / "m")
    assert (path / "seed_members" / "m1" / WEIGHTS_NAME).is_file()  # each seed a saved model
    assert not (path / "seed_ensemble").exists() and not (path / WEIGHTS_NAME).exists()
    loaded = Detector.load(path)
    assert loaded.get_params()["ensemble_mode"] == "embeddings"
    assert [m.seed for m in loaded.seed_members_] == [6, 7]
    np.testing.assert_allclose(loaded.anomaly_score(test), scores, rtol=1e-6)
    assert loaded.threshold_ == detector.threshold_


def test_joint_embedding_distance_is_the_mean_of_the_members_cosine_distances(data):
    """Concatenating unit parts scaled by 1/sqrt(K): no alignment of the seeds' spaces is needed."""
    train, test, _ = data
    detector = AdaCosDetector(n_models=2, ensemble_mode="embeddings", **SMALL).fit(train)
    joint = detector.embed(test)
    members = [m.embed(test) for m in detector.seed_members_]
    units = [e / np.linalg.norm(e, axis=1, keepdims=True) for e in members]
    member_distance = np.mean([1.0 - u @ u.T for u in units], axis=0)
    np.testing.assert_allclose(1.0 - joint @ joint.T, member_distance, atol=1e-9)
    # the default back end (1-NN cosine) on them: a test clip's score is its smallest such distance
    bank = detector.embed(train)
    nearest = (1.0 - joint @ bank.T).min(axis=1)
    np.testing.assert_allclose(detector.anomaly_score(test), nearest, atol=1e-9)


def test_embedding_ensemble_threshold_rests_on_the_outer_split(data):
    train, _, _ = data
    single = AdaCosDetector(seed=1, **SMALL).fit(train)
    joint = AdaCosDetector(n_models=3, ensemble_mode="embeddings", seed=1, **SMALL).fit(train)
    held = np.isfinite(single.held_out_scores_)
    assert held.sum() >= 2
    np.testing.assert_array_equal(np.isfinite(joint.held_out_scores_), held)
    assert np.isfinite(joint.threshold_)


def test_one_model_ignores_the_ensemble_mode(data):
    train, test, _ = data
    default = AdaCosDetector(seed=2, **SMALL).fit(train)
    embeddings = AdaCosDetector(seed=2, ensemble_mode="embeddings", **SMALL).fit(train)
    np.testing.assert_array_equal(embeddings.anomaly_score(test), default.anomaly_score(test))
    assert not hasattr(embeddings, "seed_members_")


@pytest.mark.parametrize("cls", [ArcFaceDetector, AdaCosDetector], ids=["arcface", "adacos"])
def test_unknown_ensemble_mode_is_a_one_line_error(cls, data):
    with pytest.raises(ModelError) as err:
        cls(n_models=2, ensemble_mode="mean", **SMALL).fit(data[0])
    message = str(err.value)
    assert message == f"{cls.name}: ensemble_mode must be one of scores, embeddings, got 'mean'"
