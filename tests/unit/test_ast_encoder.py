"""AST through transformers behind the AudioEncoder interface: its filterbank against an independent Kaldi
one (Hanning window), the model directory (save_pretrained) as the user's weights, the ``ast`` front end
and fine-tuning with LoRA on its attention. Tiny random configs; nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="transformers (the finetune extra) is not installed")

from asdkit.detectors.base import ClipFeatures
from asdkit.features.config import FeatureConfig
from asdkit.features.frontends import get_front_end
from asdkit.models.encoders import CheckpointError, checkpoint_sha256, load_encoder
from asdkit.models.encoders.ast import AstEncoder


def _wave(seconds: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(16000 * seconds)) / 16000
    return 0.05 * torch.randn(1, len(t), generator=g) + 0.1 * torch.sin(2 * torch.pi * 440 * t)


def test_the_filterbank_matches_kaldi_native_fbank_with_a_hanning_window() -> None:
    knf = pytest.importorskip("kaldi_native_fbank", reason="kaldi-native-fbank (the dev extra) is absent")
    encoder = AstEncoder.tiny()
    wave = _wave(2.0)
    opts = knf.FbankOptions()
    opts.frame_opts.dither, opts.frame_opts.window_type = 0.0, "hanning"
    opts.mel_opts.num_bins = 80  # kaldi-native-fbank refuses 128 bands at 16 kHz (an empty band)
    computer = knf.OnlineFbank(opts)
    computer.accept_waveform(16000.0, wave[0].tolist())
    computer.input_finished()
    theirs = torch.from_numpy(np.stack([computer.get_frame(i) for i in range(computer.num_frames_ready)]))
    from asdkit.models.encoders.kaldi_fbank import KaldiFbank

    ours_at_80 = KaldiFbank(16000, n_mels=80)
    ours_at_80.window = encoder.fbank.window  # the AST filterbank's window, at 80 bands
    ours = ours_at_80(wave)[0]
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max() < 2e-3  # float32 FFTs of two libraries, natural-log energies


def test_the_user_directory_loads_and_is_fingerprinted(tmp_path: Path) -> None:
    path = AstEncoder.save_random_checkpoint(tmp_path / "ast", seed=2)
    assert (path / "config.json").is_file()
    a = load_encoder("ast", path)
    wave = _wave(1.0)
    with torch.inference_mode():
        direct = a.model(input_values=torch.zeros(1, a.max_length, 128)).last_hidden_state
        assert torch.isfinite(direct).all() and a(wave)[-1].shape[1] == a.t_dim * a.frame_groups
    assert len(a.transformer_layers()) == a.num_layers  # what layer-wise learning rates scale
    first = checkpoint_sha256(path)
    AstEncoder.save_random_checkpoint(tmp_path / "ast", seed=3)
    assert checkpoint_sha256(path) != first  # a directory's fingerprint follows its weights


@pytest.mark.parametrize("given", ["missing", "empty"])
def test_a_missing_or_wrong_directory_is_one_line_naming_where_to_get_it(tmp_path: Path, given: str) -> None:
    path = tmp_path / given
    if given == "empty":
        path.mkdir()
        (path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="save_pretrained") as caught:
        load_encoder("ast", path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_batch_with_a_padded_clip_gives_each_clip_what_it_gives_alone() -> None:
    encoder = AstEncoder.tiny()
    long, short = _wave(3.0, 1), _wave(1.5, 2)
    batch = torch.cat([long, torch.nn.functional.pad(short, (0, long.shape[1] - short.shape[1]))])
    mask = torch.zeros_like(batch, dtype=torch.bool)
    mask[1, short.shape[1] :] = True
    with torch.inference_mode():
        together = encoder(batch, mask)[-1]
        alone = encoder(short)[-1]
    torch.testing.assert_close(together[1], alone[0], rtol=1e-4, atol=1e-4)


def test_the_ast_front_end_gives_frames_of_the_users_model(tmp_path: Path) -> None:
    path = AstEncoder.save_random_checkpoint(tmp_path / "ast", seed=2)
    front = get_front_end("ast").from_features(FeatureConfig(), checkpoint=str(path), layers="last")
    assert front.config.weights_sha256 == checkpoint_sha256(path)
    frames = front.compute([_wave(2.0)[0].numpy()])[0]
    encoder = load_encoder("ast", path)
    assert frames.shape == (encoder.embed_dim, encoder.t_dim)  # one vector per time step
    assert np.isfinite(frames).all()


def test_fine_tuning_ast_with_lora_scores_clips(tmp_path: Path) -> None:
    from dataclasses import replace

    from asdkit.data.manifest import Clip
    from asdkit.detectors.base import InputArrays
    from asdkit.detectors.registry import create_detector
    from asdkit.features.waveform import WaveformConfig

    path = AstEncoder.save_random_checkpoint(tmp_path / "ast", seed=2)
    waves = [_wave(1.0, seed=i)[0].numpy()[None] for i in range(8)]
    clips = [Clip(path=f"/d/{i}.wav", machine="m", section=f"0{i % 2}") for i in range(8)]
    X = ClipFeatures([np.zeros((16, 8), np.float32)] * 8, clips, FeatureConfig(n_mels=16),
                     {"waveform": InputArrays(WaveformConfig(), waves)})  # fmt: skip
    detector = create_detector("finetune", encoder="ast", checkpoint=str(path), epochs=1, batch_size=4,
                               segment_seconds=1.0, embedding_dim=8, accelerator="cpu")  # fmt: skip
    detector.fit(X)
    network = detector.network_["embedder"]
    assert not any("lora_" in name for name, _ in network.named_parameters())  # merged
    tuned = network.encoder.state_dict()
    before = load_encoder("ast", path).state_dict()
    attention = [k for k in before if k.endswith(("q_proj.weight", "query.weight"))]
    assert attention and all(not torch.equal(tuned[k], before[k]) for k in attention)
    mlp = [k for k in before if "fc1" in k or "intermediate" in k]
    assert mlp and all(torch.equal(tuned[k], before[k]) for k in mlp)
    scores = detector.anomaly_score(replace(X, clips=clips))
    assert scores.shape == (8,) and np.isfinite(scores).all()
