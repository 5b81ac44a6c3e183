"""Signal building blocks of the synthetic machines: seeds, shaped noise, phases, resonances, envelopes.

Nothing here knows a machine: :mod:`~asdkit.data.synthetic.machines` builds the sounds from these pieces.
The seeds are part of the generator's promise (same spec and seed, same bytes), so their keys never change.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
import scipy.fft as sfft
from scipy import signal

_DOMAINS = ("source", "target")
_SPLITS = ("train", "test")
_TWO_PI = 2.0 * math.pi


# --------------------------------------------------------------------------------------------------------
# Seeds


def _stable_int(text: str) -> int:
    """A hash of a name that, unlike ``hash()``, is the same in every process."""
    return zlib.crc32(text.encode())


def clip_rng(
    seed: int, machine: str, section: int, domain: str, split: str, label: int, index: int
) -> np.random.Generator:
    """The generator of one clip, from its identity alone (independent of generation order)."""
    key = [seed, _stable_int(machine), section, _DOMAINS.index(domain), _SPLITS.index(split), label, index]
    return np.random.default_rng(np.random.SeedSequence(key))


def _fixed_rng(machine: str, section: int, salt: str) -> np.random.Generator:
    """Generator of a machine's fixed properties (sections, domain shifts): no seed, same machines always."""
    return np.random.default_rng([_stable_int(machine), section, _stable_int(salt)])


def _spread(section: int) -> float:
    """A value in [0, 1) per section, well spread for any number of sections (golden-ratio sequence)."""
    return (0.5 + 0.6180339887498949 * section) % 1.0


# --------------------------------------------------------------------------------------------------------
# Signal building blocks


def _noise(
    rng: np.random.Generator,
    n: int,
    sample_rate: int,
    gain: np.ndarray,
    lines: Sequence[tuple[float, float]] = (),
) -> np.ndarray:
    """Gaussian noise with amplitude spectrum ``gain`` (see :func:`_shape`), of about unit RMS.

    ``lines`` adds steady tones ``(frequency Hz, RMS relative to the noise)`` in the same inverse FFT, and
    the result is scaled by its expected rather than its measured RMS, which saves a pass over the samples.
    """
    spec = rng.standard_normal(2 * len(gain), dtype=np.float32).view(np.complex64)
    spec *= gain
    sigma = 2.0 / n * math.sqrt(float(np.dot(gain, gain)))
    for freq, rel in lines:
        k = round(freq * n / sample_rate)
        if 0 < k < len(gain) - 1:
            spec[k] += rel * sigma * n / math.sqrt(2.0) * np.exp(1j * rng.uniform(0.0, _TWO_PI))
    return sfft.irfft(spec, n).astype(np.float64) / sigma


class _Ctx:
    """One clip being rendered: its generator, length and sample rate, and the tools that draw from them."""

    def __init__(self, rng: np.random.Generator, duration: float, sample_rate: int) -> None:
        self.rng = rng
        self.sr = sample_rate
        self.n = max(16, round(duration * sample_rate))
        self.nyquist = sample_rate / 2.0
        self._t: np.ndarray | None = None

    def noise(
        self, gain: np.ndarray, lines: Sequence[tuple[float, float]] = (), tilt_jitter: float = 0.0
    ) -> np.ndarray:
        """Gaussian noise of this clip's length with amplitude spectrum ``gain``; see :func:`_noise`."""
        if tilt_jitter:
            gain = gain * np.exp(self.rng.normal(0.0, tilt_jitter) * _log_f(self.n, self.sr)).astype(
                np.float32
            )
        return _noise(self.rng, self.n, self.sr, gain, lines)

    def shape(self, *parts: tuple[object, ...]) -> np.ndarray:
        """The cached amplitude spectrum of ``parts`` on this clip's frequency grid."""
        return _shape(self.n, self.sr, parts)

    @property
    def t(self) -> np.ndarray:
        """Sample times (s); built on demand, most renderers never need them."""
        if self._t is None:
            self._t = np.arange(self.n) / self.sr
        return self._t

    def slow(self, rate_hz: float) -> np.ndarray:
        """A smooth random process, unit standard deviation, changing about ``rate_hz`` times a second."""
        n_ctrl = max(4, math.ceil(self.n / self.sr * rate_hz) + 3)
        ctrl = self.rng.standard_normal(n_ctrl)
        ctrl = np.convolve(ctrl, [0.25, 0.5, 0.25], mode="same") / math.sqrt(0.375)
        step = 16  # interpolate at 1/16 of the sample rate: a 1-ms staircase is far below a mel frame
        x = np.linspace(0.0, n_ctrl - 3, -(-self.n // step))
        return np.repeat(np.interp(x, np.arange(n_ctrl), ctrl), step)[: self.n]

    def phase(self, freq: np.ndarray | float) -> np.ndarray:
        """Running phase (radians) of an instantaneous frequency, from a random start."""
        f = np.broadcast_to(np.asarray(freq, dtype=np.float64), (self.n,))
        return np.cumsum(f) * (_TWO_PI / self.sr) + self.rng.uniform(0.0, _TWO_PI)

    def resonate(self, excitation: np.ndarray, modes: Sequence[tuple[float, float, float]]) -> np.ndarray:
        """Excitation through damped resonant modes ``(frequency Hz, decay s, gain)``: impacts that ring."""
        out = np.zeros(self.n)
        for freq, decay, gain in modes:
            if freq >= 0.95 * self.nyquist:
                continue
            r = math.exp(-1.0 / (decay * self.sr))
            w = _TWO_PI * freq / self.sr
            out += gain * signal.lfilter([math.sin(w)], [1.0, -2.0 * r * math.cos(w), r * r], excitation)
        return out

    def impulses(self, times: np.ndarray, amps: np.ndarray | float) -> np.ndarray:
        """A sparse train of unit impulses at ``times`` (s) scaled by ``amps``."""
        out = np.zeros(self.n)
        idx = np.round(np.asarray(times) * self.sr).astype(np.int64)
        amps = np.broadcast_to(np.asarray(amps, dtype=np.float64), idx.shape)
        keep = (idx >= 0) & (idx < self.n)
        np.add.at(out, idx[keep], amps[keep])
        return out


def _unit(x: np.ndarray) -> np.ndarray:
    rms = math.sqrt(float(np.mean(np.square(x))))
    return x / rms if rms > 0 else x


def _rms(x: np.ndarray) -> float:
    return math.sqrt(float(np.mean(np.square(x))))


def _db(x: float) -> float:
    return 10.0 ** (x / 20.0)


def _tilt_db(f: np.ndarray, alpha: float, floor_hz: float = 30.0) -> np.ndarray:
    """Power falling as f**-alpha (alpha 1: pink, 2: brown), flat below ``floor_hz``."""
    return -10.0 * alpha * np.log10(np.maximum(f, floor_hz) / 1000.0)


def _bump_db(f: np.ndarray, centre: float, width_oct: float, gain_db: float) -> np.ndarray:
    """A resonance or band of gain_db at ``centre``, Gaussian on a log-frequency axis."""
    return gain_db * np.exp(-0.5 * (np.log2(np.maximum(f, 1.0) / centre) / width_oct) ** 2)


def _band_db(f: np.ndarray, lo: float, hi: float, skirt_db_per_oct: float = 24.0) -> np.ndarray:
    """A pass band ``lo``-``hi`` with sloping skirts (band-limited friction or hiss)."""
    f = np.maximum(f, 1.0)
    below = np.minimum(0.0, np.log2(f / lo)) * skirt_db_per_oct
    above = np.minimum(0.0, np.log2(hi / f)) * skirt_db_per_oct
    return below + above


def _mic_db(f: np.ndarray, nyquist: float) -> np.ndarray:
    """Microphone and anti-alias roll-off at the top and a gentle high-pass at the bottom."""
    top = -12.0 * np.clip((f - 0.6 * nyquist) / (0.4 * nyquist), 0.0, 1.0) ** 2
    bottom = -12.0 * np.clip(np.log2(25.0 / np.maximum(f, 1.0)), 0.0, 4.0)
    return top + bottom


@lru_cache(maxsize=8)
def _log_f(n: int, sample_rate: int) -> np.ndarray:
    """ln(f / 1 kHz) per rfft bin (clamped at 30 Hz), for cheap random spectral tilts."""
    f = np.fft.rfftfreq(n, 1.0 / sample_rate)
    return np.log(np.maximum(f, 30.0) / 1000.0).astype(np.float32)


def _shape_uncached(n: int, sample_rate: int, parts: tuple[tuple[object, ...], ...]) -> np.ndarray:
    """Amplitude spectrum (float32 per rfft bin, mean power 1) from parts such as ``("tilt", alpha)``,
    ``("bump", centre, width_oct, gain_db)``, ``("band", lo, hi, skirt)`` and ``("mic",)``."""
    f = np.fft.rfftfreq(n, 1.0 / sample_rate)
    db = np.zeros_like(f)
    builders: dict[str, Callable[..., np.ndarray]] = {
        "tilt": lambda *a: _tilt_db(f, *a),
        "bump": lambda *a: _bump_db(f, *a),
        "band": lambda *a: _band_db(f, *a),
        "mic": lambda: _mic_db(f, sample_rate / 2.0),
    }
    for kind, *args in parts:
        db += builders[str(kind)](*args)
    gain = 10.0 ** (db / 20.0)
    gain[0] = 0.0
    gain /= math.sqrt(float(np.mean(gain**2)))
    out = gain.astype(np.float32)
    out.setflags(write=False)  # shared through the cache
    return out


_shape = lru_cache(maxsize=128)(_shape_uncached)


def _unit_phasor(phase: np.ndarray) -> np.ndarray:
    """exp(i * phase) in single precision, the phase wrapped first so that float32 keeps its accuracy."""
    p = (phase - _TWO_PI * np.floor(phase * (1.0 / _TWO_PI))).astype(np.float32)
    z = np.empty(len(p), dtype=np.complex64)
    np.cos(p, out=z.real)
    np.sin(p, out=z.imag)
    return z


def _harmonic_sum(z: np.ndarray, coeffs: Sequence[complex | np.ndarray]) -> np.ndarray:
    """``Re(sum_k coeffs[k-1] * z**k)`` by Horner's rule: one multiply per harmonic instead of a sine each.

    Coefficients may be arrays (slowly varying amplitudes); zeros cost the same as any other harmonic.
    """
    acc = np.zeros(len(z), dtype=np.complex64)
    for c in reversed(coeffs):
        acc += c  # type: ignore[arg-type]
        acc *= z
    return acc.real.astype(np.float64)


def _coeffs(amps: np.ndarray, rng: np.random.Generator) -> list[complex]:
    """Complex harmonic amplitudes with random phases: each clip starts its rotation somewhere else."""
    phases = rng.uniform(0.0, _TWO_PI, len(amps))
    return [complex(a * np.cos(p), a * np.sin(p)) for a, p in zip(amps, phases, strict=True)]


def _envelope(ctx: _Ctx, spans: Sequence[tuple[float, float]], ramp: float) -> np.ndarray:
    """A gate that is 1 inside each ``(start, end)`` span (s), with raised-cosine ramps of ``ramp`` s."""
    env = np.zeros(ctx.n)
    sr = ctx.sr
    for start, end in spans:
        i0, i1 = max(0, int((start - ramp) * sr)), min(ctx.n, int((end + ramp) * sr) + 1)
        if i1 <= i0:
            continue
        tt = ctx.t[i0:i1]
        up = np.clip((tt - (start - ramp)) / (2 * ramp), 0.0, 1.0)
        down = np.clip(((end + ramp) - tt) / (2 * ramp), 0.0, 1.0)
        g = np.minimum(up, down)
        env[i0:i1] = np.maximum(env[i0:i1], 0.5 - 0.5 * np.cos(math.pi * g))
    return env


def _ring(sample_rate: int, modes: Sequence[tuple[float, float, float]]) -> np.ndarray:
    """The impulse response of damped modes ``(frequency, decay s, gain)``, five decay times long."""
    length = int(5 * max(d for _, d, _ in modes) * sample_rate)
    t = np.arange(length) / sample_rate
    out = np.zeros(length)
    for freq, decay, gain in modes:
        if freq < 0.45 * sample_rate:
            out += gain * np.exp(-t / decay) * np.sin(_TWO_PI * freq * t)
    return out


def _add_at(target: np.ndarray, piece: np.ndarray, start: int) -> None:
    """``target[start:start + len(piece)] += piece``, clipped to the target's bounds."""
    a, b = max(0, start), min(len(target), start + len(piece))
    if b > a:
        target[a:b] += piece[a - start : b - start]


def _to_pcm16(x: np.ndarray) -> np.ndarray:
    """Round to 16-bit steps; values are kept far from full scale, the clip only guards against bugs."""
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)
