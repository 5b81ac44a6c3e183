"""The factory around a machine: steady coloured noise with hum, and intermittent plant events.

Always present, and different in the target domain (louder, of another colour, busier), as in the
DCASE recordings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from asdkit.data.synthetic.dsp import _add_at, _Ctx, _db, _fixed_rng, _noise, _ring, _shape


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
