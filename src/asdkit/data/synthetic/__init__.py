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

from asdkit.data.synthetic.dsp import clip_rng
from asdkit.data.synthetic.machines import (
    ANOMALY_KINDS,
    GENERATOR_VERSION,
    MACHINE_TYPES,
    SEVERITY_LEVELS,
    synthesize_clip,
)
from asdkit.data.synthetic.writer import SYNTHETIC_LAYOUTS, TRUTH_FILE, SyntheticSpec, generate

__all__ = [
    "ANOMALY_KINDS",
    "GENERATOR_VERSION",
    "MACHINE_TYPES",
    "SEVERITY_LEVELS",
    "SYNTHETIC_LAYOUTS",
    "TRUTH_FILE",
    "SyntheticSpec",
    "clip_rng",
    "generate",
    "synthesize_clip",
]
