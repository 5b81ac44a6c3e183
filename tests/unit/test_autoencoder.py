"""The dense AE is the official baseline's network, and its optional input scaling changes only speed."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from asdkit.data.manifest import Clip
from asdkit.detectors.base import ClipFeatures
from asdkit.detectors.reconstruction.autoencoder import AutoencoderDetector
from asdkit.features.config import FeatureConfig
from asdkit.models.dense_ae import DenseAutoencoder


def test_network_is_the_official_shape():
    net = DenseAutoencoder()
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    widths = [linears[0].in_features] + [m.out_features for m in linears]
    assert widths == [640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in net.modules()) == 9
    assert sum(isinstance(m, nn.ReLU) for m in net.modules()) == 9


def test_unset_scaler_is_exactly_the_identity():
    torch.manual_seed(0)
    net = DenseAutoencoder(n_features=20, hidden=8, bottleneck=2, n_hidden=1, n_mels=4).eval()
    x = torch.randn(6, 20) * 30 - 40
    assert torch.equal(net(x), net.decoder(net.encoder(x)))


def _features(n: int, frames: int, rng: np.random.Generator) -> ClipFeatures:
    config = FeatureConfig(n_mels=8)
    profile = np.linspace(-20, -60, 8)[:, None]
    arrays = [(profile + rng.normal(0, 1, (8, frames))).astype(np.float32) for _ in range(n)]
    return ClipFeatures(
        arrays, [Clip(path=f"/c{i}.wav", machine="m", section="00") for i in range(n)], config
    )


def test_raw_input_baseline_learns_the_level_given_enough_steps():
    X = _features(20, 200, np.random.default_rng(0))
    ae = AutoencoderDetector(hidden=32, bottleneck=4, n_hidden=2, epochs=40, batch_size=64, accelerator="cpu")
    ae.fit(X)
    start, end = ae.history_[0]["train_loss"], ae.history_[-1]["train_loss"]
    assert end < start / 10
    assert ae.anomaly_score(X).mean() < 20  # dB**2: within a few dB of data whose level is -20 to -60 dB


def test_standardised_input_keeps_errors_in_db_and_learns_faster():
    X = _features(20, 60, np.random.default_rng(1))
    params = dict(hidden=32, bottleneck=4, n_hidden=2, epochs=5, batch_size=64, accelerator="cpu")
    raw = AutoencoderDetector(**params).fit(X)
    scaled = AutoencoderDetector(standardise=True, **params).fit(X)
    assert scaled.network_.scaler.offset[0] < -15  # the band means of the training data
    assert scaled.anomaly_score(X).mean() < raw.anomaly_score(X).mean() / 10
