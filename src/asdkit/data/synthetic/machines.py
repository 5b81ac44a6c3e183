"""The machine models: each machine's fixed sections and domains, and the renderer of its clips.

Four archetypes render the five machines (:data:`MACHINE_TYPES`): rotating (pump, gearbox), fan, slider
and valve. A section's properties depend only on ``(machine, section)``; a clip's random draws come from
its own generator, so :func:`synthesize_clip` is the same whatever else is generated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from asdkit.data.synthetic.background import _Background, _background_noise, _backgrounds
from asdkit.data.synthetic.dsp import (
    _DOMAINS,
    _TWO_PI,
    _coeffs,
    _Ctx,
    _db,
    _envelope,
    _fixed_rng,
    _harmonic_sum,
    _rms,
    _shape_uncached,
    _spread,
    _to_pcm16,
    _unit,
    _unit_phasor,
)

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

#: Bumped whenever the same spec and seed would render different audio, so cached demo sets are rebuilt.
GENERATOR_VERSION = 2

_LEVEL_DBFS = -38.0  # clip RMS, like the normalised DCASE development sets
_PEAK_LIMIT = 0.5  # -6 dBFS: impulsive clips keep headroom, nothing comes near clipping

# --------------------------------------------------------------------------------------------------------
# Fixed machine properties: sections and domains


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
    return _levelled_pcm(machine_sig + bg, rng), attrs


def _levelled_pcm(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A mix ``[T]`` or ``[T, channels]`` centred, set to a recording level by its first channel,
    peak-limited, as 16-bit-exact float32 samples."""
    x = x - x.mean(axis=0)
    x *= _db(_LEVEL_DBFS + rng.uniform(-1.0, 1.0)) / max(_rms(x if x.ndim == 1 else x[:, 0]), 1e-12)
    peak = float(np.max(np.abs(x)))
    if peak > _PEAK_LIMIT:
        x *= _PEAK_LIMIT / peak
    return _to_pcm16(x).astype(np.float32) / 32768.0


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
