"""Section classifiers: networks (receptive field, shapes, embeddings), losses, training options, scores,
fine-tuning from a run, and errors. The registry-wide contract is in test_detectors.py."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from asdkit.data.manifest import Clip
from asdkit.detectors.base import HELD_OUT_FRACTION, ClipFeatures, Detector, held_out_split
from asdkit.detectors.section.family import PROXY, ccsa_loss, mask_spans
from asdkit.detectors.section.mobilenet import MobileNetSectionDetector
from asdkit.detectors.section.resnet import ResNetSectionDetector
from asdkit.detectors.windows import patches
from asdkit.errors import DataError, ModelError
from asdkit.features.config import FeatureConfig
from asdkit.models.mobilenet_v2 import InvertedResidual, MobileNetV2
from asdkit.models.rf_resnet import RFResNet

CONFIG = FeatureConfig(n_mels=16)
TINY = {
    "epochs": 3,
    "batch_size": 32,
    "accelerator": "cpu",
    "snippet_frames": 16,
    "hop_frames": 8,
    "base_channels": 4,
    "n_stages": 2,
    "blocks_per_stage": 1,
}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _clips(n_per_section: int, seed: int = 0, target: int = 0, sections: int = 2) -> ClipFeatures:
    """Sections differ by a tone band; ``target`` clips per section come from a shifted (target) domain."""
    rng = np.random.default_rng(seed)
    profile = np.linspace(-20, -60, CONFIG.n_mels)[:, None]
    arrays, clips = [], []
    for s in range(sections):
        for i in range(n_per_section + target):
            domain = "target" if i >= n_per_section else "source"
            x = profile + rng.normal(0, 1.0, size=(CONFIG.n_mels, 32))
            x[3 + 4 * s] += 10.0
            if domain == "target":
                x += 3.0
            arrays.append(x.astype(np.float32))
            clips.append(Clip(path=f"/d/{seed}_{s}_{i}.wav", machine="m", section=f"0{s}", domain=domain))
    return ClipFeatures(arrays, clips, CONFIG)


#: Harmonic spacing (in mel bands) of each section's comb in :func:`comb_sections`: two shaft speeds.
COMB_SPACINGS = (3.0, 5.0)


def comb_sections(n_per_section: int, seed: int, kind: str = "normal") -> ClipFeatures:
    """Sections a section classifier should tell apart, and anomalies it should catch: each section is a
    harmonic comb (+8 dB peaks every 3 or every 5 bands, 1% speed jitter) over noise and a per-clip level.

    ``kind`` makes every clip unlike its own section: ``swapped`` carries the other section's comb, ``moved``
    a comb halfway between the two (every 4 bands), ``missing`` none. 16 bands x 32 frames, one snippet.
    """
    rng = np.random.default_rng([seed, ("normal", "swapped", "moved", "missing").index(kind)])
    bands = np.arange(CONFIG.n_mels)[:, None]
    profile = np.linspace(-20, -60, CONFIG.n_mels)[:, None]
    arrays, clips = [], []
    for s, own in enumerate(COMB_SPACINGS):
        spacing = {"swapped": COMB_SPACINGS[1 - s], "moved": float(np.mean(COMB_SPACINGS))}.get(kind, own)
        for i in range(n_per_section):
            jittered = spacing * (1 + rng.normal(0, 0.01))
            peaks = np.arange(jittered, CONFIG.n_mels, jittered)
            comb = np.exp(-0.5 * ((bands - peaks) / 0.5) ** 2).sum(axis=1, keepdims=True)
            x = profile + rng.normal(0, 2.0) + rng.normal(0, 1.0, size=(CONFIG.n_mels, 32))
            if kind != "missing":
                x = x + 8.0 * comb
            arrays.append(x.astype(np.float32))
            clips.append(Clip(path=f"/d/{kind}/{seed}_{s}_{i}.wav", machine="m", section=f"0{s}"))
    return ClipFeatures(arrays, clips, CONFIG)


def mobilenet_on_combs(seed: int, **params: Any) -> MobileNetSectionDetector:
    """``mobilenet_section`` at its defaults (width 0.5, 20 epochs, batch 32, Adam at 1e-3, hop 8) but for
    32-frame snippets (the clips' length), fitted on 60 :func:`comb_sections` clips per section."""
    detector = MobileNetSectionDetector(snippet_frames=32, accelerator="cpu", seed=seed, **params)
    return detector.fit(comb_sections(60, seed))


# -- networks -----------------------------------------------------------------------------------------------
def test_receptive_field_budget_sets_the_kernels_and_bounds_the_input_region():
    small = RFResNet(3, 32, base_channels=4, n_stages=3, blocks_per_stage=2, rho_t=6, rho_f=40).eval()
    large = RFResNet(3, 32, base_channels=4, n_stages=3, blocks_per_stage=2, rho_t=80, rho_f=40)
    assert small.kernels[0] == (1, 3) and small.kernels[-1] == (1, 1)  # time budget used up by the stem
    assert large.kernels[0] == (3, 3) and large.kernels[-1] == (1, 1)
    # time: stem 5, poolings +2 and +4; bands: stem 5, four 3-convs at stride 2 (+16), pooling +2, two
    # 3-convs at stride 4 (+16): 39, the next would pass 40; the last pooling adds 4 more
    assert small.receptive_field == (11, 43)
    assert large.receptive_field[0] > small.receptive_field[0]
    # the gradient of one output unit reaches the input only inside the computed receptive field
    x = torch.randn(1, 96, 32, requires_grad=True)
    out = small.feature_map(x)
    out[0, :, out.shape[2] // 2, out.shape[3] // 2].sum().backward()
    touched_t = torch.nonzero(x.grad[0].abs().sum(dim=1)).flatten()
    touched_f = torch.nonzero(x.grad[0].abs().sum(dim=0)).flatten()
    assert 1 < int(touched_t[-1] - touched_t[0]) + 1 <= small.receptive_field[0]
    assert 1 < int(touched_f[-1] - touched_f[0]) + 1 <= small.receptive_field[1]


@pytest.mark.parametrize("network", [RFResNet(4, 128, base_channels=8), MobileNetV2(4, 128, width=0.5)])
def test_networks_give_logits_and_a_reusable_embedding(network):
    network.eval()
    x = torch.randn(3, 64, 128)
    with torch.inference_mode():
        embedding = network.embed(x)
        assert embedding.shape == (3, network.embedding_size)
        torch.testing.assert_close(network(x), network.classifier(embedding))
        assert network(torch.randn(2, 13, 128)).shape == (2, 4)  # any snippet length


def test_mobilenet_width_half_matches_the_reference_channel_plan():
    network = MobileNetV2(6, 128, width=0.5)
    convs = [m for m in network.features.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].out_channels == 16 and network.embedding_size == 1280
    blocks = [m for m in network.features if isinstance(m, InvertedResidual)]
    assert len(blocks) == 17
    # 16, 24, 32, 64, 96, 160, 320 halved and rounded to multiples of 8 (12 -> 16)
    assert sorted({b.body[-2].out_channels for b in blocks}) == [8, 16, 32, 48, 80, 160]


# -- pieces of the training loss ----------------------------------------------------------------------------
def test_snippets_cover_the_clip_and_short_clips_wrap():
    logmel = np.arange(16 * 40, dtype=np.float32).reshape(16, 40)
    items = patches(logmel, 16, 8)
    assert items.shape == (4, 16, 16)  # starts 0, 8, 16, 24: the last one is flush with the end
    np.testing.assert_array_equal(items[-1], logmel[:, 24:40].T)
    (short,) = patches(logmel[:, :5], 16, 8)
    np.testing.assert_array_equal(short, np.tile(logmel[:, :5], (1, 4))[:, :16].T)


def test_ccsa_pulls_same_sections_and_pushes_others_up_to_the_margin():
    section = torch.tensor([0, 1, 0, 1])
    is_target = torch.tensor([False, False, True, True])
    aligned = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert ccsa_loss(aligned, section, is_target, margin=0.5) == pytest.approx(0.0)
    swapped = aligned[[0, 1, 3, 2]]
    assert ccsa_loss(swapped, section, is_target, margin=0.5) > 0.5
    # different sections closer than the margin are pushed apart
    close = torch.tensor([[1.0, 0.0], [1.0, 0.1], [1.0, 0.0], [1.0, 0.1]])
    assert ccsa_loss(close, section, is_target, margin=1.0) > ccsa_loss(close, section, is_target, 0.05)
    assert ccsa_loss(aligned[:2], section[:2], is_target[:2], 0.5) == 0.0  # no target items: no pairs


def test_masks_fill_spans_with_the_given_values_and_respect_the_width():
    torch.manual_seed(0)
    x = torch.zeros(50, 20, 6)
    fill = torch.arange(6.0)[None, None, :] + 1
    masked = mask_spans(x, fill, n_masks=1, max_width=4, axis=1)
    changed = (masked != 0).any(dim=2)
    widths = changed.sum(dim=1)
    assert widths.max() <= 4 and widths.max() > 0
    assert torch.all((masked == 0) | (masked == fill))
    assert torch.equal(mask_spans(x, fill, n_masks=0, max_width=4, axis=1), x)


@torch.no_grad()
def test_proxy_items_are_trained_towards_the_uniform_prediction():
    detector = ResNetSectionDetector(**TINY, proxy_lambda=1.0)
    detector._build_network(CONFIG.n_mels, ["00", "01", "02"])
    network = detector.network_
    x = torch.randn(4, 16, CONFIG.n_mels)
    proxies, own = (x, torch.full((4,), PROXY)), (x, torch.zeros(4, dtype=torch.long))
    network.classifier.weight.zero_()
    network.classifier.bias.zero_()
    assert float(detector._loss(network, proxies)) == pytest.approx(np.log(3), rel=1e-5)  # the minimum
    network.classifier.bias.copy_(torch.tensor([5.0, 0.0, 0.0]))
    assert float(detector._loss(network, proxies)) > np.log(3)
    assert float(detector._loss(network, own)) < np.log(3)


# -- detectors ----------------------------------------------------------------------------------------------
def test_resnet_score_is_minus_the_mean_log_probability_of_the_own_section():
    detector = ResNetSectionDetector(**TINY, proxy_outliers=False).fit(_clips(6))
    test = _clips(2, seed=1)
    network = detector.network_.eval()
    expected = []
    for array, clip in zip(test.arrays, test.clips, strict=True):
        with torch.inference_mode():
            log_p = torch.log_softmax(network(torch.from_numpy(patches(array, 16, 8))).double(), dim=1)
        expected.append(-float(log_p[:, detector.sections_.index(clip.section)].mean()))
    np.testing.assert_allclose(detector.anomaly_score(test), expected, rtol=1e-6)


def test_mobilenet_score_is_the_mean_log_odds_against_the_own_section():
    detector = MobileNetSectionDetector(
        epochs=2, batch_size=32, accelerator="cpu", snippet_frames=16, hop_frames=8, width=0.25
    ).fit(_clips(6))
    test = _clips(2, seed=1)
    with torch.inference_mode():
        items = torch.from_numpy(patches(test.arrays[0], 16, 8))
        p = torch.softmax(detector.network_.eval()(items).double(), dim=1)[:, 0]
    expected = float((torch.log(1 - p) - torch.log(p)).mean())
    assert detector.anomaly_score(test)[0] == pytest.approx(expected, rel=1e-6)


def test_mobilenet_trains_when_one_snippet_is_left_over():
    """On 16 bands and 32 frames the deepest maps are 1 x 1, so a last training batch of one snippet gave
    BatchNorm one value per channel and torch refused it; the lone snippet now joins the batch before it."""
    data = _clips(8)
    fit_idx, _ = held_out_split(data.clips, HELD_OUT_FRACTION, 0)
    detector = MobileNetSectionDetector(
        epochs=1, batch_size=len(fit_idx) - 1, accelerator="cpu", snippet_frames=32, width=0.25
    )
    assert np.all(np.isfinite(detector.fit(data).anomaly_score(_clips(1, seed=1))))


def test_training_learns_the_sections():
    detector = ResNetSectionDetector(**{**TINY, "epochs": 8}, proxy_outliers=False).fit(_clips(8))
    test = _clips(3, seed=2)
    swapped = ClipFeatures(
        test.arrays,
        [Clip(c.path, c.machine, "01" if c.section == "00" else "00") for c in test.clips],
        CONFIG,
    )
    assert detector.anomaly_score(test).max() < detector.anomaly_score(swapped).min()


#: ``python benchmarks/bench_section_learning.py --data comb --seeds 0-7`` (defaults but 32-frame snippets):
#: section accuracy on unseen normal clips 0.90 +- 0.06 (min 0.80); AUC swapped 0.97 +- 0.02 (min 0.94), moved
#: 0.79 +- 0.08 (min 0.70), missing 0.82 +- 0.02 (min 0.80); resnet_section without proxies 1.00 on all three.
#: Each floor is the measured mean less 3 std of a mean of 4 seeds (std / 2), rounded down; at chance such a
#: mean (4 AUCs on 40 + 40 clips) is 0.5 +- 0.033, so the lowest floor is 5 of those above it.
MEAN_AUC_FLOORS = {"swapped": 0.93, "moved": 0.66, "missing": 0.78}
#: No seed may be near chance (the lowest of 8 seeds was 0.70).
SEED_AUC_FLOOR = 0.6


def test_mobilenet_section_learns_to_flag_clips_unlike_their_section():
    """The official baseline's classifier at its defaults flags clips whose section it no longer recognises
    (another section's comb, one halfway between the two, none), over seeds 0-3 (data and network anew)."""
    aucs: dict[str, list[float]] = {kind: [] for kind in MEAN_AUC_FLOORS}
    for seed in range(4):
        detector = mobilenet_on_combs(seed)
        normal = detector.anomaly_score(comb_sections(20, 10_000 + seed))
        for kind, values in aucs.items():
            anomalous = detector.anomaly_score(comb_sections(20, seed, kind))
            labels = [0] * len(normal) + [1] * len(anomalous)
            values.append(roc_auc_score(labels, np.r_[normal, anomalous]))
    for kind, floor in MEAN_AUC_FLOORS.items():
        assert np.mean(aucs[kind]) >= floor, aucs
        assert min(aucs[kind]) > SEED_AUC_FLOOR, aucs


def test_augmentations_and_proxies_train_and_are_repeatable():
    params = {**TINY, "mixup": 0.4, "time_masks": 2, "time_mask_frames": 4, "freq_masks": 1}
    other = _clips(4, seed=5)
    other = ClipFeatures(
        [a[::-1].copy() for a in other.arrays], [Clip(c.path, "o", c.section) for c in other.clips], CONFIG
    )
    scores = []
    for _ in range(2):
        detector = ResNetSectionDetector(**params)
        assert detector.tags().wants_machines and detector.tags().sections == "condition"
        scores.append(detector.fit(replace(_clips(4), proxy=other)).anomaly_score(_clips(2, seed=3)))
    np.testing.assert_allclose(scores[0], scores[1], rtol=1e-6)
    assert np.all(np.isfinite(scores[0]))


def test_fine_tuning_starts_from_a_run_directory_and_keeps_its_sections(tmp_path):
    data = _clips(6, target=2)
    first = ResNetSectionDetector(**TINY, proxy_outliers=False).fit(data)
    first.save(tmp_path / "run" / "models" / "m")
    tuned = ResNetSectionDetector(
        **{**TINY, "epochs": 1, "learning_rate": 0.0},
        proxy_outliers=False,
        ccsa_weight=1.0,
        init_from=str(tmp_path / "run"),
    ).fit(data)
    # with a zero learning rate only the BatchNorm statistics are re-estimated: the weights are the start's
    for key, value in first.network_.state_dict().items():
        if "running" not in key and "num_batches" not in key:
            torch.testing.assert_close(tuned.network_.state_dict()[key], value)
    moved = ResNetSectionDetector(
        **{**TINY, "epochs": 1, "learning_rate": 1e-2},
        proxy_outliers=False,
        ccsa_weight=1.0,
        init_from=str(tmp_path / "run" / "models" / "m"),
    ).fit(data)
    assert not torch.equal(moved.network_.classifier.weight, first.network_.classifier.weight)
    assert Detector.load(first.save(tmp_path / "again")).sections_ == ["00", "01"]


def test_fine_tuning_refuses_an_incompatible_start(tmp_path):
    first = ResNetSectionDetector(**TINY, proxy_outliers=False).fit(_clips(4))
    first.save(tmp_path / "model")
    with pytest.raises(ModelError, match="network differs in base_channels"):
        wider = {**TINY, "base_channels": 8}
        ResNetSectionDetector(**wider, init_from=str(tmp_path / "model")).fit(_clips(4))
    with pytest.raises(ModelError, match="trained on sections"):
        ResNetSectionDetector(**TINY, init_from=str(tmp_path / "model")).fit(_clips(4, sections=3))
    with pytest.raises(ModelError, match="neither a model folder nor a run directory"):
        ResNetSectionDetector(**TINY, init_from=str(tmp_path / "nothing")).fit(_clips(4))
    other_features = _clips(4)
    other_features.config = FeatureConfig(n_mels=16, hop_length=256)
    with pytest.raises(ModelError, match="features of another configuration"):
        ResNetSectionDetector(**TINY, init_from=str(tmp_path / "model")).fit(other_features)
    with pytest.raises(ModelError, match="holds a 'resnet_section' model"):
        MobileNetSectionDetector(init_from=str(tmp_path / "model"), epochs=1).fit(_clips(4))


def test_one_section_and_unknown_sections_are_clear_errors():
    with pytest.raises(DataError, match="needs at least 2 sections"):
        ResNetSectionDetector(**TINY).fit(_clips(4, sections=1))
    detector = ResNetSectionDetector(**TINY, proxy_outliers=False).fit(_clips(4))
    with pytest.raises(DataError, match=r"section\(s\) 05 not in the training data.*knows sections 00, 01"):
        detector.anomaly_score(ClipFeatures([_clips(1).arrays[0]], [Clip("/x.wav", "m", "05")], CONFIG))


def test_half_precision_falls_back_to_32_bits_on_the_cpu(caplog):
    detector = ResNetSectionDetector(**TINY, proxy_outliers=False, precision="16-mixed")
    with caplog.at_level("WARNING"):
        assert np.all(np.isfinite(detector.fit(_clips(4)).anomaly_score(_clips(1, seed=1))))
    assert "needs a GPU" in caplog.text


def test_several_devices_without_a_gpu_say_they_are_cpu_processes(caplog, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level("WARNING"):
        ResNetSectionDetector(
            **{**TINY, "accelerator": "auto"}, devices=4, strategy="ddp"
        )._effective_trainer()
    assert "devices=4, but no GPU is found: training in 4 CPU processes" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        ResNetSectionDetector(**TINY, devices=2)._effective_trainer()  # accelerator=cpu: meant
        ResNetSectionDetector(**{**TINY, "accelerator": "auto"})._effective_trainer()
    assert "no GPU is found" not in caplog.text
