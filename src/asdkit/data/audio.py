"""Reading clips: soundfile, a channel choice, resampling to the model's rate, checks that name the file."""

from __future__ import annotations

import logging
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import soundfile as sf

from asdkit.errors import AsdkitError, AudioError, AudioTooLongError

log = logging.getLogger(__name__)

Channel = int | Literal["mix", "both"]

#: Default limits on one clip's decoded audio, sized for machine recordings (DCASE clips are 6-18 s). Set
#: ``ASDKIT_MAX_AUDIO_SECONDS`` / ``ASDKIT_MAX_AUDIO_SAMPLES`` to change them.
MAX_AUDIO_SECONDS = 300.0
#: Frames times channels: 300 s of 96 kHz mono, or 50 s of 8-channel 48 kHz (120 MB as float32).
MAX_AUDIO_SAMPLES = 28_800_000


@dataclass(frozen=True)
class AudioLimits:
    """The most audio one clip may declare: its duration and its decoded samples (frames x channels).

    Checked from the file's header before anything is decoded: a 5 MB 8-bit wav at 1 kHz declares
    5,000 s, which decoding and resampling to 16 kHz would turn into gigabytes.
    """

    max_seconds: float = MAX_AUDIO_SECONDS
    max_samples: int = MAX_AUDIO_SAMPLES

    @classmethod
    def from_env(cls) -> AudioLimits:
        return cls(
            _env_number("ASDKIT_MAX_AUDIO_SECONDS", MAX_AUDIO_SECONDS, float),
            int(_env_number("ASDKIT_MAX_AUDIO_SAMPLES", MAX_AUDIO_SAMPLES, int)),
        )

    def check(self, name: Path | str, frames: int, channels: int, rate: int) -> None:
        """An AudioTooLongError naming the clip when its header declares more than the limits allow."""
        seconds = frames / rate if rate > 0 else float("inf")
        if seconds > self.max_seconds:
            raise AudioTooLongError(
                f"{name}: {seconds:.1f} s of audio ({frames} frames at {rate} Hz) is over the limit of "
                f"{self.max_seconds:g} s (ASDKIT_MAX_AUDIO_SECONDS)"
            )
        if frames * channels > self.max_samples:
            raise AudioTooLongError(
                f"{name}: {frames * channels} samples ({frames} frames x {channels} channels) is over the "
                f"limit of {self.max_samples} (ASDKIT_MAX_AUDIO_SAMPLES)"
            )


def _env_number(name: str, default: float, kind: type[float] | type[int]) -> float:
    """A setting from the environment; a bad one is an AsdkitError (a set-up error, not a clip to skip)."""
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = kind(text)
    except ValueError:
        raise AsdkitError(f"{name}={text!r}: expected a positive number") from None
    if not (value > 0 and math.isfinite(value)):
        raise AsdkitError(f"{name}={text!r}: expected a positive number")
    return value


def load_audio(
    path: Path | str, sample_rate: int = 16000, channel: Channel = 0, limits: AudioLimits | None = None
) -> np.ndarray:
    """Return a mono float32 waveform in [-1, 1] at ``sample_rate``.

    Multi-channel files give ``channel`` (default the first, as MIMII's single-mic DCASE clips) or their
    mean with ``channel="mix"``; ``channel="both"`` gives the first two as ``[T, 2]`` (near, far). Another
    sample rate is resampled (:func:`resample`) with a warning, once per rate in a process.
    Raises AudioError naming the file for anything that is not usable audio.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    wave, rate = decode_audio(str(path), path, sample_rate, channel, limits)
    if rate != sample_rate:
        note_resampling(path, rate, sample_rate)
    return wave


_reported_rates: set[tuple[int, int]] = set()
_reported_lock = threading.Lock()


def note_resampling(path: Path | str, rate: int, sample_rate: int) -> None:
    """Warn that clips at ``rate`` are resampled, on the first such clip only: a folder of 44.1 kHz
    recordings is one fact, not one warning per clip."""
    with _reported_lock:
        if (rate, sample_rate) in _reported_rates:
            return
        _reported_rates.add((rate, sample_rate))
    log.warning(
        "%s: sample rate %d Hz, resampling to %d Hz (the model's rate); further clips at %d Hz are "
        "resampled without a message",
        path,
        rate,
        sample_rate,
        rate,
    )


def forget_reported_rates() -> None:
    """Report each sample rate again (a new command in the same process, or a test)."""
    with _reported_lock:
        _reported_rates.clear()


def decode_audio(
    source: str | BinaryIO,
    name: Path | str,
    sample_rate: int = 16000,
    channel: Channel = 0,
    limits: AudioLimits | None = None,
) -> tuple[np.ndarray, int]:
    """Decode a file name or an open binary stream (an upload); returns the waveform and its original rate.

    The checks and conversions of :func:`load_audio`, without its warning: a caller that resamples
    silently (the service) reports the original rate itself. ``name`` is what error messages call it.
    ``limits`` (default :meth:`AudioLimits.from_env`) are checked from the header before decoding.
    """
    limits = AudioLimits.from_env() if limits is None else limits
    try:
        with sf.SoundFile(source) as f:
            rate = f.samplerate
            limits.check(name, f.frames, f.channels, rate)
            data = _read_frames(f, _frame_cap(limits, f.channels, rate))
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        raise AudioError(f"{name}: not readable as audio ({_short(exc, source)})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{name}: contains no samples")
    limits.check(name, data.shape[0], data.shape[1], rate)  # a header that understated its length
    wave = _pick_channel(data, channel, name)
    if not np.all(np.isfinite(wave)):
        raise AudioError(f"{name}: contains NaN or infinite samples")
    if rate != sample_rate:
        wave = resample(wave, rate, sample_rate)
    if not np.any(wave):
        raise AudioError(f"{name}: silent (all samples are zero)")
    return np.ascontiguousarray(wave, dtype=np.float32), rate


def _frame_cap(limits: AudioLimits, channels: int, rate: int) -> int:
    """The most frames the limits allow, plus one: reading that many shows a header that lied."""
    return min(int(limits.max_seconds * rate), limits.max_samples // max(channels, 1)) + 1


def _read_frames(f: sf.SoundFile, cap: int) -> np.ndarray:
    frames = cap if f.frames <= 0 else min(f.frames, cap)
    if f.subtype == "PCM_16":
        # Integer read + one scale: the values of a float read (x / 32768), a third of the time.
        return f.read(frames, dtype="int16", always_2d=True).astype(np.float32) * np.float32(1 / 32768)
    return f.read(frames, dtype="float32", always_2d=True)


def resample(wave: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """``wave`` at ``target_rate``, keeping every frequency up to the lower rate's Nyquist frequency.

    Band-limited (Fourier) resampling of the clip mirrored onto itself, so that the periodic extension the
    FFT assumes has no jump at the ends. A filter resampler (soxr HQ, VHQ) rolls off from about 91% of the
    Nyquist frequency: 16 kHz -> 44.1 kHz -> 16 kHz then cuts the top two of 128 mel bands (to 8 kHz) by
    about 6 and 24 dB, enough to flag a normal clip; this keeps every mel band within 0.01 dB.
    """
    from scipy.signal import resample as fourier_resample

    n = wave.shape[0]
    m = max(1, round(n * target_rate / rate))
    mirrored = np.concatenate([wave, wave[::-1]]).astype(np.float32, copy=False)
    return np.asarray(fourier_resample(mirrored, 2 * m)[:m], dtype=np.float32)


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
