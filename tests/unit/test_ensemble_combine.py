"""``ensemble(combine="max")``: per clip the largest of the members' normalised scores, fitted, thresholded,
saved, loaded and exported like the weighted mean; bad settings are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from asdkit.data.manifest import Clip
from asdkit.detectors.base import CONFIG_NAME, ClipFeatures, Detector
from asdkit.detectors.ensemble import EnsembleDetector
from asdkit.errors import ModelError
from asdkit.features.config import FeatureConfig
from asdkit.scoring.normalise import fit_normaliser, normalise

CONFIG = FeatureConfig(n_mels=16)


def _bundle(n: int, seed: int) -> ClipFeatures:
    rng = np.random.default_rng(seed)
    arrays, clips = [], []
    for i in range(n):
        x = np.linspace(-20, -60, CONFIG.n_mels)[:, None] + rng.normal(0, 1.0, (CONFIG.n_mels, 40))
        x[2 + 3 * (i % 2)] += 6.0 * rng.random()
        arrays.append(x.astype(np.float32))
        clips.append(Clip(path=f"/m/{seed}_{i}.wav", machine="m", section="00", domain="source"))
    return ClipFeatures(arrays, clips, CONFIG)


class _Lookup(Detector):
    """A fitted stand-in scoring clip ``i`` as ``values[i]``: the ensemble's arithmetic in plain sight."""

    name: ClassVar[str] = "_lookup"

    def __init__(self, values: tuple[float, ...] = ()) -> None:
        self.values = values

    def _fit(self, X: ClipFeatures) -> None:
        pass

    def _score(self, X: ClipFeatures) -> np.ndarray:
        return np.asarray(self.values[: len(X)], dtype=np.float64)


def _hand_built(combine: str, normalised_by: str = "zscore") -> EnsembleDetector:
    """Members A (raw 0, 1, 2, 3; training mean 1, std 1) and B (raw 8, 4, 2, 0; training mean 2, std 2)."""
    ens = EnsembleDetector(members=["a", "b"], combine=combine, normalise=normalised_by)
    a, b = _Lookup((0.0, 1.0, 2.0, 3.0)), _Lookup((8.0, 4.0, 2.0, 0.0))
    for member in (a, b):
        member.feature_config_, member.threshold_ = CONFIG, 0.0
    ens.members_ = [a, b]
    ens.normalisers_ = {"m0__mean": np.array(1.0), "m0__std": np.array(1.0)}
    ens.normalisers_ |= {"m1__mean": np.array(2.0), "m1__std": np.array(2.0)}
    ens.member_weights_ = [0.5, 0.5]
    ens.feature_config_, ens.threshold_ = CONFIG, 0.0
    return ens


def test_max_is_the_larger_normalised_score_per_clip():
    # A normalised: -1, 0, 1, 2; B normalised: 3, 1, 0, -1
    four = _bundle(4, 0)
    np.testing.assert_array_equal(_hand_built("max").anomaly_score(four), [3.0, 1.0, 1.0, 2.0])
    np.testing.assert_array_equal(_hand_built("mean").anomaly_score(four), [1.0, 0.5, 0.5, 0.5])


def test_a_fitted_max_ensemble_takes_each_members_own_held_out_normalisation():
    """Scores, held-out training scores and the threshold all come from the per-clip maximum."""
    train, test = _bundle(24, 1), _bundle(8, 2)
    for kind in ("zscore", "rank"):
        ens = EnsembleDetector(members=["mahalanobis", "knn"], combine="max", normalise=kind).fit(train)
        per_member_test, per_member_train = [], []
        for member in ens.members_:
            held_out = member.held_out_scores_
            stats = fit_normaliser(kind, held_out[np.isfinite(held_out)])
            per_member_test.append(normalise(kind, stats, member.anomaly_score(test)))
            per_member_train.append(normalise(kind, stats, held_out))
        expected = np.maximum(*per_member_test)
        np.testing.assert_allclose(ens.anomaly_score(test), expected, rtol=1e-12, atol=1e-12)
        # each member wins somewhere, else the test would not tell max from either member alone
        winners = {int(i) for i in np.argmax(np.stack(per_member_test), axis=0)}
        assert winners == {0, 1}
        np.testing.assert_allclose(ens.held_out_scores_, np.maximum(*per_member_train), rtol=1e-12)
        mean = EnsembleDetector(members=["mahalanobis", "knn"], normalise=kind).fit(train)
        assert not np.allclose(mean.anomaly_score(test), ens.anomaly_score(test))


def test_a_saved_max_ensemble_scores_and_decides_identically(tmp_path):
    train, test = _bundle(24, 3), _bundle(8, 4)
    ens = EnsembleDetector(members=["mahalanobis", "patch_bank"], combine="max").fit(train)
    path = ens.save(tmp_path / "m")
    assert json.loads((path / CONFIG_NAME).read_text())["params"]["combine"] == "max"
    loaded = Detector.load(path)
    assert loaded.combine == "max" and loaded.threshold_ == ens.threshold_
    np.testing.assert_array_equal(loaded.anomaly_score(test), ens.anomaly_score(test))


def test_a_model_saved_before_combine_existed_loads_as_a_mean(tmp_path):
    train, test = _bundle(24, 5), _bundle(8, 6)
    ens = EnsembleDetector(members=["mahalanobis", "knn"]).fit(train)
    path = ens.save(tmp_path / "old")
    config = json.loads((path / CONFIG_NAME).read_text())
    del config["params"]["combine"]
    (path / CONFIG_NAME).write_text(json.dumps(config))
    loaded = Detector.load(path)
    assert loaded.combine == "mean"
    np.testing.assert_array_equal(loaded.anomaly_score(test), ens.anomaly_score(test))


def test_evidence_then_max_combines_what_is_kept():
    train = _bundle(24, 7)
    ens = EnsembleDetector(
        members=["mahalanobis", "knn"], select="evidence", combine="max", evidence_clips=24
    ).fit(train)
    assert len(ens.members_) == 1 and ens.member_weights_ == [1.0]
    member = ens.members_[0]
    held_out = member.held_out_scores_[np.isfinite(member.held_out_scores_)]
    test = _bundle(6, 8)
    z = (member.anomaly_score(test) - held_out.mean()) / held_out.std()
    np.testing.assert_allclose(ens.anomaly_score(test), z, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"combine": "vote"},
            "ensemble: combine must be one of mean, max, got 'vote'",
        ),
        (
            {"combine": "max", "weights": [2.0, 1.0]},
            "ensemble: combine=max takes no weights (None or equal ones), got [2.0, 1.0]",
        ),
    ],
)
def test_bad_combine_settings_are_one_line_errors(params, message):
    with pytest.raises(ModelError) as error:
        EnsembleDetector(members=["mahalanobis", "knn"], **params).fit(_bundle(12, 9))
    assert str(error.value) == message and "\n" not in message


def test_equal_weights_are_accepted_under_max():
    train, test = _bundle(16, 10), _bundle(5, 11)
    given = EnsembleDetector(members=["mahalanobis", "knn"], combine="max", weights=[3, 3]).fit(train)
    plain = EnsembleDetector(members=["mahalanobis", "knn"], combine="max").fit(train)
    np.testing.assert_array_equal(given.anomaly_score(test), plain.anomaly_score(test))


def test_a_run_records_combine_and_the_service_scores_with_it(tmp_path: Path):
    """Through the Python API: config.json and model.json record combine=max, and the service's score of a
    clip is the run's own."""
    from fastapi.testclient import TestClient

    from asdkit import api
    from asdkit.data.synthetic import SyntheticSpec, generate
    from asdkit.service.app import create_app
    from asdkit.service.models import load_served_models

    root = generate(tmp_path / "d", layout="dcase2022", spec=SyntheticSpec.tiny(machines=("fan",)))
    run = tmp_path / "r"
    params = {"members": ["mahalanobis", "knn"], "combine": "max"}
    api.run(root, run, model="ensemble", params=params, plots=False)
    assert json.loads((run / "config.json").read_text())["params"]["combine"] == "max"
    assert json.loads((run / "models" / "fan" / CONFIG_NAME).read_text())["params"]["combine"] == "max"
    clip = sorted((root / "fan" / "test").glob("*.wav"))[0]
    offline, _ = api.score(run, [clip], machine="fan", cache_dir=tmp_path / "cache")
    with TestClient(create_app(load_served_models(run))) as client:
        body = client.post("/score", files={"file": (clip.name, clip.read_bytes(), "audio/wav")}).json()
    assert body["score"] == pytest.approx(offline[0].score, rel=1e-6)
