"""Resampling: how much a round trip 16 kHz -> 44.1/48 kHz -> 16 kHz changes each mel band, per resampler.

Run: ``python benchmarks/bench_resample.py [--seconds 10] [--seed 3]``

A clip of white noise (it fills every band up to the Nyquist frequency, where a resampler's roll-off shows
first) and, when ``../shared/data`` is there, the first real clip, go through a round trip with asdkit's
band-limited Fourier resampler (:func:`asdkit.data.audio.resample`) and with soxr's HQ and VHQ filters (the
resampler librosa uses; rows left out when soxr is not installed). Printed per clip, resampler and rate: the
largest change of any of the default front end's 128 mel bands (mean power over the clip, in dB), and the
change of the top two bands, where a filter's roll-off below the Nyquist frequency cuts.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from asdkit.data.audio import load_audio, resample  # noqa: E402
from asdkit.features.config import FeatureConfig  # noqa: E402
from asdkit.features.logmel import LogMel  # noqa: E402
from benchmarks._table import print_table  # noqa: E402

RATE = 16000


def band_energies_db(wave: np.ndarray, logmel: LogMel) -> np.ndarray:
    """Mean power of each mel band over the clip, in dB."""
    mel_db = logmel(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))).double()
    return 10 * np.log10((10 ** (mel_db / 10)).mean(dim=1).numpy())


def resamplers() -> dict[str, Callable[[np.ndarray, int, int], np.ndarray]]:
    found: dict[str, Callable[[np.ndarray, int, int], np.ndarray]] = {"asdkit (Fourier)": resample}
    try:
        import soxr
    except ImportError:
        print("soxr is not installed: its rows are left out", file=sys.stderr)
        return found
    for quality in ("HQ", "VHQ"):
        found[f"soxr {quality}"] = lambda w, a, b, q=quality: soxr.resample(w, a, b, quality=q)
    return found


def clips(seconds: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    found = {"white noise": (0.1 * rng.standard_normal(int(seconds * RATE))).astype(np.float32)}
    shared = REPO.parent / "shared" / "data" / "dcase2020_dev_sample"
    real = sorted(shared.rglob("*.wav"))[:1] if shared.is_dir() else []
    if real:
        found[f"real: {real[0].name}"] = load_audio(real[0])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the white-noise clip")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    logmel = LogMel(FeatureConfig())
    rows = []
    for clip_name, wave in clips(args.seconds, args.seed).items():
        before = band_energies_db(wave, logmel)
        for name, fn in resamplers().items():
            for rate in (44100, 48000):
                back = np.asarray(fn(np.asarray(fn(wave, RATE, rate)), rate, RATE), dtype=np.float32)
                change = band_energies_db(back[: wave.shape[0]], logmel) - before
                rows.append(
                    {
                        "clip": clip_name,
                        "resampler": name,
                        "via Hz": rate,
                        "max |change| dB": f"{np.abs(change).max():.4f}",
                        "band 127 dB": f"{change[-1]:+.2f}",
                        "band 126 dB": f"{change[-2]:+.2f}",
                    }
                )
    print_table(rows, title="mel band energy change after a round trip 16 kHz -> rate -> 16 kHz (128 bands)")


if __name__ == "__main__":
    main()
