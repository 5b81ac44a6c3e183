"""A clip-level power spectrum: the second input of two-branch (spectrum + log-mel) embedding networks.

A log-mel spectrogram keeps time but blurs frequency (128 bands over 8 kHz); many machine faults show as
a tone that moves by a few hertz or a new narrow harmonic, which only a fine frequency grid resolves. The
spectrum here is Welch's estimate: the mean power spectrum of Hann-windowed segments of ``n_fft`` samples
(half-overlapping by default), in dB. Segments make its length independent of the clip's length (DCASE
clips run 6 to 18 s), and averaging makes it far less noisy than one FFT of the whole clip.

Equal to ``10 * log10(max(scipy.signal.welch(x, fs, window="hann", nperseg=n_fft, noverlap=n_fft - hop,
detrend=False, scaling="spectrum")[1], amin))`` up to ``fmax``; a clip shorter than one segment is
zero-padded to one.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np
import torch

from asdkit.features.frontends import FrontEnd, register_front_end


@dataclass(frozen=True)
class SpectrumConfig:
    """Welch power spectrum settings; saved with a model through its parameters."""

    sample_rate: int = 16000
    #: segment length: 16384 samples is 1.02 s at 16 kHz, bins 0.98 Hz apart
    n_fft: int = 16384
    #: samples between segment starts; None is n_fft // 2
    hop_length: int | None = None
    fmax: float | None = None
    amin: float = 1e-10
    channel: int | Literal["mix"] = 0

    def __post_init__(self) -> None:
        if self.n_fft < 16 or self.sample_rate <= 0:
            raise ValueError(f"spectrum: n_fft must be >= 16 and sample_rate positive, got {self}")
        if self.hop_length is not None and not 0 < self.hop_length <= self.n_fft:
            raise ValueError(f"spectrum: hop_length must be in 1..n_fft={self.n_fft}, got {self.hop_length}")
        if self.fmax is not None and not 0 < self.fmax <= self.sample_rate / 2:
            raise ValueError(f"spectrum: fmax must be in (0, {self.sample_rate / 2}], got {self.fmax}")
        if self.amin <= 0:
            raise ValueError(f"spectrum: amin must be positive, got {self.amin}")

    @property
    def hop(self) -> int:
        return self.n_fft // 2 if self.hop_length is None else self.hop_length

    @property
    def n_bins(self) -> int:
        """Bins kept: 0 Hz up to and including ``fmax`` (the Nyquist frequency by default)."""
        full = self.n_fft // 2 + 1
        if self.fmax is None:
            return full
        return min(full, int(np.floor(self.fmax * self.n_fft / self.sample_rate)) + 1)

    def valid_shape(self, shape: tuple[int, ...]) -> bool:
        """Whether a stored array has the shape this configuration computes, ``[1, n_bins]``."""
        return shape == (1, self.n_bins)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpectrumConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown spectrum settings: {', '.join(sorted(unknown))}")
        return cls(**data)


class Spectrum(torch.nn.Module):
    """Waveforms ``[B, T]`` (or ``[T]``) to Welch power spectra in dB, ``[B, 1, n_bins]`` (or unbatched).

    The single row makes a spectrum store and batch like a one-band spectrogram. Windowing and FFT run in
    float64 (the quiet high bins of a float32 FFT drift by whole dB); the output is float32.
    """

    window: torch.Tensor

    def __init__(self, config: SpectrumConfig = SpectrumConfig()) -> None:
        super().__init__()
        self.config = config
        self.register_buffer(
            "window", torch.hann_window(config.n_fft, periodic=True, dtype=torch.float64), persistent=False
        )

    def _apply(self, fn: Any, recurse: bool = True) -> Spectrum:
        # A parent's .float() must not lower the analysis precision: keep the window in float64.
        super()._apply(fn, recurse)
        self.window = self.window.to(torch.float64)
        return self

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.ndim not in (1, 2):
            raise ValueError(f"expected a waveform [T] or a batch [B, T], got shape {tuple(wave.shape)}")
        unbatched = wave.ndim == 1
        if unbatched:
            wave = wave.unsqueeze(0)
        c = self.config
        wave = wave.to(torch.float64)
        if wave.shape[1] < c.n_fft:
            wave = torch.nn.functional.pad(wave, (0, c.n_fft - wave.shape[1]))
        with torch.no_grad():
            segments = wave.unfold(-1, c.n_fft, c.hop) * self.window  # [B, segments, n_fft]
            power = torch.fft.rfft(segments)[..., : c.n_bins].abs().square().mean(dim=1)
            # scipy's "spectrum" scaling: |X|^2 / sum(w)^2, doubled off DC and Nyquist (one-sided).
            power /= self.window.sum().square()
            last = c.n_bins if c.n_fft % 2 else min(c.n_bins, c.n_fft // 2)
            power[:, 1:last] *= 2.0
            db = 10.0 * torch.log10(power.clamp(min=c.amin))
        out = db.to(torch.float32)[:, None, :]
        return out[0] if unbatched else out


@functools.lru_cache(maxsize=8)
def shared_spectrum(config: SpectrumConfig, device: str = "cpu") -> Spectrum:
    """One Spectrum per (config, device), reused: it holds no state that calls change."""
    return Spectrum(config).to(device)


def compute_spectrum(waves: list[np.ndarray], config: SpectrumConfig = SpectrumConfig()) -> list[np.ndarray]:
    """Spectra ``[1, n_bins]`` (float32) of in-memory waveforms, in input order (one clip at a time: a
    clip's result never depends on its neighbours)."""
    return SpectrumFrontEnd(config).compute(waves)


@register_front_end
class SpectrumFrontEnd(FrontEnd):
    """The clip's Welch spectrum ``[1, n_bins]`` of :class:`SpectrumConfig` (cache folder ``spectrum-*``)."""

    name = "spectrum"
    config_type = SpectrumConfig

    def module(self, device: str = "cpu") -> torch.nn.Module:
        return shared_spectrum(self.config, device)
