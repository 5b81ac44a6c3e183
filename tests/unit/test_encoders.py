"""Pretrained audio encoders: the registry's interface, BEATs' checkpoint loading, and parity with the
official code (skipped without ../shared/reference/beats) and with kaldi-native-fbank."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asdkit.models.encoders import (
    AudioEncoder,
    CheckpointError,
    available_encoders,
    build_tiny_encoder,
    get_encoder_class,
    load_encoder,
)
from asdkit.models.encoders.beats import Beats, BeatsConfig
from asdkit.models.encoders.kaldi_fbank import KaldiFbank

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "beats"


def _waves(batch: int, seconds: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(16000 * seconds)) / 16000
    tone = torch.sin(2 * torch.pi * 440 * t)
    return 0.05 * torch.randn(batch, len(t), generator=g) + 0.1 * tone


@pytest.mark.parametrize("name", available_encoders())
def test_every_encoder_gives_every_layers_frames(name: str) -> None:
    encoder = build_tiny_encoder(name)
    assert isinstance(encoder, AudioEncoder)
    with torch.inference_mode():
        layers = encoder(_waves(2, 2.0))
    assert len(layers) == encoder.num_layers
    for frames in layers:
        assert frames.dtype == torch.float32
        assert frames.shape[0] == 2 and frames.shape[2] == encoder.embed_dim
        assert frames.shape[1] % encoder.frame_groups == 0
        assert torch.isfinite(frames).all()
    assert not torch.equal(layers[0], layers[-1])


@pytest.mark.parametrize("name", available_encoders())
def test_every_encoder_round_trips_its_published_checkpoint(name: str, tmp_path: Path) -> None:
    cls = get_encoder_class(name)
    path = cls.save_random_checkpoint(tmp_path / "random.pt", seed=3)
    a, b = load_encoder(name, path), load_encoder(name, path)
    wave = _waves(1, 1.5)
    with torch.inference_mode():
        out_a, out_b = a(wave)[-1], b(wave)[-1]
    assert torch.equal(out_a, out_b)
    other = cls.save_random_checkpoint(tmp_path / "other.pt", seed=4)
    with torch.inference_mode():
        assert not torch.allclose(load_encoder(name, other)(wave)[-1], out_a)


@pytest.mark.parametrize("name", available_encoders())
def test_padding_samples_do_not_reach_the_clips_frames(name: str) -> None:
    encoder = build_tiny_encoder(name)
    wave = _waves(2, 3.0, seed=1)
    mask = torch.zeros_like(wave, dtype=torch.bool)
    mask[1, 30000:] = True
    noisy = wave.clone()
    noisy[1, 30000:] = 0.0
    with torch.inference_mode():
        frames = encoder(noisy, mask)[-1]
        kept = ~encoder.frame_padding_mask(mask, frames.shape[1])
        assert kept[0].all() and 0 < kept[1].sum() < kept.shape[1]
        # samples that only padding frames hold: changing them changes nothing the clip's frames see
        last = int(kept[1].sum()) // encoder.frame_groups * 16 * 160 + 400
        noisy[1, last:] = torch.randn(wave.shape[1] - last)
        again = encoder(noisy, mask)[-1]
    assert torch.allclose(frames[1][kept[1]], again[1][kept[1]], atol=1e-5)
    assert torch.allclose(frames[0], again[0], atol=1e-5)


def test_fine_tuned_checkpoint_drops_its_classifier(tmp_path: Path) -> None:
    path = Beats.save_random_checkpoint(tmp_path / "pt.pt")
    data = torch.load(path, weights_only=True)
    dim = data["cfg"]["encoder_embed_dim"]
    data["cfg"] |= {"finetuned_model": True, "predictor_class": 527, "predictor_dropout": 0.1}
    data["model"] |= {"predictor.weight": torch.randn(527, dim), "predictor.bias": torch.zeros(527)}
    torch.save(data, tmp_path / "ft.pt")
    wave = _waves(1, 1.0)
    with torch.inference_mode():
        assert torch.equal(
            Beats.from_checkpoint(path)(wave)[-1], Beats.from_checkpoint(tmp_path / "ft.pt")(wave)[-1]
        )


@pytest.mark.parametrize(
    "content, words",
    [
        (None, "no such checkpoint file"),
        (b"not a torch file", "not a readable checkpoint"),
        ({"state_dict": {}}, "not 'cfg' and 'model'"),
        ({"cfg": {}, "model": {"fc.weight": torch.zeros(1)}}, "not a BEATs model"),
    ],
)
def test_a_missing_or_wrong_checkpoint_is_one_line_naming_the_published_files(
    tmp_path: Path, content: object, words: str
) -> None:
    path = tmp_path / "beats.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(CheckpointError) as info:
        Beats.from_checkpoint(path)
    message = str(info.value)
    assert words in message and "github.com/microsoft/unilm" in message and "\n" not in message


def test_weights_that_do_not_fit_the_config_are_one_line(tmp_path: Path) -> None:
    path = Beats.save_random_checkpoint(tmp_path / "tiny.pt")
    data = torch.load(path, weights_only=True)
    data["cfg"]["encoder_embed_dim"] = 64
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="do not fit its BEATs config"):
        Beats.from_checkpoint(path)


def test_mixed_precision_runs_close_to_float32() -> None:
    encoder = Beats.tiny()
    wave = _waves(2, 2.0)
    with torch.inference_mode():
        full = encoder(wave)[-1]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = encoder(wave)[-1]
    assert half.dtype == torch.bfloat16
    assert torch.isfinite(half).all()
    # bfloat16 keeps 8 bits of mantissa; layer-normed outputs are O(1)
    assert (half.float() - full).abs().mean() < 0.05


# -- parity with independent implementations --------------------------------------------------------------


@pytest.fixture
def knf() -> None:
    pytest.importorskip("kaldi_native_fbank", reason="kaldi-native-fbank (the dev extra) is not installed")


@pytest.mark.parametrize("n_mels", [40, 80])
def test_filterbank_matches_kaldi_native_fbank(knf: None, n_mels: int) -> None:
    from asdkit.models.encoders.reference import knf_fbank

    wave = _waves(1, 2.0) * 32768
    ours = KaldiFbank(16000, n_mels=n_mels)(wave)[0]
    theirs = knf_fbank(wave, num_mel_bins=n_mels)
    assert ours.shape == theirs.shape
    # float32 FFTs of two libraries on 16-bit-range audio: log energies agree to ~1e-4 (absolute, natural log)
    assert (ours - theirs).abs().max() < 2e-3


def test_beats_filterbank_matches_the_kaldi_reference_at_128_bands(knf: None) -> None:
    from asdkit.models.encoders.reference import knf_fbank

    wave = _waves(1, 10.0) * 32768
    ours = KaldiFbank(16000, n_mels=128)(wave)[0]
    theirs = knf_fbank(wave, num_mel_bins=128)
    assert ours.shape == theirs.shape == (998, 128)
    assert (ours - theirs).abs().max() < 2e-3


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/reference/beats is absent")
def test_beats_matches_the_official_code_on_ten_second_clips(knf: None, tmp_path: Path) -> None:
    from asdkit.models.encoders.reference import load_official, official_layers

    path = Beats.save_random_checkpoint(tmp_path / "small.pt", seed=5, size="small")
    official = load_official(REFERENCE, path)
    ours = Beats.from_checkpoint(path)
    wave = _waves(2, 10.0, seed=2)
    with torch.inference_mode():
        final, _ = official.extract_features(wave)
        theirs = official_layers(official, wave)
        mine = ours(wave)
    assert final.shape == mine[-1].shape == (2, 496, BeatsConfig.small().encoder_embed_dim)
    assert (mine[-1] - final).abs().max() <= 1e-4
    for a, b in zip(mine, theirs, strict=True):
        assert (a - b).abs().max() <= 1e-4


@pytest.mark.parametrize("name", available_encoders())
def test_every_encoder_trains_every_weight(name: str) -> None:
    """Fine-tuning builds on the same module: in training mode every parameter gets a gradient."""
    encoder = build_tiny_encoder(name).train()
    wave = _waves(2, 1.0)
    mask = torch.zeros_like(wave, dtype=torch.bool)
    mask[1, 9000:] = True
    encoder(wave, mask)[-1].square().mean().backward()
    missing = [n for n, p in encoder.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
