"""Kaldi's log mel filterbank (``compute-fbank-feats`` defaults, no dither), batched on torch.

The BEATs family was pre-trained on Kaldi-style filterbanks, so an encoder must see exactly those:
25-ms frames every 10 ms that end inside the clip (``snip_edges``), DC offset removed per frame,
pre-emphasis 0.97, the Povey window, a zero-padded FFT of the next power of two, power spectrum, triangular
filters on Kaldi's mel scale (1127 ln(1 + f/700)) from 20 Hz to Nyquist, natural log floored at float32's
machine epsilon. Checked against the independent ``kaldi-native-fbank`` package in the tests.
"""

from __future__ import annotations

import math

import torch
from torch import nn

FLOAT32_EPS = torch.finfo(torch.float32).eps


def kaldi_mel(freq: torch.Tensor) -> torch.Tensor:
    return 1127.0 * torch.log1p(freq / 700.0)


def kaldi_mel_banks(n_mels: int, n_fft: int, sample_rate: float, low: float, high: float) -> torch.Tensor:
    """[n_mels, n_fft // 2 + 1] triangular weights; the Nyquist bin gets none (as in Kaldi)."""
    high = high if high > 0 else sample_rate / 2 + high
    low_mel, high_mel = (
        kaldi_mel(torch.tensor(low, dtype=torch.float64)),
        kaldi_mel(torch.tensor(high, dtype=torch.float64)),
    )
    step = (high_mel - low_mel) / (n_mels + 1)
    edges = low_mel + step * torch.arange(n_mels + 2, dtype=torch.float64)
    left, center, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    bin_mel = kaldi_mel(torch.arange(n_fft // 2, dtype=torch.float64) * (sample_rate / n_fft))[None, :]
    rising = (bin_mel - left) / (center - left)
    falling = (right - bin_mel) / (right - center)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    return torch.nn.functional.pad(weights, (0, 1)).to(torch.float32)


class KaldiFbank(nn.Module):
    """Waveforms ``[B, T]`` -> log mel filterbanks ``[B, frames, n_mels]``, frames = 1 + (T - win) // hop.

    Runs in float32 whatever the autocast state (the log of small energies needs it).
    """

    window: torch.Tensor
    banks: torch.Tensor

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 128,
        frame_length_ms: float = 25.0,
        frame_shift_ms: float = 10.0,
        preemphasis: float = 0.97,
        low_freq: float = 20.0,
        high_freq: float = 0.0,
    ) -> None:
        super().__init__()
        self.win = int(sample_rate * frame_length_ms / 1000)
        self.hop = int(sample_rate * frame_shift_ms / 1000)
        self.n_fft = 1 << math.ceil(math.log2(self.win))
        self.preemphasis = preemphasis
        n = torch.arange(self.win, dtype=torch.float64)
        povey = (0.5 - 0.5 * torch.cos(2 * math.pi * n / (self.win - 1))) ** 0.85
        self.register_buffer("window", povey.to(torch.float32), persistent=False)
        banks = kaldi_mel_banks(n_mels, self.n_fft, sample_rate, low_freq, high_freq)
        self.register_buffer("banks", banks.T.contiguous(), persistent=False)

    def num_frames(self, n_samples: int) -> int:
        return 0 if n_samples < self.win else 1 + (n_samples - self.win) // self.hop

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.ndim != 2 or waveform.shape[1] < self.win:
            raise ValueError(f"expected waveforms [B, T] with T >= {self.win}, got {tuple(waveform.shape)}")
        with torch.autocast(waveform.device.type, enabled=False):
            frames = waveform.float().unfold(1, self.win, self.hop)  # [B, F, win]
            frames = frames - frames.mean(dim=-1, keepdim=True)
            previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
            frames = (frames - self.preemphasis * previous) * self.window
            spectrum = torch.fft.rfft(frames, n=self.n_fft)
            power = spectrum.real.square() + spectrum.imag.square()
            return torch.clamp(power @ self.banks, min=FLOAT32_EPS).log()
