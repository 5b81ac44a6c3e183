"""Reading clips: soundfile, a channel choice, resampling to the model's rate, checks that name the file."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import soundfile as sf

from asdkit.errors import AudioError

log = logging.getLogger(__name__)

Channel = int | Literal["mix", "both"]


def load_audio(path: Path | str, sample_rate: int = 16000, channel: Channel = 0) -> np.ndarray:
    """Return a mono float32 waveform in [-1, 1] at ``sample_rate``.

    Multi-channel files give ``channel`` (default the first, as MIMII's single-mic DCASE clips) or their
    mean with ``channel="mix"``; ``channel="both"`` gives the first two as ``[T, 2]`` (near, far). Another
    sample rate is resampled (soxr, high quality) with a warning.
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
    if channel == "both":
        return _near_far(data, path)
    if not isinstance(channel, int) or not -n_channels <= channel < n_channels:
        raise AudioError(f"{path}: has {n_channels} channel(s), cannot pick channel {channel!r}")
    return data[:, channel]


def _near_far(data: np.ndarray, path: Path | str) -> np.ndarray:
    """``[T, 2]``: the first two channels (DCASE2026: near and far microphone), for two-channel front ends."""
    if data.shape[1] < 2:
        raise AudioError(f"{path}: has 1 channel; two (near and far microphone) are needed")
    return data[:, :2]


def _short(exc: BaseException, source: object = None) -> str:
    """The last line of ``exc``, without soundfile's "Error opening <_io.BytesIO object at 0x...>: "."""
    text = str(exc).replace(f"Error opening {source!r}: ", "").strip().splitlines()
    return text[-1] if text else type(exc).__name__


def wav_truncation(path: Path | str) -> str | None:
    """Why a WAV file is truncated (its header declares more frames than the file holds), else None.

    Reads only the chunk headers. soundfile reads a truncated file as a shorter clip without a word, so a
    half-copied or still-being-written file would pass for a complete one. Other formats give None.
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            pos, block_align = 12, 0
            while pos + 8 <= size:
                f.seek(pos)
                chunk = f.read(16)
                kind, length = chunk[:4], int.from_bytes(chunk[4:8], "little")
                if kind == b"fmt " and len(chunk) >= 16:
                    f.seek(pos + 8 + 12)
                    block_align = int.from_bytes(f.read(2), "little")
                if kind == b"data":
                    present = size - pos - 8
                    if length in (0, 0xFFFFFFFF) or length <= present:  # 0 / -1: a streamed header
                        return None
                    unit = max(block_align, 1)
                    return (
                        f"{path}: truncated: the header declares {length // unit} frames, "
                        f"{present // unit} are present"
                    )
                pos += 8 + length + (length & 1)
    except OSError:
        return None
    return None
