"""DCASE2026-like two-channel clips: a near and a far microphone around one machine in a noisy plant.

The 2026 recordings hold channel 0 near the machine and channel 1 farther away, where the environmental
noise is stronger and the machine weaker. Here each clip renders the machine (with its anomaly) and the
factory background of the mono generator once, adds one environmental noise of three kinds that varies from
clip to clip (the ``noise_<k>`` attribute), and mixes the two microphones from them:

- near (channel 0): machine + background + environmental noise at 6 to 0 dB below the machine;
- far (channel 1): the machine 8 to 14 dB weaker, 3 to 9 ms later and duller (air and distance take the
  highs), the background 2 dB louder, the environmental noise 4 to 8 dB louder than at the near microphone,
  and a steady ventilation hum the near microphone does not hear.

Both channels are scaled together (the near one to the mono clips' level), so their ratio is kept.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from asdkit.data.synthetic.dsp import _Ctx, _db, _rms, _unit
from asdkit.data.synthetic.machines import _RENDERERS, MACHINE_TYPES, _levelled_pcm

#: Environmental noise kinds (the ``noise`` attribute): voices, air hiss, tool clatter.
NOISE_KINDS = {1: "babble", 2: "hiss", 3: "clatter"}


def render_two_channel(
    machine: str,
    section: int,
    domain: str,
    anomaly: str | None,
    severity: float,
    rng: np.random.Generator,
    duration: float,
    sample_rate: int,
) -> tuple[np.ndarray, dict[str, str]]:
    """A clip ``[T, 2]`` (near, far) as 16-bit-exact float32 samples, and its attributes (with ``noise``)."""
    ctx = _Ctx(rng, duration, sample_rate)
    machine_sig, background, attrs = _RENDERERS[MACHINE_TYPES[machine]](
        machine, section, domain, anomaly, severity, ctx
    )
    ref = max(_rms(machine_sig), 1e-12)
    kind = int(rng.integers(1, len(NOISE_KINDS) + 1))
    env = _environment(ctx, kind) * ref * _db(rng.uniform(-6.0, 0.0))
    near = machine_sig + background + env
    delay = round(rng.uniform(0.003, 0.009) * sample_rate)
    b, a = signal.butter(2, min(0.95, rng.uniform(2500.0, 4500.0) / ctx.nyquist))
    machine_far = np.concatenate([np.zeros(delay), signal.lfilter(b, a, machine_sig)[: ctx.n - delay]])
    hum = ctx.noise(ctx.shape(("band", 80.0, 600.0, 12.0)), [(rng.uniform(95.0, 125.0), 3.0)])
    far = (
        machine_far * _db(-rng.uniform(8.0, 14.0))
        + background * _db(2.0)
        + env * _db(rng.uniform(4.0, 8.0))
        + hum * ref * _db(rng.uniform(-14.0, -10.0))
    )
    return _levelled_pcm(np.stack([near, far], axis=1), rng), {**attrs, "noise": str(kind)}


def _environment(ctx: _Ctx, kind: int) -> np.ndarray:
    """One kind of environmental noise, active for part of the clip, unit RMS over the clip."""
    rng = ctx.rng
    active = _spans(ctx, rng.uniform(0.3, 0.7))
    if kind == 1:  # voices: speech-band noise with a syllable-rate envelope
        formant = rng.uniform(400.0, 900.0)
        base = ctx.noise(ctx.shape(("band", 250.0, 3500.0, 12.0), ("bump", formant, 1.0, 6.0)))
        syllables = np.exp(0.8 * ctx.slow(rng.uniform(3.0, 6.0)))
        return _unit(base * syllables * active)
    if kind == 2:  # air hiss
        base = ctx.noise(ctx.shape(("band", rng.uniform(1500.0, 3000.0), rng.uniform(5000.0, 7500.0), 18.0)))
        return _unit(base * active)
    hits = np.flatnonzero(rng.random(ctx.n) < rng.uniform(4.0, 12.0) / ctx.sr)  # clatter: struck metal
    modes = [(rng.uniform(600.0, 3500.0), rng.uniform(0.01, 0.06), 1.0) for _ in range(3)]
    excitation = ctx.impulses(hits / ctx.sr, rng.uniform(0.3, 1.0, hits.size)) * active
    return _unit(ctx.resonate(excitation, modes))


def _spans(ctx: _Ctx, coverage: float) -> np.ndarray:
    """A 0/1 mask with soft edges covering about ``coverage`` of the clip in one to three spans."""
    rng = ctx.rng
    mask = np.zeros(ctx.n)
    n_spans = int(rng.integers(1, 4))
    length = coverage * ctx.n / n_spans
    for _ in range(n_spans):
        start = int(rng.uniform(-0.2 * length, ctx.n - 0.8 * length))
        mask[max(0, start) : max(0, int(start + length))] = 1.0
    ramp = max(1, int(0.05 * ctx.sr))
    return np.convolve(mask, np.ones(ramp) / ramp, mode="same")
