"""Two-microphone front ends (DCASE2026): the far microphone as a noise reference for the near one.

DCASE2026 records every clip with two microphones: channel 0 near the machine, channel 1 farther away,
where the environmental noise is stronger and the machine weaker. A time-frequency bin that is about as
loud at the far microphone as at the near one holds noise; one far louder at the near microphone holds
the machine. Two ways to give a detector that knowledge, both log-mel arrays ``[n_mels, frames]``, so
every detector reads them as it reads the plain log-mel:

- ``method="wiener"``: the near channel's power spectrogram times a Wiener-style gain per bin,
  ``max(1 - reference_gain * S_far / S_near, gain_floor)`` (``S``: power smoothed over ``smooth_frames``
  frames), i.e. power spectral subtraction of the far channel's share of noise; ``reference_gain`` is the
  fraction of the far microphone's noise power that reaches the near one. Then mel bands and dB as the
  log-mel front end.
- ``method="pair"``: near and far log-mel side by side, ``n_mels // 2`` bands each (near first), so a
  detector sees both and learns how they relate in normal clips.

Both read the file's first two channels (``channel="both"``); a one-channel file is an error naming it.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from asdkit.errors import AudioError
from asdkit.features.config import FeatureConfig
from asdkit.features.frontends import FrontEnd, register_front_end
from asdkit.features.logmel import mel_filterbank, periodic_hann

NOISE_AWARE = "noise_aware"
Method = Literal["wiener", "pair"]


@dataclass(frozen=True)
class NoiseAwareConfig(FeatureConfig):
    """The log-mel settings plus how the far channel is used; saved with a model as its features."""

    channel: Any = "both"
    method: Method = "wiener"
    #: fraction of the far microphone's noise power that reaches the near one (0.5: 3 dB less)
    reference_gain: float = 0.5
    #: the lowest power gain (0.1: at most 10 dB of suppression), so no bin falls to silence
    gain_floor: float = 0.1
    #: frames (odd) over which both power spectrograms are averaged before the gain (1: none)
    smooth_frames: int = 3

    def __post_init__(self) -> None:
        if self.channel != "both":
            raise ValueError(
                f"noise_aware: reads both channels (channel='both'), got channel={self.channel!r}"
            )
        if self.method not in ("wiener", "pair"):
            raise ValueError(f"noise_aware: method must be 'wiener' or 'pair', got {self.method!r}")
        if self.method == "pair" and self.n_mels % 2:
            raise ValueError(
                f"noise_aware: method 'pair' needs an even n_mels (half per channel), got {self.n_mels}"
            )
        if not self.reference_gain >= 0:
            raise ValueError(f"noise_aware: reference_gain must be >= 0, got {self.reference_gain}")
        if not 0 < self.gain_floor <= 1:
            raise ValueError(f"noise_aware: gain_floor must be in (0, 1], got {self.gain_floor}")
        if self.smooth_frames < 1 or self.smooth_frames % 2 == 0:
            raise ValueError(f"noise_aware: smooth_frames must be odd and >= 1, got {self.smooth_frames}")

    def to_dict(self) -> dict[str, Any]:
        return {"front_end": NOISE_AWARE, **asdict(self)}


class NoiseAwareLogMel(torch.nn.Module):
    """Two-channel waveforms ``[T, C]`` (or ``[B, T, C]``, C >= 2) to ``[n_mels, frames]`` (or batched).

    Framing, window and FFT in float64 and zero centre padding, as :class:`asdkit.features.LogMel`; the
    mel projection and dB in float32 (``pair``'s near half equals the log-mel of ``n_mels // 2`` bands
    of channel 0).
    """

    window: torch.Tensor
    filterbank: torch.Tensor

    def __init__(self, config: NoiseAwareConfig) -> None:
        super().__init__()
        self.config = config
        bands = config.n_mels // 2 if config.method == "pair" else config.n_mels
        plain = FeatureConfig(**{k: v for k, v in asdict(config).items() if k in _PLAIN}, n_mels=bands)
        self.register_buffer("window", periodic_hann(plain, torch.float64), persistent=False)
        self.register_buffer("filterbank", mel_filterbank(plain, torch.float32), persistent=False)

    def _apply(self, fn: Any, recurse: bool = True) -> NoiseAwareLogMel:
        # A parent's .float() must not lower the analysis precision: keep the window in float64.
        super()._apply(fn, recurse)
        self.window = self.window.to(torch.float64)
        return self

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.ndim not in (2, 3) or wave.shape[-1] < 2:
            raise ValueError(f"expected two channels [T, C] or [B, T, C], got shape {tuple(wave.shape)}")
        unbatched = wave.ndim == 2
        if unbatched:
            wave = wave.unsqueeze(0)
        c = self.config
        with torch.no_grad():
            near, far = self._power(wave[..., 0]), self._power(wave[..., 1])  # [B, frames, freq], |X|^2
            if c.method == "pair":
                out = torch.cat([self._db(self._mel(near)), self._db(self._mel(far))], dim=-1)
            else:
                gain = 1.0 - c.reference_gain * self._smooth(far) / self._smooth(near).clamp(min=1e-30)
                out = self._db(self._mel(gain.clamp(min=c.gain_floor, max=1.0) * near))
        out = out.transpose(-1, -2).contiguous()  # [B, n_mels, frames]
        return out[0] if unbatched else out

    def _power(self, wave: torch.Tensor) -> torch.Tensor:
        c = self.config
        wave = wave.to(torch.float64)
        if c.center:
            wave = torch.nn.functional.pad(wave, (c.n_fft // 2, c.n_fft // 2))  # zeros, as librosa >= 0.10
        if wave.shape[-1] < c.n_fft:
            raise ValueError(f"a clip of {wave.shape[-1]} samples is shorter than n_fft={c.n_fft}")
        frames = wave.unfold(-1, c.n_fft, c.hop_length) * self.window
        return torch.fft.rfft(frames).abs().square()

    def _mel(self, power: torch.Tensor) -> torch.Tensor:
        if self.config.power != 2.0:
            power = power.pow(self.config.power / 2.0)
        return power.to(torch.float32) @ self.filterbank.T

    def _smooth(self, power: torch.Tensor) -> torch.Tensor:
        k = self.config.smooth_frames
        if k == 1:
            return power
        batch, n_frames, n_freq = power.shape
        flat = power.transpose(1, 2).reshape(batch * n_freq, 1, n_frames)
        smooth = torch.nn.functional.avg_pool1d(flat, k, stride=1, padding=k // 2, count_include_pad=False)
        return smooth.reshape(batch, n_freq, n_frames).transpose(1, 2)

    def _db(self, mel: torch.Tensor) -> torch.Tensor:
        c = self.config
        db = 10.0 * torch.log10(mel.clamp(min=c.amin))
        if c.top_db is not None:
            db = db.clamp(min=db.amax(dim=(1, 2), keepdim=True) - c.top_db)
        return db


_PLAIN = {f for f in FeatureConfig.__dataclass_fields__ if f not in ("channel", "n_mels")}


@functools.lru_cache(maxsize=8)
def shared_noise_aware(config: NoiseAwareConfig, device: str = "cpu") -> NoiseAwareLogMel:
    """One module per (config, device), reused: it holds no state that calls change."""
    return NoiseAwareLogMel(config).to(device)


@register_front_end
class NoiseAwareFrontEnd(FrontEnd):
    """Near and far channel to one log-mel array (:class:`NoiseAwareConfig`; cache ``noise_aware-*``)."""

    name = NOISE_AWARE
    config_type = NoiseAwareConfig

    def module(self, device: str = "cpu") -> torch.nn.Module:
        return shared_noise_aware(self.config, device)

    def check_wave(self, wave: np.ndarray, audio: Path) -> None:
        if wave.ndim != 2 or wave.shape[1] < 2:
            raise AudioError(f"{audio}: one channel; the noise_aware front end needs two (near, far)")
        if wave.shape[0] < (1 if self.config.center else self.config.n_fft):
            raise AudioError(f"{audio}: {wave.shape[0]} samples, shorter than one frame")


#: ``--channel`` values beside a channel index and ``mix``, and the method each stands for.
CHANNEL_METHODS: dict[str, Method] = {"pair": "pair", NOISE_AWARE: "wiener"}


def channel_features(choice: str, base: FeatureConfig | None = None) -> FeatureConfig:
    """The features of a ``--channel`` choice: an index or ``mix`` (the log-mel of that channel or of
    their mean), ``pair`` or ``noise_aware`` (both channels); the other settings come from ``base``.

    A ``base`` that already is the chosen two-channel front end keeps its own settings (a recipe's).
    """
    base = base if base is not None else FeatureConfig()
    plain = {k: v for k, v in asdict(base).items() if k in FeatureConfig.__dataclass_fields__}
    if choice in CHANNEL_METHODS:
        method = CHANNEL_METHODS[choice]
        if isinstance(base, NoiseAwareConfig) and base.method == method:
            return base
        return NoiseAwareConfig(**{**plain, "channel": "both"}, method=method)
    if choice == "mix":
        return FeatureConfig(**{**plain, "channel": "mix"})
    try:
        return FeatureConfig(**{**plain, "channel": int(choice)})
    except ValueError:
        raise ValueError(
            f"--channel {choice!r}: expected a channel index such as 0, 'mix', 'pair' or 'noise_aware'"
        ) from None


def channel_choice(features: FeatureConfig) -> str:
    """The ``--channel`` value that gives ``features``' channel use (the inverse of channel_features)."""
    if isinstance(features, NoiseAwareConfig):
        return next(k for k, m in CHANNEL_METHODS.items() if m == features.method)
    return str(features.channel)
