"""Seeded synthetic machine sounds in DCASE layouts: the toolkit's built-in data, so that every stage can be
trained, scored and tested without a download.

The sounds are built from the physics that real machine recordings show, not from toy sines: shaft
harmonics with speed jitter, vane-pass and gear-mesh tones with their side-bands, turbulent broadband noise
shaped by structural resonances, operating cycles with resonant impacts, and a coloured factory background
that is always present. Levels follow the DCASE development sets (RMS near -38 dBFS, low-frequency heavy
spectra, peaks far from clipping).

What is fixed and what is drawn:
- a machine's *sections* (operating conditions: speeds, blade or tooth counts, cycle periods, resonances)
  depend only on ``(machine, section)``, so the machines are the same whatever the seed;
- the *target domain* of a section is a per-section shift (another speed or velocity, another background
  noise level and colour), again fixed per section;
- every *clip* is drawn from its own generator seeded from
  ``(seed, machine, section, domain, split, label, index)``, so a clip does not depend on which others were
  generated or in which order.

Anomalies come in several kinds per machine (:data:`ANOMALY_KINDS`), each at two severities
(:data:`SEVERITY_LEVELS`); test anomalies cycle through kind x severity by index so both appear evenly.
:func:`generate` also writes ``synthetic_truth.csv`` at the root: one row per clip with its anomaly kind
and severity, the ground truth that file names do not carry.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import os
import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import scipy.fft as sfft
import soundfile as sf
from scipy import signal

from asdkit.utils.io import atomic_write_text

log = logging.getLogger(__name__)

__all__ = [
    "ANOMALY_KINDS",
    "MACHINE_TYPES",
    "SEVERITY_LEVELS",
    "SYNTHETIC_LAYOUTS",
    "TRUTH_FILE",
    "SyntheticSpec",
    "clip_rng",
    "generate",
    "synthesize_clip",
]

#: Supported machine names and the archetype that renders them.
MACHINE_TYPES: dict[str, str] = {
    "pump": "rotating",
    "gearbox": "rotating",
    "fan": "fan",
    "slider": "slider",
    "valve": "valve",
}

#: Anomaly kinds that make physical sense for each machine.
ANOMALY_KINDS: dict[str, tuple[str, ...]] = {
    "pump": ("bearing", "imbalance", "rub", "harmonic"),
    "gearbox": ("bearing", "tooth", "imbalance", "harmonic"),
    "fan": ("imbalance", "bearing", "rub", "clog"),
    "slider": ("friction", "rattle", "timing"),
    "valve": ("timing", "leak", "bounce"),
}

#: Severity values drawn for anomalous clips (nominal; each clip jitters its value by a few percent).
SEVERITY_LEVELS: dict[str, float] = {"low": 0.35, "high": 1.0}

SYNTHETIC_LAYOUTS: tuple[str, ...] = ("dcase2022", "dcase2021", "dcase2020", "folder")

#: Bumped whenever the same spec and seed would render different audio, so cached demo sets are rebuilt.
GENERATOR_VERSION = 2
TRUTH_FILE = "synthetic_truth.csv"

_DOMAINS = ("source", "target")
_SPLITS = ("train", "test")
_LEVEL_DBFS = -38.0  # clip RMS, like the normalised DCASE development sets
_PEAK_LIMIT = 0.5  # -6 dBFS: impulsive clips keep headroom, nothing comes near clipping
_TWO_PI = 2.0 * math.pi


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate. Counts are per section; test counts are per section *and* domain.

    Defaults give the demo set: DCASE2022+ style, many source and few target training clips.
    """

    machines: tuple[str, ...] = ("pump", "fan", "slider")
    sections: int = 3
    n_train_source: int = 60
    n_train_target: int = 6
    n_test_normal: int = 20
    n_test_anomaly: int = 20
    duration: float = 10.0
    sample_rate: int = 16000
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.machines, str) or not isinstance(self.machines, Sequence) or not self.machines:
            raise ValueError(f"machines: give a non-empty tuple of machine names, got {self.machines!r}")
        object.__setattr__(self, "machines", tuple(self.machines))  # a list would make the spec unhashable
        unknown = [m for m in self.machines if m not in MACHINE_TYPES]
        if unknown:
            raise ValueError(f"machines: unknown {unknown}; known: {', '.join(MACHINE_TYPES)}")
        if len(set(self.machines)) != len(self.machines):
            raise ValueError("machines: names repeat")
        for name in ("sections", "n_train_source", "n_train_target", "n_test_normal", "n_test_anomaly"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        if self.sections > 100:
            raise ValueError(f"sections: at most 100 (two-digit section numbers), got {self.sections}")
        if self.n_train_target > self.n_train_source:
            raise ValueError(
                f"n_train_target: must not exceed n_train_source "
                f"({self.n_train_target} > {self.n_train_source});"
                " the target domain is the one with few training clips"
            )
        if not isinstance(self.duration, int | float) or not 0.5 <= self.duration <= 60.0:
            raise ValueError(f"duration: must be between 0.5 and 60 seconds, got {self.duration!r}")
        if not isinstance(self.sample_rate, int) or not 8000 <= self.sample_rate <= 96000:
            raise ValueError(
                f"sample_rate: must be an integer between 8000 and 96000, got {self.sample_rate!r}"
            )
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed: must be a non-negative integer, got {self.seed!r}")

    @classmethod
    def tiny(cls, **overrides: object) -> SyntheticSpec:
        """A few short clips for fast tests: 2 sections, 1.5-s clips, every machine kind of the demo."""
        values: dict[str, object] = dict(
            sections=2, n_train_source=4, n_train_target=1, n_test_normal=2, n_test_anomaly=2, duration=1.5
        )
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


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


# --------------------------------------------------------------------------------------------------------
# Fixed machine properties: sections and domains


@dataclass(frozen=True)
class _Background:
    """Factory noise around the machine: always present, different in the target domain.

    Besides the steady noise there are intermittent events (distant impacts, passing vehicles, air hiss):
    rare and soft in the source domain, frequent and louder in the target domain, where a handful of
    training clips cannot cover them, as in the real challenge.
    """

    alpha: float  # spectral slope exponent
    hump_hz: float  # centre of a broad band of plant noise
    hump_db: float
    level_db: float  # relative to the machine's own RMS
    hum: tuple[tuple[float, float], ...]  # tonal lines (Hz, dB relative) from other machinery and mains
    events_per_s: float
    events_db: float  # event level relative to the steady background
    swell_band: tuple[float, float]
    hiss_band: tuple[float, float]
    impact_hz: float


def _backgrounds(
    machine: str, section: int, base_level_db: float, shift: float = 1.0
) -> dict[str, _Background]:
    """Source and target backgrounds of one section: the target is louder, of another colour, busier.

    ``shift`` scales the change of colour and level and softens the events: machines that pause (slider,
    valve) expose their background and need less of it for a comparable domain shift.
    """
    rng = _fixed_rng(machine, section, "background")
    alpha = rng.uniform(0.9, 1.3)
    mains = rng.choice([50.0, 60.0])
    source = _Background(
        alpha=alpha,
        hump_hz=rng.uniform(120.0, 400.0),
        hump_db=rng.uniform(4.0, 8.0),
        level_db=base_level_db + rng.uniform(-1.0, 1.0),
        hum=tuple(
            (float(f), float(rng.uniform(-20.0, -14.0)))
            for f in (mains * 2, mains * rng.integers(3, 7), rng.uniform(150.0, 260.0))
        ),
        events_per_s=rng.uniform(0.03, 0.06),
        events_db=rng.uniform(-4.0, -1.0),
        swell_band=(rng.uniform(80.0, 200.0), rng.uniform(800.0, 1500.0)),
        hiss_band=(rng.uniform(2000.0, 3500.0), rng.uniform(6000.0, 7500.0)),
        impact_hz=rng.uniform(300.0, 900.0),
    )
    brighter = rng.random() < 0.5
    target = _Background(
        alpha=alpha + shift * (-rng.uniform(0.4, 0.6) if brighter else rng.uniform(0.5, 0.8)),
        hump_hz=rng.uniform(800.0, 2500.0) if brighter else rng.uniform(60.0, 120.0),
        hump_db=shift * rng.uniform(6.0, 10.0),
        level_db=source.level_db + shift * rng.uniform(1.5, 3.0),
        hum=(
            *source.hum,
            *(
                (float(f), float(rng.uniform(-20.0, -14.0) - 8.0 * (1.0 - shift)))
                for f in (mains * rng.integers(7, 12), rng.uniform(280.0, 420.0))
            ),
        ),
        events_per_s=rng.uniform(0.12, 0.2),
        events_db=rng.uniform(-3.0, 0.0) + 6.0 * (shift - 1.0),
        swell_band=(rng.uniform(150.0, 400.0), rng.uniform(1500.0, 3000.0)),
        hiss_band=(rng.uniform(1500.0, 3000.0), rng.uniform(5000.0, 7500.0)),
        impact_hz=rng.uniform(600.0, 1600.0),
    )
    return {"source": source, "target": target}


def _background_noise(ctx: _Ctx, bg: _Background) -> np.ndarray:
    """Steady coloured noise with hum lines, plus intermittent events; about unit RMS."""
    gain = ctx.shape(("tilt", bg.alpha), ("bump", bg.hump_hz, 1.2, bg.hump_db), ("mic",))
    lines = [(f * (1.0 + 0.001 * ctx.rng.standard_normal()), _db(level)) for f, level in bg.hum]
    steady = ctx.noise(gain, lines, tilt_jitter=0.05)
    return (steady + _background_events(ctx, bg)) * _db(ctx.rng.normal(0.0, 0.7))


def _background_events(ctx: _Ctx, bg: _Background) -> np.ndarray:
    """Intermittent plant noise: a passing vehicle (low swell), an air release (hiss), distant hammering."""
    rng = ctx.rng
    duration = ctx.n / ctx.sr
    out = np.zeros(ctx.n)
    seg = min(ctx.n, 1 << max(4, int(math.log2(2.0 * ctx.sr))))  # about 2 s, an FFT-friendly length
    for _ in range(int(rng.poisson(bg.events_per_s * (duration + 1.0)))):
        kind = int(rng.integers(3))
        start = int(rng.uniform(-0.5, duration) * ctx.sr)
        level = _db(bg.events_db + rng.uniform(-4.0, 3.0))
        if kind == 2:
            hits = start + np.cumsum(rng.uniform(0.15, 0.5, int(rng.integers(1, 5)))) * ctx.sr
            kernel = _ring(
                ctx.sr, ((bg.impact_hz * rng.uniform(0.9, 1.1), 0.05, 1.0), (bg.impact_hz * 2.7, 0.02, 0.5))
            )
            event = np.zeros(ctx.n)
            for h in hits.astype(np.int64):
                _add_at(event, kernel * rng.uniform(0.5, 1.0), int(h))
            out += level * 6.0 * event
            continue
        band = bg.swell_band if kind == 0 else bg.hiss_band
        noise = _noise(rng, seg, ctx.sr, _shape(seg, ctx.sr, (("band", *band, 12.0),)))
        length = rng.uniform(0.4, 1.0) * seg
        env = np.sin(np.pi * np.clip(np.arange(seg) / length, 0.0, 1.0)) ** 2
        _add_at(out, level * noise * env, start)
    return out


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


@dataclass(frozen=True)
class _Rotating:
    """A pump or gearbox: shaft harmonics, vane-pass or gear-mesh tones, flow noise and resonances."""

    rpm: dict[str, tuple[int, ...]]  # attribute values per domain
    n_mesh: int  # vanes (pump) or teeth (gearbox)
    harm_db: tuple[float, ...]  # shaft harmonics 1..K, dB
    mesh_db: tuple[float, ...]  # mesh harmonics 1..M, dB
    side_db: float  # first mesh side-bands relative to their mesh tone
    tonal_db: float  # tonal part relative to flow noise
    alpha: float
    resonances: tuple[tuple[float, float, float], ...]  # (centre Hz, width octaves, gain dB)
    bearing_ratio: float  # fault frequency / shaft frequency (outer race)
    bearing_modes: tuple[tuple[float, float, float], ...]
    rub_band: tuple[float, float]
    tooth_modes: tuple[tuple[float, float, float], ...]
    harmonic_pattern: tuple[float, ...]  # dB change per harmonic in a 'harmonic' anomaly
    backgrounds: dict[str, _Background]


@lru_cache(maxsize=256)
def _rotating(machine: str, section: int) -> _Rotating:
    """The pump or gearbox of a section: speeds spread over sections, the rest drawn per section."""
    rng = _fixed_rng(machine, section, "section")
    u = _spread(section)
    gearbox = machine == "gearbox"
    rpm0 = round(1200 * 2.2**u / 10) * 10 if not gearbox else round(600 * 2.5**u / 10) * 10
    factor = rng.choice([-1.0, 1.0]) * rng.uniform(0.14, 0.24)
    rpm_t = round(rpm0 * (1 + factor) / 10) * 10
    step = 30 if not gearbox else 20
    n_mesh = int(rng.integers(5, 9)) if not gearbox else int(rng.integers(17, 30))
    k = np.arange(1, 41)
    harm = -4.5 * np.log2(k) + rng.normal(0.0, 3.0, len(k))
    harm[0] += rng.uniform(-2.0, 2.0)
    mesh = np.array([0.0, -5.0, -10.0]) + rng.normal(0.0, 2.0, 3)
    pattern = rng.choice([-1.0, 1.0], 40) * rng.uniform(4.0, 9.0, 40)
    pattern[rng.random(40) < 0.5] = 0.0
    f0 = rng.uniform(0.5, 0.9) * (2400.0 if not gearbox else 1800.0)
    resonances = tuple(
        (
            float(f0 * m * rng.uniform(0.85, 1.15)),
            float(rng.uniform(0.25, 0.5)),
            float(rng.uniform(5.0, 11.0)),
        )
        for m in (0.35, 1.0, 2.2)
    )
    bearing_freq = rng.uniform(2600.0, 5200.0)
    return _Rotating(
        rpm={"source": (rpm0 - step, rpm0, rpm0 + step), "target": (rpm_t, rpm_t + step)},
        n_mesh=n_mesh,
        harm_db=tuple(float(v) for v in harm),
        mesh_db=tuple(float(v) for v in mesh),
        side_db=float(rng.uniform(-14.0, -8.0)),
        tonal_db=float(rng.uniform(-3.0, 1.0) if not gearbox else rng.uniform(1.0, 4.0)),
        alpha=float(rng.uniform(0.9, 1.4)),
        resonances=resonances,
        bearing_ratio=float(rng.uniform(3.05, 5.4)),
        bearing_modes=((bearing_freq, 0.0025, 1.0), (bearing_freq * rng.uniform(1.3, 1.6), 0.0015, 0.6)),
        rub_band=(float(rng.uniform(900.0, 1600.0)), float(rng.uniform(3000.0, 5000.0))),
        tooth_modes=(
            (float(rng.uniform(1200.0, 2600.0)), 0.006, 1.0),
            (float(rng.uniform(300.0, 600.0)), 0.012, 0.5),
        ),
        harmonic_pattern=tuple(float(v) for v in pattern),
        backgrounds=_backgrounds(machine, section, base_level_db=rng.uniform(-9.0, -6.0)),
    )


@dataclass(frozen=True)
class _Fan:
    """A fan: blade-pass tone and harmonics on broadband turbulent noise with slow modulation."""

    rpm: dict[str, tuple[int, ...]]
    blades: int
    bpf_db: tuple[float, ...]  # blade-pass harmonics 1..M, dB relative to broadband
    hump_hz: float  # broadband maximum at the nominal source speed
    alpha: float
    resonances: tuple[tuple[float, float, float], ...]
    am_depth: float
    bearing_ratio: float
    bearing_modes: tuple[tuple[float, float, float], ...]
    rub_band: tuple[float, float]
    backgrounds: dict[str, _Background]


@lru_cache(maxsize=256)
def _fan(machine: str, section: int) -> _Fan:
    """The fan of a section: speed, blade count, turbulence spectrum and duct resonances."""
    rng = _fixed_rng(machine, section, "section")
    u = _spread(section)
    rpm0 = round(600 * 2.2**u / 10) * 10
    factor = rng.choice([-1.0, 1.0]) * rng.uniform(0.14, 0.24)
    rpm_t = round(rpm0 * (1 + factor) / 10) * 10
    bearing_freq = rng.uniform(2800.0, 5500.0)
    return _Fan(
        rpm={"source": (rpm0 - 20, rpm0, rpm0 + 20), "target": (rpm_t, rpm_t + 20)},
        blades=int(rng.integers(4, 10)),
        bpf_db=tuple(float(v) for v in np.array([-6.0, -11.0, -15.0, -19.0, -22.0]) + rng.normal(0, 2.0, 5)),
        hump_hz=float(rng.uniform(180.0, 500.0)),
        alpha=float(rng.uniform(1.3, 1.9)),
        resonances=tuple(
            (
                float(rng.uniform(700.0, 1400.0) * m),
                float(rng.uniform(0.2, 0.4)),
                float(rng.uniform(4.0, 8.0)),
            )
            for m in (1.0, 2.6)
        ),
        am_depth=float(rng.uniform(0.04, 0.08)),
        bearing_ratio=float(rng.uniform(3.05, 5.4)),
        bearing_modes=((bearing_freq, 0.002, 1.0), (bearing_freq * rng.uniform(1.3, 1.6), 0.0012, 0.6)),
        rub_band=(float(rng.uniform(1200.0, 2000.0)), float(rng.uniform(3500.0, 6000.0))),
        backgrounds=_backgrounds(machine, section, base_level_db=rng.uniform(-10.0, -7.0)),
    )


@dataclass(frozen=True)
class _Slider:
    """A linear slide: motor whine and rail noise during strokes, an end-stop impact after each."""

    vel: dict[str, tuple[int, ...]]  # mm/s, attribute per domain
    ac: dict[str, float]  # acceleration in g, attribute per domain
    stroke_m: float
    dwell_s: float
    motor_hz_per_mps: float  # whine frequency per m/s of slide speed
    rail_band: tuple[float, float]
    rail_resonance: tuple[float, float, float]
    stop_modes: tuple[tuple[float, float, float], ...]
    defect_at: float  # position (0..1) of the rail defect that a 'rattle' anomaly hits
    squeal_hz: float
    backgrounds: dict[str, _Background]


@lru_cache(maxsize=256)
def _slider(machine: str, section: int) -> _Slider:
    """The slide of a section: velocity and acceleration (the attributes), stroke, dwell, resonances."""
    rng = _fixed_rng(machine, section, "section")
    u = _spread(section)
    vel0 = round(350 + 450 * u, -1)
    vel_t = round(vel0 * (1 + rng.choice([-1.0, 1.0]) * rng.uniform(0.07, 0.1)), -1)
    ac0 = round(float(rng.uniform(0.1, 0.3)), 2)
    ac_t = round(ac0 * rng.uniform(1.2, 1.35) if ac0 < 0.2 else ac0 * rng.uniform(0.75, 0.85), 2)
    stop = rng.uniform(700.0, 1600.0)
    return _Slider(
        vel={
            "source": (int(vel0) - 40, int(vel0), int(vel0) + 40),
            "target": (int(vel_t) - 20, int(vel_t) + 20),
        },
        ac={"source": ac0, "target": ac_t},
        stroke_m=float(rng.uniform(0.15, 0.3)),
        dwell_s=float(rng.uniform(0.15, 0.4)),
        motor_hz_per_mps=float(rng.uniform(300.0, 600.0)),
        rail_band=(float(rng.uniform(300.0, 600.0)), float(rng.uniform(2500.0, 4000.0))),
        rail_resonance=(float(rng.uniform(800.0, 1800.0)), 0.4, float(rng.uniform(5.0, 9.0))),
        stop_modes=(
            (float(stop), float(rng.uniform(0.02, 0.04)), 1.0),
            (float(stop * rng.uniform(2.3, 2.9)), float(rng.uniform(0.008, 0.015)), 0.6),
            (float(rng.uniform(90.0, 160.0)), 0.03, 1.5),
        ),
        defect_at=float(rng.uniform(0.25, 0.75)),
        squeal_hz=float(rng.uniform(1800.0, 3200.0)),
        backgrounds=_backgrounds(machine, section, base_level_db=rng.uniform(-8.0, -5.0), shift=0.2),
    )


@dataclass(frozen=True)
class _Valve:
    """A solenoid valve: open and close clicks ringing in the body, flow hiss while open."""

    patterns: dict[str, tuple[int, ...]]  # pattern numbers per domain (the pat attribute)
    click_modes: tuple[tuple[float, float, float], ...]
    thump_hz: float
    hiss_band: tuple[float, float]
    backgrounds: dict[str, _Background]


@lru_cache(maxsize=256)
def _valve(machine: str, section: int) -> _Valve:
    """The valve of a section: open/close patterns (the attribute), click modes, flow hiss band."""
    rng = _fixed_rng(machine, section, "section")
    f1 = rng.uniform(900.0, 1800.0)
    base = 3 * section
    return _Valve(
        patterns={"source": (base % 100, (base + 1) % 100), "target": ((base + 2) % 100,)},
        click_modes=(
            (float(f1), float(rng.uniform(0.008, 0.016)), 1.0),
            (float(f1 * rng.uniform(2.1, 2.7)), float(rng.uniform(0.004, 0.008)), 0.8),
            (float(f1 * rng.uniform(3.6, 4.4)), float(rng.uniform(0.002, 0.004)), 0.5),
        ),
        thump_hz=float(rng.uniform(90.0, 180.0)),
        hiss_band=(float(rng.uniform(1500.0, 2500.0)), float(rng.uniform(5000.0, 7000.0))),
        backgrounds=_backgrounds(machine, section, base_level_db=rng.uniform(-1.0, 1.0), shift=0.4),
    )


def _valve_pattern(machine: str, section: int, pattern: int) -> tuple[float, float]:
    """Cycle period and open time (s) of a valve pattern number."""
    rng = _fixed_rng(machine, section, f"pattern-{pattern}")
    period = rng.uniform(0.7, 1.6)
    return float(period), float(period * rng.uniform(0.25, 0.6))


# --------------------------------------------------------------------------------------------------------
# Rendering per archetype. Each returns (machine sound, background, attributes); anomalies are added to the
# machine sound with levels relative to its RMS.

_Render = Callable[[str, int, str, str | None, float, _Ctx], tuple[np.ndarray, np.ndarray, dict[str, str]]]

#: Level (dB relative to the machine sound's RMS) of the added anomaly sounds at severity 1; severity
#: scales the amplitude. Calibrated so that the DCASE dense autoencoder finds them neither trivially nor
#: never (anomalies that change the machine's own sound, e.g. imbalance, scale inside the renderers).
_ANOMALY_DB: dict[tuple[str, str], float] = {
    ("pump", "bearing"): -12.0,
    ("pump", "rub"): -14.0,
    ("gearbox", "bearing"): -14.0,
    ("gearbox", "tooth"): -12.0,
    ("fan", "bearing"): -15.0,
    ("fan", "rub"): -14.0,
    ("slider", "friction"): -12.0,
    ("slider", "rattle"): -8.0,
    ("valve", "leak"): -11.0,
    ("valve", "bounce"): -15.0,
}


def _level(machine: str, kind: str, severity: float) -> float:
    """Amplitude factor of an added anomaly sound: its calibrated level scaled by severity."""
    return _db(_ANOMALY_DB[(machine, kind)]) * severity


def _bearing_fault(
    ctx: _Ctx, shaft_phase: np.ndarray, ratio: float, modes: Sequence[tuple[float, float, float]]
) -> np.ndarray:
    """Outer-race fault: impacts at ``ratio`` x shaft speed with slip, load-zone modulated, ringing high."""
    fault_phase = shaft_phase * ratio / _TWO_PI
    fault_phase += 0.01 * np.cumsum(ctx.rng.standard_normal(ctx.n)) / math.sqrt(ctx.sr)  # slip
    idx = np.flatnonzero(np.diff(np.floor(fault_phase)) > 0)
    amps = (1.0 + 0.5 * np.cos(shaft_phase[idx])) * ctx.rng.uniform(0.6, 1.4, len(idx))
    exc = np.zeros(ctx.n)
    exc[idx] = amps
    return _unit(ctx.resonate(exc, modes))


def _rub(ctx: _Ctx, shaft_phase: np.ndarray, band: tuple[float, float], coverage: float) -> np.ndarray:
    """Rubbing: band-limited friction noise, once per revolution, in intermittent episodes."""
    noise = ctx.noise(ctx.shape(("band", *band)))
    contact = (0.5 + 0.5 * np.cos(shaft_phase)) ** 4
    duration = ctx.n / ctx.sr
    spans = []
    t = ctx.rng.uniform(-0.5, 0.5)
    while t < duration:
        length = ctx.rng.uniform(0.3, 1.2)
        if ctx.rng.random() < coverage:
            spans.append((t, t + length))
        t += length + ctx.rng.uniform(0.1, 0.6)
    if not spans:
        spans.append((0.25 * duration, 0.75 * duration))
    return _unit(noise * contact * _envelope(ctx, spans, 0.05))


def _render_rotating(
    machine: str, section: int, domain: str, anomaly: str | None, severity: float, ctx: _Ctx
) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Shaft harmonics with speed jitter, vane-pass/gear-mesh tones and side-bands, flow noise."""
    p = _rotating(machine, section)
    rng = ctx.rng
    rpm = int(rng.choice(p.rpm[domain]))
    shaft = rpm / 60.0 * (1.0 + 0.002 * rng.standard_normal())
    f_inst = shaft * (1.0 + 0.0015 * ctx.slow(1.5) + 0.0005 * ctx.slow(12.0))
    phase = ctx.phase(f_inst)
    z = _unit_phasor(phase)

    limit = min(0.45 * ctx.sr, 4000.0)
    n_harm = min(len(p.harm_db), int(1500.0 / shaft))
    mesh_top = len(p.mesh_db) * p.n_mesh + 1
    k_max = max(n_harm, mesh_top if mesh_top * shaft < limit else 0)
    k_max = min(k_max, int(limit / shaft))
    amps_db = np.full(k_max, -200.0)
    amps_db[:n_harm] = np.array(p.harm_db[:n_harm]) + rng.normal(0.0, 1.0, n_harm)
    for m, level in enumerate(p.mesh_db, start=1):
        centre = m * p.n_mesh
        if centre + 1 > k_max:
            break
        amps_db[centre - 1] = max(amps_db[centre - 1], level + 6.0 + rng.normal(0.0, 0.7))
        for side in (-1, 1):
            i = centre + side - 1
            amps_db[i] = max(amps_db[i], level + 6.0 + p.side_db + rng.normal(0.0, 1.5))
    if anomaly == "harmonic":
        amps_db += severity * np.array(
            p.harmonic_pattern[:k_max] + (0.0,) * max(0, k_max - len(p.harmonic_pattern))
        )
    if anomaly == "imbalance":
        amps_db[0] += 14.0 * severity
        if k_max > 1:
            amps_db[1] += 6.0 * severity
    amps = 10.0 ** (amps_db / 20.0)
    wobble = 1.0 + 0.06 * ctx.slow(0.7)  # load fluctuation
    tonal = _harmonic_sum(z, _coeffs(amps, rng)) * wobble
    if anomaly == "imbalance":
        tonal *= 1.0 + 0.25 * severity * np.cos(phase + rng.uniform(0, _TWO_PI))

    flow_shape = ctx.shape(("tilt", p.alpha), ("mic",), *(("bump", *r) for r in p.resonances))
    flow = ctx.noise(flow_shape, tilt_jitter=0.04) * (1.0 + 0.03 * ctx.slow(2.0))
    machine_sig = _db(p.tonal_db) * _unit(tonal) + flow
    ref = _rms(machine_sig)

    if anomaly == "bearing":
        machine_sig += (
            ref
            * _level(machine, "bearing", severity)
            * _bearing_fault(ctx, phase, p.bearing_ratio, p.bearing_modes)
        )
    elif anomaly == "rub":
        machine_sig += ref * _level(machine, "rub", severity) * _rub(ctx, phase, p.rub_band, 0.6)
    elif anomaly == "tooth":
        rev = np.flatnonzero(np.diff(np.floor(phase / _TWO_PI)) > 0) / ctx.sr
        impacts = ctx.resonate(ctx.impulses(rev, rng.uniform(0.8, 1.2, len(rev))), p.tooth_modes)
        machine_sig += ref * _level(machine, "tooth", severity) * _unit(impacts)

    bg = _background_noise(ctx, p.backgrounds[domain]) * ref * _db(p.backgrounds[domain].level_db)
    return machine_sig, bg, {"rpm": str(rpm)}


def _render_fan(
    machine: str, section: int, domain: str, anomaly: str | None, severity: float, ctx: _Ctx
) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Blade-pass tone and harmonics on slowly modulated turbulent noise shaped by the duct."""
    p = _fan(machine, section)
    rng = ctx.rng
    rpm = int(rng.choice(p.rpm[domain]))
    speed_ratio = rpm / float(p.rpm["source"][1])
    rot = rpm / 60.0 * (1.0 + 0.003 * rng.standard_normal())
    phase = ctx.phase(rot * (1.0 + 0.002 * ctx.slow(1.0)))
    z = _unit_phasor(phase)

    k_max = min(len(p.bpf_db) * p.blades, int(0.45 * ctx.sr / rot))
    amps_db = np.full(k_max, -200.0)
    amps_db[0] = -32.0 + rng.normal(0.0, 1.0)  # residual imbalance of a healthy rotor
    for m, level in enumerate(p.bpf_db, start=1):
        if m * p.blades <= k_max:
            amps_db[m * p.blades - 1] = level + rng.normal(0.0, 0.8)
    if anomaly == "imbalance":
        amps_db[0] = -32.0 + 26.0 * severity
        if k_max > 1:
            amps_db[1] = max(amps_db[1], -40.0 + 16.0 * severity)
    if anomaly == "clog":
        for m in range(1, len(p.bpf_db) + 1):
            if m * p.blades <= k_max:
                amps_db[m * p.blades - 1] += 6.0 * severity
    tonal = _harmonic_sum(z, _coeffs(10.0 ** (amps_db / 20.0), rng))

    hump = round(p.hump_hz * speed_ratio, 1)
    parts = (
        ("tilt", p.alpha, hump),
        ("bump", hump, 1.0, 6.0),
        ("mic",),
        *(("bump", *r) for r in p.resonances),
    )
    if anomaly == "clog":  # a blocked intake: the turbulence maximum moves down, continuous in severity
        hump = hump * (1.0 - 0.3 * severity)
        parts = (
            ("tilt", p.alpha, hump),
            ("bump", hump, 1.0, 6.0),
            ("mic",),
            *(("bump", *r) for r in p.resonances),
        )
        gain = _shape_uncached(ctx.n, ctx.sr, parts)
    else:
        gain = ctx.shape(*parts)
    am = 1.0 + p.am_depth * ctx.slow(0.6)
    if anomaly == "imbalance":
        am = am * (1.0 + 0.2 * severity * np.cos(phase))
    broad = ctx.noise(gain, tilt_jitter=0.04) * am
    machine_sig = broad + tonal  # tonal amplitudes are already relative to the unit-RMS broadband
    ref = _rms(machine_sig)

    if anomaly == "bearing":
        machine_sig += (
            ref
            * _level(machine, "bearing", severity)
            * _bearing_fault(ctx, phase, p.bearing_ratio, p.bearing_modes)
        )
    elif anomaly == "rub":
        machine_sig += ref * _level(machine, "rub", severity) * _rub(ctx, phase, p.rub_band, 0.7)

    bg = _background_noise(ctx, p.backgrounds[domain]) * ref * _db(p.backgrounds[domain].level_db)
    return machine_sig, bg, {"rpm": str(rpm)}


def _render_slider(
    machine: str, section: int, domain: str, anomaly: str | None, severity: float, ctx: _Ctx
) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Strokes with a trapezoidal velocity profile: motor whine, rail noise, end-stop impacts."""
    p = _slider(machine, section)
    rng = ctx.rng
    vel_mm = int(rng.choice(p.vel[domain]))
    ac = p.ac[domain]
    vmax = vel_mm / 1000.0
    ramp = min(vmax / (ac * 9.81), 0.45 * p.stroke_m / vmax)
    stroke = p.stroke_m / vmax + ramp  # trapezoidal velocity profile
    duration = ctx.n / ctx.sr

    # Cycle schedule: stroke out, dwell, stroke back, dwell; small timing jitter per stroke.
    irregular = anomaly == "timing"
    starts, lengths = [], []
    t = -rng.uniform(0.0, 2.0 * (stroke + p.dwell_s))
    while t < duration:
        length = stroke * (1.0 + 0.01 * rng.standard_normal())
        dwell = p.dwell_s * (1.0 + 0.03 * rng.standard_normal())
        if irregular:
            length *= 1.0 + 0.25 * severity * rng.uniform(-1.0, 1.0)
            dwell *= 1.0 + 0.9 * severity * rng.uniform(-1.0, 1.0)
        starts.append(t)
        lengths.append(length)
        t += length + max(dwell, 0.02)
    starts_a, lengths_a = np.array(starts), np.array(lengths)

    speed = np.zeros(ctx.n)  # slide speed (m/s) at each sample
    position = np.zeros(ctx.n)  # fraction of the stroke travelled, 0..1
    for s, length in zip(starts_a, lengths_a, strict=True):
        i0, i1 = max(0, int(s * ctx.sr)), min(ctx.n, int((s + length) * ctx.sr) + 1)
        if i1 <= i0:
            continue
        tau = ctx.t[i0:i1] - s
        r = min(ramp, 0.45 * length)
        prof = np.minimum(1.0, np.minimum(tau / r, (length - tau) / r)).clip(0.0, 1.0)
        if irregular and rng.random() < 0.6:  # hesitation: the slide sticks half-way and catches up
            centre = rng.uniform(0.3, 0.7) * length
            prof *= 1.0 - 0.85 * severity * np.exp(-0.5 * ((tau - centre) / (0.08 * length)) ** 2)
        speed[i0:i1] = vmax * prof
        position[i0:i1] = np.cumsum(prof) / max(float(np.sum(prof)), 1.0)
    moving = speed / vmax

    whine_phase = ctx.phase(p.motor_hz_per_mps * speed * (1.0 + 0.002 * ctx.slow(3.0)))
    z = _unit_phasor(whine_phase)
    whine = (
        _harmonic_sum(z, _coeffs(np.array([1.0, 0.5, 0.35, 0.2]) * _db(rng.normal(0.0, 0.5)), rng)) * moving
    )

    rail = ctx.noise(
        ctx.shape(("band", *p.rail_band, 12.0), ("bump", *p.rail_resonance), ("mic",)), tilt_jitter=0.04
    )
    rail = rail * moving**1.5
    ends = starts_a + lengths_a
    stop_amp = rng.uniform(0.8, 1.2, len(ends)) * (vel_mm / 500.0)
    impacts = ctx.resonate(
        ctx.impulses(ends, stop_amp) + ctx.impulses(starts_a, 0.3 * stop_amp), p.stop_modes
    )
    machine_sig = 0.3 * _unit(whine) + _unit(rail) + 0.9 * _unit(impacts)
    ref = _rms(machine_sig)

    if anomaly == "friction":
        hiss = ctx.noise(ctx.shape(("band", 0.7 * p.squeal_hz, 2.2 * p.squeal_hz, 18.0))) * (
            0.3 + 0.7 * ctx.slow(4.0) ** 2
        )
        squeal_f = p.squeal_hz * (1.0 + 0.01 * ctx.slow(2.0))
        squeal = np.cos(ctx.phase(squeal_f)) * np.clip(ctx.slow(1.5), 0.0, None)
        fric = (hiss + 0.7 * _unit(squeal)) * moving**2
        machine_sig += ref * _level(machine, "friction", severity) * _unit(fric)
    elif anomaly == "rattle":
        # A dent at a fixed rail position hits on every pass; loose parts tick at random while moving.
        crossing = np.flatnonzero(np.diff(np.sign(position - p.defect_at)) > 0) / ctx.sr
        moving_idx = np.flatnonzero(moving > 0.5)
        n_ticks = rng.poisson(6.0 * moving.mean() * duration) if len(moving_idx) else 0
        ticks = rng.choice(moving_idx, n_ticks) / ctx.sr if n_ticks else np.zeros(0)
        exc = ctx.impulses(crossing, 1.0) + ctx.impulses(ticks, rng.uniform(0.2, 0.6, len(ticks)))
        modes = [(fr * 1.7, d * 0.5, g) for fr, d, g in p.stop_modes[:2]]
        machine_sig += ref * _level(machine, "rattle", severity) * _unit(ctx.resonate(exc, modes))

    bg = _background_noise(ctx, p.backgrounds[domain]) * ref * _db(p.backgrounds[domain].level_db)
    return machine_sig, bg, {"vel": str(vel_mm), "ac": f"{ac:.2f}"}


def _render_valve(
    machine: str, section: int, domain: str, anomaly: str | None, severity: float, ctx: _Ctx
) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Open and close clicks ringing in the valve body, flow hiss while open, on a noise floor."""
    p = _valve(machine, section)
    rng = ctx.rng
    pattern = int(rng.choice(p.patterns[domain]))
    period, open_time = _valve_pattern(machine, section, pattern)
    duration = ctx.n / ctx.sr
    opens, closes = [], []
    t = -rng.uniform(0.0, period)
    while t < duration:
        hold = open_time * (1.0 + 0.02 * rng.standard_normal())
        gap = period * (1.0 + 0.02 * rng.standard_normal())
        if anomaly == "timing":  # a sticking plunger: irregular holds and, now and then, a chattering stroke
            hold *= 1.0 + 0.5 * severity * rng.uniform(-1.0, 1.0)
            gap *= 1.0 + 0.3 * severity * rng.uniform(-1.0, 1.0)
            if rng.random() < 0.8 * severity:
                chatter = rng.uniform(0.05, 0.12)
                opens.append(t)
                closes.append(t + chatter)
                t += chatter + rng.uniform(0.04, 0.1)
        opens.append(t)
        closes.append(t + max(hold, 0.03))
        t += max(gap, hold + 0.06)
    opens_a, closes_a = np.array(opens), np.array(closes)
    modes = [*p.click_modes, (p.thump_hz, 0.03, 1.2)]
    exc = ctx.impulses(opens_a, rng.uniform(0.6, 0.8, len(opens_a)))
    exc += ctx.impulses(closes_a, rng.uniform(0.9, 1.1, len(closes_a)))
    clicks = ctx.resonate(exc, modes)
    hiss = ctx.noise(ctx.shape(("band", *p.hiss_band, 12.0), ("mic",)))
    gate = _envelope(ctx, list(zip(opens_a, closes_a, strict=True)), 0.01)
    machine_sig = _unit(clicks) + 0.08 * hiss * gate
    ref = _rms(machine_sig)
    if anomaly == "bounce":  # a contaminated seat: the plunger bounces and rattles after closing
        times, amps = [], []
        for close in closes_a:
            delay, amp = 0.0, 1.0
            for _ in range(int(rng.integers(2, 5))):
                delay += rng.uniform(0.015, 0.045)
                amp *= rng.uniform(0.5, 0.8)
                times.append(close + delay)
                amps.append(amp)
        rattle = [(f * 1.35, d * 0.6, g) for f, d, g in p.click_modes]
        bounce = ctx.resonate(ctx.impulses(np.array(times), np.array(amps)), rattle)
        machine_sig += ref * _level(machine, "bounce", severity) * _unit(bounce)
    elif anomaly == "leak":  # hiss through a seat that no longer closes
        leak = ctx.noise(ctx.shape(("band", 0.4 * p.hiss_band[1], p.hiss_band[1], 18.0))) * (1.0 - gate)
        machine_sig += ref * _level(machine, "leak", severity) * leak * (1.0 + 0.2 * ctx.slow(2.0))
    bg = _background_noise(ctx, p.backgrounds[domain]) * ref * _db(p.backgrounds[domain].level_db)
    return machine_sig, bg, {"pat": f"{pattern:02d}"}


_RENDERERS: dict[str, _Render] = {
    "rotating": _render_rotating,
    "fan": _render_fan,
    "slider": _render_slider,
    "valve": _render_valve,
}


def _render(
    machine: str,
    section: int,
    domain: str,
    anomaly: str | None,
    severity: float,
    rng: np.random.Generator,
    duration: float,
    sample_rate: int,
) -> tuple[np.ndarray, dict[str, str]]:
    """A clip as 16-bit-exact float32 samples, and the attributes of its operating condition."""
    if machine not in MACHINE_TYPES:
        raise ValueError(f"machine: unknown {machine!r}; known: {', '.join(MACHINE_TYPES)}")
    if domain not in _DOMAINS:
        raise ValueError(f"domain: must be 'source' or 'target', got {domain!r}")
    if anomaly is not None and anomaly not in ANOMALY_KINDS[machine]:
        raise ValueError(
            f"anomaly: {anomaly!r} is not a kind for {machine}; kinds: {', '.join(ANOMALY_KINDS[machine])}"
        )
    if not 0.0 <= severity <= 1.0:
        raise ValueError(f"severity: must be within [0, 1], got {severity!r}")
    if section < 0:
        raise ValueError(f"section: must be non-negative, got {section!r}")
    ctx = _Ctx(rng, duration, sample_rate)
    machine_sig, bg, attrs = _RENDERERS[MACHINE_TYPES[machine]](
        machine, section, domain, anomaly, severity, ctx
    )
    x = machine_sig + bg
    x = x - x.mean()
    x *= _db(_LEVEL_DBFS + rng.uniform(-1.0, 1.0)) / max(_rms(x), 1e-12)
    peak = float(np.max(np.abs(x)))
    if peak > _PEAK_LIMIT:
        x *= _PEAK_LIMIT / peak
    pcm = _to_pcm16(x)
    return pcm.astype(np.float32) / 32768.0, attrs


def _to_pcm16(x: np.ndarray) -> np.ndarray:
    """Round to 16-bit steps; values are kept far from full scale, the clip only guards against bugs."""
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def synthesize_clip(
    machine: str,
    section: int,
    domain: str,
    anomaly: str | None,
    severity: float,
    rng: np.random.Generator,
    duration: float,
    sample_rate: int,
) -> np.ndarray:
    """One clip, mono float32, exactly the values its 16-bit wav file holds.

    ``anomaly`` is None for a normal clip or one of ``ANOMALY_KINDS[machine]``; ``severity`` in [0, 1]
    scales it (see SEVERITY_LEVELS). Sections and domains are fixed properties of the machine; ``rng``
    draws everything that varies from clip to clip.
    """
    return _render(machine, section, domain, anomaly, severity, rng, duration, sample_rate)[0]


# --------------------------------------------------------------------------------------------------------
# Writing a DCASE-style tree


@dataclass(frozen=True)
class _Job:
    """One clip to render: its identity (which seeds it) and, for anomalies, its kind and severity."""

    machine: str
    section: int
    domain: str
    split: str
    label: int
    index: int
    anomaly: str | None
    severity_level: str


def _jobs(spec: SyntheticSpec, layout: str) -> list[_Job]:
    """Every clip of a run in a fixed order; anomalies cycle through kind x severity by index."""
    domains = ("source",) if layout == "dcase2020" else _DOMAINS
    jobs: list[_Job] = []
    levels = list(SEVERITY_LEVELS)
    for machine in spec.machines:
        kinds = ANOMALY_KINDS[machine]
        for section in range(spec.sections):
            for domain in domains:
                n_train = spec.n_train_source if domain == "source" else spec.n_train_target
                jobs += [_Job(machine, section, domain, "train", 0, i, None, "") for i in range(n_train)]
                jobs += [
                    _Job(machine, section, domain, "test", 0, i, None, "") for i in range(spec.n_test_normal)
                ]
                for i in range(spec.n_test_anomaly):
                    kind = kinds[i % len(kinds)]
                    level = levels[(i // len(kinds)) % len(levels)]
                    jobs.append(_Job(machine, section, domain, "test", 1, i, kind, level))
    return jobs


def _relative_path(job: _Job, layout: str, attrs: dict[str, str]) -> str:
    """Where a clip goes under the root, following the file-name conventions of each layout."""
    state = "anomaly" if job.label else "normal"
    sec = f"{job.section:02d}"
    if layout == "dcase2020":
        folder = "train" if job.split == "train" else "test"
        return f"{job.machine}/{folder}/{state}_id_{2 * job.section:02d}_{job.index:08d}.wav"
    stem = f"section_{sec}_{job.domain}_{job.split}_{state}_{job.index:04d}"
    if layout == "dcase2021":
        folder = "train" if job.split == "train" else f"{job.domain}_test"
        return f"{job.machine}/{folder}/{stem}.wav"
    if layout == "dcase2022":
        tail = "_".join(f"{k}_{v}" for k, v in attrs.items())
        return f"{job.machine}/{job.split}/{stem}_{tail}.wav"
    # folder: labels from folder names only; names keep section and domain for people reading them
    name = f"section_{sec}_{job.domain}_{job.index:04d}.wav"
    if job.split == "train":
        return f"{job.machine}/train/{name}"
    return f"{job.machine}/test/{state}/{name}"


def _write_atomic(path: Path, data: bytes) -> None:
    """Write beside ``path`` under a temporary name, then rename: a file with a final name is complete.

    Unlike :func:`asdkit.utils.io.atomic_write_bytes` there is no fsync: a set of a thousand clips would
    spend more time syncing than synthesising, and a lost clip is regenerated bit for bit.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name unique to this process and thread, created by open() so the umask applies (mkstemp gives 0600).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, _to_pcm16(samples), sample_rate, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def generate(
    root: Path,
    layout: str = "dcase2022",
    spec: SyntheticSpec = SyntheticSpec(),  # frozen, so a shared default is safe
    progress: bool = False,
    workers: int | None = None,
) -> Path:
    """Write a synthetic development set under ``root`` in a DCASE layout and return ``root``.

    Layouts (``<m>`` is the machine, ``XX`` the two-digit section):

    - ``dcase2022``:
      ``<m>/{train,test}/section_XX_{source,target}_{train,test}_{normal,anomaly}_NNNN_<attrs>.wav``
      with the operating condition in the name (``rpm_1500``, ``vel_500_ac_0.15``, ``pat_01``);
    - ``dcase2021``: ``<m>/{train,source_test,target_test}/section_XX_<domain>_<split>_<state>_NNNN.wav``;
    - ``dcase2020``: ``<m>/{train,test}/{normal,anomaly}_id_YY_NNNNNNNN.wav``, source domain only, machine
      ids YY = 2 x section (00, 02, 04, ...);
    - ``folder``: ``<m>/train/*.wav`` and ``<m>/test/{normal,anomaly}/*.wav``, always one folder per machine
      (also for a single machine), names ``section_XX_<domain>_NNNN.wav``.

    Every wav is written atomically, so an interrupted run leaves only complete files; ``synthetic_truth.csv``
    at the root records each clip's anomaly kind and severity. ``workers`` threads render the clips (None:
    one for small sets, else one per CPU up to 8); the files are the same bytes whatever the number.
    Files of the same names are replaced and other files under ``root`` are left alone, so generate into an
    empty folder when the spec changes.
    """
    if layout not in SYNTHETIC_LAYOUTS:
        raise ValueError(f"layout: unknown {layout!r}; choose one of {', '.join(SYNTHETIC_LAYOUTS)}")
    if not isinstance(spec, SyntheticSpec):
        raise ValueError(f"spec: must be a SyntheticSpec, got {type(spec).__name__}")
    if layout == "dcase2020" and spec.sections > 50:
        raise ValueError(
            f"sections: dcase2020 machine ids are 2 x section and two-digit, so at most 50, "
            f"got {spec.sections}"
        )
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise ValueError(f"workers: must be a positive integer or None, got {workers!r}")
    root = Path(root)
    jobs = _jobs(spec, layout)
    n_workers = _auto_workers(len(jobs)) if workers is None else min(workers, len(jobs))
    chunks = [jobs[i : i + _CHUNK] for i in range(0, len(jobs), _CHUNK)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="synthesising", unit="clip")
    rows: list[list[str]] = []
    try:
        if n_workers > 1:
            done = _render_parallel(spec, layout, root, chunks, n_workers, bar)
        else:
            done = []
            for chunk in chunks:
                done.append(_render_chunk(spec, layout, str(root), chunk))
                if bar is not None:
                    bar.update(len(chunk))
        for chunk_rows in done:
            rows.extend(chunk_rows)
    finally:
        if bar is not None:
            bar.close()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        [
            "path",
            "machine",
            "section",
            "domain",
            "split",
            "label",
            "anomaly",
            "severity_level",
            "severity",
            "attributes",
        ]
    )
    writer.writerows(rows)
    atomic_write_text(root / TRUTH_FILE, buf.getvalue())
    return root


_CHUNK = 24  # clips per task: large enough to hide inter-process overhead, small enough to balance


def _auto_workers(n_jobs: int) -> int:
    """Processes for a run: one for small sets (start-up costs more than it saves), else one per CPU."""
    if n_jobs < 200:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


def _render_chunk(spec: SyntheticSpec, layout: str, root: str, jobs: Sequence[_Job]) -> list[list[str]]:
    """Render and write some clips; return their rows of the truth file."""
    rows = []
    for job in jobs:
        rng = clip_rng(spec.seed, job.machine, job.section, job.domain, job.split, job.label, job.index)
        severity = 0.0
        if job.anomaly is not None:
            severity = min(1.0, SEVERITY_LEVELS[job.severity_level] * float(rng.uniform(0.9, 1.1)))
        samples, attrs = _render(
            job.machine, job.section, job.domain, job.anomaly, severity, rng, spec.duration, spec.sample_rate
        )
        rel = _relative_path(job, layout, attrs)
        _write_atomic(Path(root) / rel, _wav_bytes(samples, spec.sample_rate))
        rows.append(
            [
                rel,
                job.machine,
                f"{job.section:02d}",
                job.domain,
                job.split,
                str(job.label),
                job.anomaly or "",
                job.severity_level,
                f"{severity:.4f}",
                "_".join(f"{k}_{v}" for k, v in attrs.items()),
            ]
        )
    return rows


def _render_parallel(
    spec: SyntheticSpec, layout: str, root: Path, chunks: list[list[_Job]], n_workers: int, bar: Any
) -> list[list[list[str]]]:
    """Chunks rendered by worker threads, in order.

    Threads rather than processes: the heavy work (FFTs, random fills, ufuncs, file writes) releases the
    GIL, and threads need neither a ``__main__`` guard in the caller's script (spawn) nor a fork of a
    parent that may hold torch or BLAS threads. Each clip's generator depends only on its identity, so the
    files equal those of a serial run.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n_workers, thread_name_prefix="synthetic") as pool:
        futures = [pool.submit(_render_chunk, spec, layout, str(root), chunk) for chunk in chunks]
        out = []
        try:
            for future, chunk in zip(futures, chunks, strict=True):
                out.append(future.result())
                if bar is not None:
                    bar.update(len(chunk))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return out
