"""Reading clips: soundfile, a channel choice, resampling to the model's rate, checks that name the file."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import soundfile as sf

from asdkit.errors import AudioError

log = logging.getLogger(__name__)

Channel = int | Literal["mix"]


def load_audio(path: Path | str, sample_rate: int = 16000, channel: Channel = 0) -> np.ndarray:
    """Return a mono float32 waveform in [-1, 1] at ``sample_rate``.

    Multi-channel files give ``channel`` (default the first, as MIMII's single-mic DCASE clips) or their
    mean with ``channel="mix"``. Another sample rate is resampled (soxr, high quality) with a warning.
    Raises AudioError naming the file for anything that is not usable audio.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    wave, rate = decode_audio(str(path), path, sample_rate, channel)
    if rate != sample_rate:
        log.warning("%s: sample rate %d Hz, resampling to %d Hz", path, rate, sample_rate)
    return wave


def decode_audio(
    source: str | BinaryIO, name: Path | str, sample_rate: int = 16000, channel: Channel = 0
) -> tuple[np.ndarray, int]:
    """Decode a file name or an open binary stream (an upload); returns the waveform and its original rate.

    The checks and conversions of :func:`load_audio`, without its warning: a caller that resamples
    silently (the service) reports the original rate itself. ``name`` is what error messages call it.
    """
    try:
        with sf.SoundFile(source) as f:
            rate = f.samplerate
            if f.subtype == "PCM_16":
                # Integer read + one scale: the values of a float read (x / 32768), a third of the time.
                data = f.read(dtype="int16", always_2d=True).astype(np.float32) * np.float32(1 / 32768)
            else:
                data = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        raise AudioError(f"{name}: not readable as audio ({_short(exc, source)})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{name}: contains no samples")
    wave = _pick_channel(data, channel, name)
    if not np.all(np.isfinite(wave)):
        raise AudioError(f"{name}: contains NaN or infinite samples")
    if rate != sample_rate:
        wave = resample(wave, rate, sample_rate)
    if not np.any(wave):
        raise AudioError(f"{name}: silent (all samples are zero)")
    return np.ascontiguousarray(wave, dtype=np.float32), rate


def resample(wave: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    import soxr

    return soxr.resample(wave, rate, target_rate, quality="HQ").astype(np.float32)


def _pick_channel(data: np.ndarray, channel: Channel, path: Path | str) -> np.ndarray:
    n_channels = data.shape[1]
    if channel == "mix":
        return data.mean(axis=1)
    if not isinstance(channel, int) or not -n_channels <= channel < n_channels:
        raise AudioError(f"{path}: has {n_channels} channel(s), cannot pick channel {channel!r}")
    return data[:, channel]


def _short(exc: BaseException, source: object = None) -> str:
    """The last line of ``exc``, without soundfile's "Error opening <_io.BytesIO object at 0x...>: "."""
    text = str(exc).replace(f"Error opening {source!r}: ", "").strip().splitlines()
    return text[-1] if text else type(exc).__name__
