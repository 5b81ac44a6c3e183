"""The official BEATs code as a parity reference (tests and ``benchmarks/bench_encoders.py`` only).

The official implementation (microsoft/unilm ``beats/``; a copy for checks lives in ``../shared/reference/
beats``) imports ``torchaudio.compliance.kaldi`` for its filterbank and its siblings as top-level modules.
torchaudio does not load beside asdkit's torch, so :func:`official_beats_module` imports the reference with
a stand-in ``torchaudio.compliance.kaldi`` whose ``fbank`` is the independent ``kaldi-native-fbank`` package
(the ``dev`` extra): the reference's numbers then come from code that shares nothing with asdkit's.
Nothing here is used to compute features.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch


def knf_fbank(
    waveform: torch.Tensor,
    num_mel_bins: int = 23,
    sample_frequency: float = 16000.0,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
    **_: Any,
) -> torch.Tensor:
    """torchaudio's ``compliance.kaldi.fbank`` (its defaults, no dither) on kaldi-native-fbank.

    kaldi-native-fbank refuses BEATs' 128 bands at 16 kHz (band 3 holds no FFT bin; torchaudio keeps it
    empty, so it is log(eps)), so its full ``OnlineFbank`` computes the filterbank when it can, and else its
    framing (DC offset, pre-emphasis, Povey window) feeds a float64 numpy FFT and Kaldi's triangular mel
    weights computed here in float64 (an empty band floored at eps as torchaudio does).
    """
    import kaldi_native_fbank as knf

    samples = waveform.detach().reshape(-1).cpu().to(torch.float32).numpy().tolist()
    rate = float(sample_frequency)
    try:
        opts = knf.FbankOptions()
        opts.mel_opts.num_bins = int(num_mel_bins)
        _frame_options(opts.frame_opts, rate, frame_length, frame_shift)
        computer = knf.OnlineFbank(opts)
    except ValueError:  # empty bands
        fbank = _knf_frames_fbank(samples, int(num_mel_bins), rate, frame_length, frame_shift)
        return fbank.to(waveform.device)
    computer.accept_waveform(rate, samples)
    computer.input_finished()
    frames = [computer.get_frame(i) for i in range(computer.num_frames_ready)]
    return torch.from_numpy(np.stack(frames).astype(np.float32)).to(waveform.device)


def _frame_options(frame_opts: Any, rate: float, length_ms: float, shift_ms: float) -> None:
    frame_opts.dither = 0.0
    frame_opts.samp_freq = rate
    frame_opts.frame_length_ms = float(length_ms)
    frame_opts.frame_shift_ms = float(shift_ms)


def _knf_frames_fbank(
    samples: list[float], n_mels: int, rate: float, length_ms: float, shift_ms: float
) -> torch.Tensor:
    import kaldi_native_fbank as knf

    opts = knf.RawAudioSamplesOptions()
    _frame_options(opts.frame_opts, rate, length_ms, shift_ms)
    opts.frame_opts.preemph_coeff, opts.frame_opts.remove_dc_offset = 0.97, True
    opts.frame_opts.window_type, opts.frame_opts.round_to_power_of_two = "povey", False
    computer = knf.OnlineRawAudioSamples(opts)
    computer.accept_waveform(rate, samples)
    computer.input_finished()
    frames = np.array([computer.get_frame(i) for i in range(computer.num_frames_ready)], dtype=np.float64)
    n_fft = 1 << int(np.ceil(np.log2(frames.shape[1])))
    power = np.abs(np.fft.rfft(frames, n=n_fft)) ** 2

    def mel(f: np.ndarray) -> np.ndarray:
        return 1127.0 * np.log(1.0 + f / 700.0)

    edges = np.linspace(mel(np.array(20.0)), mel(np.array(rate / 2)), n_mels + 2)
    centres = mel(np.arange(n_fft // 2 + 1) * rate / n_fft)
    weights = np.zeros((n_mels, n_fft // 2 + 1))
    for b in range(n_mels):
        left, centre, right = edges[b : b + 3]
        inside = (centres > left) & (centres < right) & (np.arange(n_fft // 2 + 1) < n_fft // 2)
        up = (centres - left) / (centre - left)
        down = (right - centres) / (right - centre)
        weights[b] = np.where(inside, np.where(centres <= centre, up, down), 0.0)
    energies = power @ weights.T
    return torch.from_numpy(np.log(np.maximum(energies, np.finfo(np.float32).eps)).astype(np.float32))


@contextlib.contextmanager
def _kaldi_stand_in() -> Iterator[None]:
    names = ("torchaudio", "torchaudio.compliance", "torchaudio.compliance.kaldi")
    saved = {n: sys.modules.get(n) for n in names}
    root, compliance, kaldi = (types.ModuleType(n) for n in names)
    kaldi.fbank = knf_fbank  # type: ignore[attr-defined]
    root.compliance, compliance.kaldi = compliance, kaldi  # type: ignore[attr-defined]
    sys.modules.update(zip(names, (root, compliance, kaldi), strict=True))
    try:
        yield
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def official_beats_module(reference: Path) -> types.ModuleType:
    """The official ``BEATs.py`` module of folder ``reference`` (its classes ``BEATs``, ``BEATsConfig``)."""
    siblings = ("BEATs", "backbone", "modules")
    saved = {n: sys.modules.pop(n) for n in siblings if n in sys.modules}
    sys.path.insert(0, str(reference))
    try:
        with _kaldi_stand_in():
            module = importlib.import_module("BEATs")
    finally:
        sys.path.remove(str(reference))
        for n in siblings:  # keep the generic names ("modules") free for everyone else
            sys.modules.pop(n, None)
        sys.modules.update(saved)
    return module


def load_official(reference: Path, checkpoint: Path) -> torch.nn.Module:
    """The official model with the weights of a published-format ``checkpoint``, in eval mode."""
    module = official_beats_module(reference)
    data = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = module.BEATs(module.BEATsConfig(data["cfg"]))
    model.load_state_dict(data["model"])
    return model.eval()


def official_layers(model: torch.nn.Module, waveform: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's output ``[B, frames, dim]`` of the official model (through its own ``tgt_layer`` hook:
    asking for the last layer returns all layer results)."""
    fbank = model.preprocess(waveform)
    x = model.patch_embedding(fbank.unsqueeze(1))
    x = model.layer_norm(x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2))
    if model.post_extract_proj is not None:
        x = model.post_extract_proj(x)
    _, results = model.encoder.extract_features(x, None, tgt_layer=len(model.encoder.layers) - 1)
    return [r[0].transpose(0, 1) for r in results[1:]]
