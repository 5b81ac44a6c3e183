"""Clip-spectrum benchmark: asdkit's Spectrum module and FeatureCache against scipy.signal.welch.

Run:  .venv/bin/python benchmarks/bench_spectrum.py [--clips N] [--seconds S] [--repeat R]

Synthetic machine-like clips (a hum, harmonics, coloured noise) of S seconds, in memory and as 16-bit
wav files in a temporary folder. Rows, each the median of ``--repeat`` interleaved rounds, in the same
process on the same clips: scipy's Welch estimate in dB (the reference, what a user would write),
asdkit's ``compute_spectrum`` on in-memory waveforms, the FeatureCache filling an empty cache from the wav
files (reading included), and the same cache serving the stored spectra. The largest difference from
the reference, in dB, is printed under the table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._table import print_table

SAMPLE_RATE = 16000


def machine_clips(n: int, seconds: float, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    clips = []
    for _ in range(n):
        hum = rng.uniform(50, 400)
        wave = sum(rng.uniform(0.05, 0.3) / k * np.sin(2 * np.pi * k * hum * t) for k in range(1, 6))
        noise = np.cumsum(rng.standard_normal(t.size)) * 1e-3
        wave = wave + noise - noise.mean() + 0.01 * rng.standard_normal(t.size)
        clips.append((0.8 * wave / np.abs(wave).max()).astype(np.float32))
    return clips


def welch_reference(waves: Sequence[np.ndarray], n_fft: int) -> list[np.ndarray]:
    from scipy import signal

    out = []
    for w in waves:
        _, power = signal.welch(
            w.astype(np.float64),
            fs=SAMPLE_RATE,
            window="hann",
            nperseg=n_fft,
            noverlap=n_fft // 2,
            detrend=False,
            scaling="spectrum",
        )
        out.append(10 * np.log10(np.maximum(power, 1e-10)))
    return out


def timed(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> int:
    import soundfile as sf
    import torch

    from asdkit.features import FeatureCache, SpectrumConfig, compute_spectrum

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--n-fft", type=int, default=16384)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    config = SpectrumConfig(n_fft=args.n_fft)
    waves = machine_clips(args.clips, args.seconds)
    with tempfile.TemporaryDirectory(prefix="asdkit-bench-spectrum-") as scratch:
        folder = Path(scratch)
        paths = []
        for i, w in enumerate(waves):
            paths.append(folder / "audio" / f"clip_{i:04d}.wav")
            paths[-1].parent.mkdir(parents=True, exist_ok=True)
            sf.write(paths[-1], w, SAMPLE_RATE, subtype="PCM_16")
        compute_spectrum(waves[:1], config)  # warm-up: allocations, FFT plans
        welch_reference(waves[:1], args.n_fft)
        counter = iter(range(10**6))

        def cold_cache() -> None:
            FeatureCache(config, cache_dir=folder / f"cache{next(counter)}").extract(paths)

        warm = FeatureCache(config, cache_dir=folder / "warm")
        warm.extract(paths)
        methods: dict[str, Callable[[], object]] = {
            "scipy.signal.welch (reference)": lambda: welch_reference(waves, args.n_fft),
            "asdkit compute_spectrum (memory)": lambda: compute_spectrum(waves, config),
            "asdkit FeatureCache, empty (wav files)": cold_cache,
            "asdkit FeatureCache, filled": lambda: warm.extract(paths),
        }
        seconds = {name: timed(fn, args.repeat) for name, fn in methods.items()}
        reference = seconds["scipy.signal.welch (reference)"]
        rows = [
            {
                "method": name,
                "wall s": s,
                "clips/s": args.clips / s,
                "speed-up": reference / s,
            }
            for name, s in seconds.items()
        ]
        title = (
            f"{args.clips} clips of {args.seconds:g} s, n_fft={args.n_fft} ({config.n_bins} bins), "
            f"torch threads {torch.get_num_threads()}, median of {args.repeat}"
        )
        print_table(rows, title)
        ours = compute_spectrum(waves[:20], config)
        ref = welch_reference(waves[:20], args.n_fft)
        diff = max(float(np.abs(o[0] - r).max()) for o, r in zip(ours, ref, strict=True))
        print(f"max |asdkit - scipy| over 20 clips: {diff:.2e} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
