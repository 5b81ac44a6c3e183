"""The fine-tuned encoder detector (``finetune``) on waveforms: the registry contract (fit returns self, a
threshold, one finite score per clip, save/load, repeatable), LoRA through peft merged into the saved
encoder, layer-wise learning rates, bf16 autocast on a CPU, classes from the manifest, clear errors.

A tiny BEATs with random weights, saved as a published-format checkpoint in tmp, a few steps on 0.5-s
crops: these check the machinery, not quality (random weights make no claim about real recordings).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from asdkit.data.manifest import Clip
from asdkit.detectors.base import ClipFeatures, Detector, InputArrays
from asdkit.detectors.margin.finetune import crops, finetune_class_key
from asdkit.detectors.registry import create_detector
from asdkit.errors import ModelError
from asdkit.features.config import FeatureConfig
from asdkit.features.waveform import WaveformConfig
from asdkit.models.encoder_classifier import EncoderClassifier, merge_lora, set_tuning
from asdkit.models.encoders import CheckpointError
from asdkit.models.encoders.beats import Beats
from asdkit.models.margin_heads import ArcFace

RATE = 16000
TINY = {"epochs": 2, "batch_size": 8, "segment_seconds": 0.5, "embedding_dim": 16, "accelerator": "cpu",
        "learning_rate": 1e-3}  # fmt: skip


def _bundle(n: int, rng: np.random.Generator, anomalous: bool = False, machine: str = "m") -> ClipFeatures:
    """0.5-s clips: a tone per section (another machine type: its own tone), anomalies add a high tone."""
    t = np.arange(RATE // 2) / RATE
    waves, clips = [], []
    for i in range(n):
        section = i % 2
        tone = 300 + 500 * section if machine == "m" else 2000
        w = 0.1 * np.sin(2 * np.pi * tone * t) + 0.02 * rng.normal(size=len(t))
        if anomalous:
            w += 0.1 * np.sin(2 * np.pi * 5000 * t)
        waves.append(w.astype(np.float32)[None])
        domain = "target" if i % 5 == 4 else "source"
        name = f"/d/{machine}/{'a' if anomalous else 'n'}{i}.wav"
        clips.append(Clip(path=name, machine=machine, section=f"0{section}", domain=domain))
    logmel = [np.zeros((16, 16), np.float32) for _ in waves]
    return ClipFeatures(
        logmel, clips, FeatureConfig(n_mels=16), {"waveform": InputArrays(WaveformConfig(), waves)}
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return Beats.save_random_checkpoint(tmp_path_factory.mktemp("w") / "BEATs_random.pt", seed=1)


@pytest.fixture(scope="module")
def data() -> tuple[ClipFeatures, ClipFeatures]:
    rng = np.random.default_rng(0)
    train = replace(_bundle(16, rng), proxy=_bundle(4, rng, machine="other"))
    test = _bundle(4, rng)
    return train, replace(test, clips=list(test.clips), arrays=list(test.arrays))


@pytest.fixture(scope="module")
def fitted(checkpoint, data) -> Detector:
    """LoRA under bf16 autocast on the CPU, the recipe's way at a tiny size."""
    return create_detector("finetune", checkpoint=str(checkpoint), precision="bf16-mixed", **TINY).fit(
        data[0]
    )


def test_fit_returns_self_with_a_threshold_and_a_training_history(fitted):
    assert np.isfinite(fitted.threshold_)
    assert len(fitted.history_) == TINY["epochs"]
    assert all(np.isfinite(row["train_loss"]) for row in fitted.history_)


def test_classes_are_machine_section_attributes_and_domain_from_the_manifest(fitted):
    # 2 sections x 2 domains of "m", plus the proxy machine type's section x domain
    assert ("m", "00", "domain=source") in fitted.classes_ and ("m", "01", "domain=target") in fitted.classes_
    assert any(c[0] == "other" for c in fitted.classes_)
    clip = Clip(path="/x.wav", machine="fan", section="00", domain="target", attributes={"v": "2", "a": "1"})
    assert finetune_class_key(clip, "attributes", True) == ("fan", "00", "a=1", "v=2", "domain=target")
    assert finetune_class_key(clip, "section", False) == ("fan", "00")


def test_scores_are_finite_and_survive_saving_without_the_users_file(fitted, data, checkpoint, tmp_path):
    _, test = data
    scores = fitted.anomaly_score(test)
    assert scores.shape == (len(test),) and scores.dtype == np.float64 and np.all(np.isfinite(scores))
    np.testing.assert_array_equal(fitted.predict(test), (scores > fitted.threshold_).astype(int))
    fitted.save(tmp_path / "model")
    moved = checkpoint.rename(checkpoint.with_suffix(".away"))  # the model holds the fine-tuned encoder
    try:
        loaded = Detector.load(tmp_path / "model")
        np.testing.assert_allclose(loaded.anomaly_score(test), scores, rtol=1e-6)
        assert loaded.get_params() == fitted.get_params()
    finally:
        moved.rename(checkpoint)


def test_an_unknown_section_is_scored_against_every_bank(fitted, data):
    _, test = data
    unknown = replace(test, clips=[replace(c, section="") for c in test.clips])
    assert fitted.tags().sections == "banks"
    assert np.all(np.isfinite(fitted.anomaly_score(unknown)))


def test_lora_trains_only_the_attention_and_is_merged_into_plain_layers(fitted, checkpoint):
    network = fitted.network_["embedder"]
    assert not any("lora_" in name for name, _ in network.named_parameters())
    assert type(network.encoder.encoder.layers[0].self_attn.q_proj) is torch.nn.Linear
    original = Beats.from_checkpoint(checkpoint)
    tuned, before = network.encoder.state_dict(), original.state_dict()
    attention = [k for k in before if k.endswith(("q_proj.weight", "v_proj.weight"))]
    assert attention and all(not torch.equal(tuned[k], before[k]) for k in attention)
    frozen = [k for k in before if "fc1" in k or "patch_embedding" in k]
    assert frozen and all(torch.equal(tuned[k], before[k]) for k in frozen)


def test_full_fine_tuning_is_repeatable_with_the_same_seed(checkpoint, data):
    train, test = data
    params = {
        **TINY,
        "epochs": 1,
        "tuning": "full",
        "head": "adacos",
        "pooling": "mean",
        "proxy_classes": False,
    }
    a = create_detector("finetune", checkpoint=str(checkpoint), **params).fit(train)
    b = create_detector("finetune", checkpoint=str(checkpoint), **params).fit(train)
    np.testing.assert_allclose(a.anomaly_score(test), b.anomaly_score(test), rtol=1e-6)
    tuned = a.network_["embedder"].encoder.state_dict()
    before = Beats.from_checkpoint(checkpoint).state_dict()
    assert not torch.equal(tuned["patch_embedding.weight"], before["patch_embedding.weight"])


def test_layer_wise_learning_rates_decay_towards_the_input():
    encoder = Beats.tiny()  # 2 layers
    network = EncoderClassifier(encoder, ArcFace(8, 3), 8)
    set_tuning(network, "full")
    groups = network.parameter_groups(1.0, layer_decay=0.5)
    rate_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert rate_of[id(network.projection.weight)] == 1.0 and rate_of[id(network.head.centres)] == 1.0
    assert rate_of[id(encoder.encoder.layers[1].fc1.weight)] == 0.5
    assert rate_of[id(encoder.encoder.layers[0].fc1.weight)] == 0.25
    assert rate_of[id(encoder.patch_embedding.weight)] == 0.125
    assert len(rate_of) == sum(1 for _ in network.parameters())
    set_tuning(network, "frozen")
    assert {id(p) for g in network.parameter_groups(1.0, 0.5) for p in g["params"]} == {
        id(p) for p in [*network.pool.parameters(), *network.projection.parameters(), network.head.centres]
    }


def test_merged_lora_gives_the_adapted_networks_outputs():
    torch.manual_seed(0)
    network = EncoderClassifier(Beats.tiny(), ArcFace(8, 3), 8).eval()
    set_tuning(network, "lora", rank=4)
    for name, p in network.named_parameters():
        if "lora_B" in name:  # peft starts B at zero (no change); make the adapters do something
            torch.nn.init.normal_(p, std=0.05)
    wave = torch.randn(2, RATE // 2) * 0.1
    with torch.no_grad():
        adapted = network(wave)
        merge_lora(network)
        merged = network(wave)
    assert not any("lora_" in name for name, _ in network.named_parameters())
    torch.testing.assert_close(merged, adapted, rtol=1e-4, atol=1e-5)


def test_bad_requests_are_one_clear_error(checkpoint, data, tmp_path):
    train, _ = data
    with pytest.raises(
        ModelError, match="reads input 'waveform' beside the log-mel and the features lack it"
    ):
        create_detector("finetune", checkpoint=str(checkpoint), **TINY).fit(
            ClipFeatures(train.arrays, train.clips, train.config)
        )
    one_class = replace(train, clips=[replace(c, section="00", domain="source") for c in train.clips])
    with pytest.raises(ModelError, match="one class"):
        create_detector("finetune", checkpoint=str(checkpoint), proxy_classes=False, **TINY).fit(one_class)
    with pytest.raises(CheckpointError, match=r"github\.com/microsoft/unilm"):
        create_detector("finetune", checkpoint=str(tmp_path / "none.pt"), **TINY).fit(train)
    with pytest.raises(ModelError, match="shorter than beats's shortest input"):
        create_detector("finetune", checkpoint=str(checkpoint), **{**TINY, "segment_seconds": 0.01}).fit(
            train
        )
    with pytest.raises(ModelError, match="tuning must be one of"):
        create_detector("finetune", checkpoint=str(checkpoint), tuning="half", **TINY).fit(train)


def test_crops_cut_a_clip_and_repeat_a_short_one():
    wave = np.arange(10, dtype=np.float32)[None]
    np.testing.assert_array_equal(crops(wave, 4), [[0, 1, 2, 3], [4, 5, 6, 7]])
    assert crops(wave[:, :3], 4).tolist() == [[0, 1, 2, 0]]


def test_an_ensemble_of_fine_tuned_models_averages_their_z_normalised_scores(checkpoint, data, tmp_path):
    train, test = data
    params = {**TINY, "epochs": 1, "n_models": 2, "proxy_classes": False}
    ensemble = create_detector("finetune", checkpoint=str(checkpoint), **params).fit(train)
    members = ensemble.ensemble_.members_
    assert [m.seed for m in members] == [0, 1] and ensemble.ensemble_.normalise == "zscore"
    scores = ensemble.anomaly_score(test)
    assert np.all(np.isfinite(scores)) and np.isfinite(ensemble.threshold_)
    ensemble.save(tmp_path / "model")
    np.testing.assert_allclose(Detector.load(tmp_path / "model").anomaly_score(test), scores, rtol=1e-6)
