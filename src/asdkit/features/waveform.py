"""The clip's waveform itself, ``[1, samples]``: the input of detectors that fine-tune an audio encoder.

A frozen encoder's frames can be cached (:mod:`asdkit.features.encoder`); an encoder being fine-tuned
changes with every step, so it must read the audio. This front end hands the decoded, resampled waveform
through the same cache and bundle as every other input, so nothing downstream reads audio files itself.
Storage: 64 kB per second at 16 kHz (float32).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import torch

from asdkit.features.frontends import FrontEnd, register_front_end


@dataclass(frozen=True)
class WaveformConfig:
    """How the audio is read (the encoder's sample rate, the log-mel's channel)."""

    sample_rate: int = 16000
    channel: int | Literal["mix"] = 0

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"waveform: sample_rate must be positive, got {self.sample_rate}")

    def valid_shape(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == 2 and shape[0] == 1 and shape[1] > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WaveformConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown waveform settings: {', '.join(sorted(unknown))}")
        return cls(**data)


class _AsRow(torch.nn.Module):
    """``[T]`` -> ``[1, T]``, ``[B, T]`` -> ``[B, 1, T]`` (float32)."""

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return wave.float().unsqueeze(-2)


@register_front_end
class WaveformFrontEnd(FrontEnd):
    """The waveform ``[1, samples]`` at :class:`WaveformConfig`'s rate (cache folder ``waveform-*``)."""

    name = "waveform"
    config_type = WaveformConfig

    def module(self, device: str = "cpu") -> torch.nn.Module:
        return _AsRow().to(device)
