"""A pretrained encoder as a front end: its config and cache key, its frames, and the bank detectors that
read it through their ``input`` parameter (no detector code of its own)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from asdkit.data.manifest import Clip
from asdkit.detectors.banks.input_choice import pool_frames
from asdkit.detectors.base import ClipFeatures, Detector, InputArrays
from asdkit.detectors.registry import create_detector
from asdkit.features.cache import FeatureCache
from asdkit.features.config import FeatureConfig
from asdkit.features.encoder import BeatsFrontEnd, BeatsInputConfig, EncoderFrames, parse_layers
from asdkit.features.frontends import front_end_for
from asdkit.models.encoders import CheckpointError, checkpoint_sha256
from asdkit.models.encoders.beats import Beats
from tests.helpers.served import write_wav

FEATURES = FeatureConfig(n_mels=32)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return Beats.save_random_checkpoint(tmp_path_factory.mktemp("w") / "beats.pt", seed=2)


def _front(checkpoint: Path, **options: object) -> BeatsFrontEnd:
    front = BeatsFrontEnd.from_features(FEATURES, checkpoint=str(checkpoint), **options)
    assert isinstance(front, BeatsFrontEnd)
    return front


def test_layers_text_is_parsed_and_checked():
    assert parse_layers("all", 3) == [(1, 1 / 3), (2, 1 / 3), (3, 1 / 3)]
    assert parse_layers("last", 3) == [(3, 1.0)]
    assert parse_layers("1,3", 3) == [(1, 0.5), (3, 0.5)]
    assert parse_layers("1:1,3:3", 3) == [(1, 0.25), (3, 0.75)]
    for bad in ("x", "1:-1", "0:0"):
        with pytest.raises(ValueError, match="layers"):
            parse_layers(bad, 3)
    with pytest.raises(ValueError, match=r"layers 1\.\.3"):
        parse_layers("4", 3)


def test_frames_are_the_chosen_layer_mix_averaged_over_frequency_patches(checkpoint):
    encoder = Beats.from_checkpoint(checkpoint)
    wave = torch.randn(16000 * 2) * 0.1
    with torch.inference_mode():
        layers = encoder(wave[None])
        frames = EncoderFrames(encoder, BeatsInputConfig(layers="1:1,2:3"))(wave)
        patches = EncoderFrames(encoder, BeatsInputConfig(layers="last", frames="patches"))(wave)
    mix = 0.25 * layers[0][0] + 0.75 * layers[1][0]
    expected = mix.unflatten(0, (-1, encoder.frame_groups)).mean(1).T
    assert frames.shape == (encoder.embed_dim, layers[0].shape[1] // encoder.frame_groups)
    assert torch.allclose(frames, expected, atol=1e-6)
    assert torch.allclose(patches, layers[-1][0].T, atol=1e-6)


def test_the_config_carries_the_weights_fingerprint_and_the_cache_key_follows_the_weights(
    checkpoint, tmp_path
):
    front = _front(checkpoint)
    assert front.config.weights_sha256 == checkpoint_sha256(checkpoint)
    assert front.config.sample_rate == 16000 and front.config.channel == FEATURES.channel
    moved = Path(shutil.copy(checkpoint, tmp_path / "elsewhere.pt"))
    assert _front(moved).cache_key() == front.cache_key()  # a moved file keeps its cache
    assert _front(checkpoint, layers="last").cache_key() != front.cache_key()
    other = Beats.save_random_checkpoint(tmp_path / "other.pt", seed=7)
    assert _front(other).cache_key() != front.cache_key()
    assert front_end_for(front.config).name == "beats"


def test_a_missing_checkpoint_fails_when_the_front_end_is_built(tmp_path):
    with pytest.raises(CheckpointError, match=r"no such checkpoint file.*microsoft/unilm"):
        BeatsFrontEnd.from_features(FEATURES, checkpoint=str(tmp_path / "none.pt"))
    with pytest.raises(CheckpointError, match="no checkpoint given"):
        BeatsFrontEnd.from_features(FEATURES)


def test_the_feature_cache_stores_encoder_frames_once(checkpoint, tmp_path):
    paths = [write_wav(tmp_path / f"c{i}.wav", seconds=1.5, seed=i) for i in range(3)]
    front = _front(checkpoint)
    cache = FeatureCache(front.config, cache_dir=tmp_path / "cache")
    first = cache.extract(paths)
    entries = sorted((tmp_path / "cache" / front.cache_key()).glob("*.npy"))
    assert len(entries) == 3 and len(first.arrays) == 3
    again = FeatureCache(
        front.config, cache_dir=tmp_path / "cache", strategy="batches", batch_size=2
    ).extract(paths)
    from asdkit.data.audio import load_audio

    direct = front.compute([load_audio(p, 16000, 0) for p in paths])
    for a, b, c in zip(first.arrays, again.arrays, direct, strict=True):
        assert a.shape == c.shape and a.shape[0] == 32
        np.testing.assert_allclose(a, b)
        np.testing.assert_allclose(a, c, atol=1e-5)


def test_pooling_over_time():
    x = np.array([[1.0, 3.0], [-2.0, 2.0]])
    np.testing.assert_allclose(pool_frames(x, "mean"), [2.0, 0.0])
    np.testing.assert_allclose(pool_frames(x, "mean_std"), [2.0, 0.0, 1.0, 2.0])
    gem = pool_frames(x, "gem")
    assert gem[0] == pytest.approx(((1 + 27) / 2) ** (1 / 3))
    assert gem[1] == pytest.approx((8 / 2) ** (1 / 3), rel=1e-6)  # negative frames floored at ~0
    np.testing.assert_allclose(pool_frames(x, "mean", [0.0, 1.0]), [2.0, 0.0, 1.0, -2.0, 3.0, 2.0])


_BUNDLES: dict[BeatsInputConfig, tuple[ClipFeatures, ClipFeatures]] = {}


def _bundle(front: BeatsFrontEnd, n: int, seed: int, shift: float = 0.0) -> ClipFeatures:
    rng = np.random.default_rng(seed)
    t = np.arange(16000 * 2) / 16000
    waves = [
        (0.1 * np.sin(2 * np.pi * (300 + 20 * (i % 3) + shift) * t) + 0.02 * rng.normal(size=len(t))).astype(
            np.float32
        )
        for i in range(n)
    ]
    clips = [Clip(path=f"/x/{seed}_{i}.wav", machine="fan", section="00", domain="source") for i in range(n)]
    logmel = front_end_for(FEATURES).compute(waves)
    return ClipFeatures(logmel, clips, FEATURES, {"beats": InputArrays(front.config, front.compute(waves))})


@pytest.mark.parametrize(
    "name, params",
    [
        ("knn", {"metric": "cosine", "pooling": "mean"}),
        ("mahalanobis", {"pooling": "mean_std", "layers": "last"}),
        ("gmm", {"pooling": "gem", "n_components": 1}),
        ("patch_bank", {"n_frames": 2, "bank_size": 64}),
    ],
)
def test_bank_detectors_read_encoder_frames_and_save_them_with_the_weights(
    checkpoint, tmp_path, name, params
):
    detector = create_detector(name, input="beats", checkpoint=str(checkpoint), **params)
    assert detector.tags().inputs == ("logmel", "beats")  # type: ignore[attr-defined]
    front = _front(checkpoint, layers=params.get("layers", "all"))
    train, test = _BUNDLES.get(front.config) or _BUNDLES.setdefault(
        front.config, (_bundle(front, 12, seed=0), _bundle(front, 4, seed=1, shift=150.0))
    )
    detector.fit(train)
    scores = detector.anomaly_score(test)
    assert scores.shape == (4,) and np.all(np.isfinite(scores))
    # the scores come from the encoder's frames: other frames give other scores
    reversed_frames = [a[::-1].copy() for a in test.inputs["beats"].arrays]
    swapped = ClipFeatures(
        test.arrays, test.clips, FEATURES, {"beats": InputArrays(front.config, reversed_frames)}
    )
    assert not np.allclose(detector.anomaly_score(swapped), scores)
    detector.save(tmp_path / "model")
    loaded = Detector.load(tmp_path / "model")
    np.testing.assert_allclose(loaded.anomaly_score(test), scores)
