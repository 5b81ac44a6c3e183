"""Feature-extraction benchmark: asdkit's FeatureCache against the official baselines' librosa loop.

Run:  .venv/bin/python benchmarks/bench_features.py [--clips N] [--data DIR] [--repeat R]

Uses the real clips under ../shared/data when present (dcase2020_dev_sample and dcase2023_dev_sample,
repeated as copies in a temporary folder up to N), else synthetic 10-s clips written to a temporary
folder. Every method runs in the same process on the same files; the OS page cache is warmed first
and librosa/torch are warmed up on one clip, so the numbers compare steady-state work, not imports or
JIT compilation. Methods run in interleaved rounds and each timing is the median of ``--repeat``
rounds (cold runs each start from an empty cache), so load from other processes hits all alike.

Columns: wall seconds, clips/s and speed-up (wall), and the process's CPU seconds (all threads), which
tell efficiency apart from parallelism and are less sensitive to a busy machine. On a shared machine,
libraries with spinning thread pools (OpenBLAS under librosa, OpenMP under torch) slow down several-fold
when another process holds a core, so the reference is also shown with one BLAS thread.

Sections are functions returning lists of row dicts, printed by benchmarks._table.print_table; add a
section by writing another ``bench_*`` function and calling it from main().
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._table import print_table

REPO = Path(__file__).resolve().parents[1]
DATA_SETS = ("dcase2020_dev_sample", "dcase2023_dev_sample")
SAMPLE_RATE = 16000


def default_data_dir() -> Path:
    return Path(os.environ.get("ASDKIT_SHARED_DATA", REPO.parent / "shared" / "data"))


def real_clips(data_dir: Path) -> list[Path]:
    clips: list[Path] = []
    for name in DATA_SETS:
        clips += sorted((data_dir / name).rglob("*.wav"))
    return clips


def synthetic_clips(folder: Path, n: int, seconds: float = 10.0, seed: int = 0) -> list[Path]:
    """Machine-like 16-bit clips: a few harmonics of a hum plus coloured noise."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    paths = []
    for i in range(n):
        f0 = rng.uniform(40, 400)
        wave = sum(
            rng.uniform(0.02, 0.1) * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) for k in (1, 2, 3)
        )
        noise = np.convolve(rng.standard_normal(t.size), np.ones(8) / 8, mode="same")
        wave = (wave + 0.05 * noise).astype(np.float32)
        path = folder / f"synthetic_{i:05d}.wav"
        sf.write(path, np.clip(wave, -1, 1), SAMPLE_RATE, subtype="PCM_16")
        paths.append(path)
    return paths


def prepare_clips(n: int | None, data_dir: Path, scratch: Path) -> tuple[list[Path], str]:
    """N distinct files (copies beyond the real ones, so the cache cannot share entries)."""
    source = real_clips(data_dir) if data_dir.is_dir() else []
    if not source:
        count = n or 64
        return synthetic_clips(scratch, count), f"{count} synthetic 10-s clips"
    if n is None or n <= len(source):
        chosen = source[: n or len(source)]
        return chosen, f"{len(chosen)} real clips from {data_dir}"
    chosen = list(source)
    copies = scratch / "copies"
    copies.mkdir()
    for i in range(n - len(source)):
        src = source[i % len(source)]
        dst = copies / f"{i:05d}_{src.name}"
        shutil.copyfile(src, dst)
        chosen.append(dst)
    return chosen, f"{n} clips ({len(source)} real from {data_dir}, repeated as copies)"


@dataclass
class Timing:
    wall: float  # median wall-clock seconds
    cpu: float  # median CPU seconds of this process, all threads (less sensitive to other load)


def interleaved(
    methods: dict[str, Callable[[], Any]],
    repeat: int,
    before: dict[str, Callable[[], Any]] | None = None,
) -> dict[str, Timing]:
    """Run every method once per round, ``repeat`` rounds, and take medians.

    Interleaving spreads the load of a shared machine evenly over the methods being compared;
    ``before[name]`` runs untimed before each run of ``name`` (e.g. emptying a cache).
    """
    before = before or {}
    walls: dict[str, list[float]] = {name: [] for name in methods}
    cpus: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeat):
        for name, fn in methods.items():
            if name in before:
                before[name]()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            fn()
            walls[name].append(time.perf_counter() - wall0)
            cpus[name].append(time.process_time() - cpu0)
    return {name: Timing(statistics.median(walls[name]), statistics.median(cpus[name])) for name in methods}


def librosa_reference(paths: Sequence[Path], blas_threads: int | None = None) -> list[np.ndarray]:
    """The official baselines' loop: librosa.load + melspectrogram + power_to_db, one clip at a time.

    ``blas_threads=1`` limits numpy's BLAS (used by melspectrogram's einsum): with its default threads,
    OpenBLAS spin-waits and slows down several-fold whenever another process shares the cores.
    """
    import librosa
    from threadpoolctl import threadpool_limits

    if blas_threads is not None:
        with threadpool_limits(blas_threads):
            return librosa_reference(paths)
    out = []
    for p in paths:
        y, sr = librosa.load(p, sr=SAMPLE_RATE, mono=True)
        mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=1024, hop_length=512, n_mels=128, power=2.0)
        out.append(librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None))
    return out


def bench_feature_extraction(
    paths: Sequence[Path], repeat: int = 3, device: str = "cpu", batch_size: int = 32
) -> list[dict[str, Any]]:
    """Rows for: the librosa reference, asdkit cold and warm cache, and where the time goes."""
    import librosa
    import torch

    from asdkit.data.audio import load_audio
    from asdkit.features import FeatureCache, FeatureConfig, compute_logmel

    config = FeatureConfig()
    n = len(paths)
    for p in paths:  # warm the OS page cache so no method pays for the first disk read
        Path(p).read_bytes()
    librosa_reference(paths[:1])  # librosa's first call compiles numba code and imports lazily
    compute_logmel([load_audio(paths[0])], config, device)
    waves = [load_audio(p) for p in paths]

    scratch = Path(tempfile.mkdtemp(prefix="asdkit-bench-cache-"))
    cold_dir, warm_dir = scratch / "cold", scratch / "warm"
    cold = FeatureCache(config, cache_dir=cold_dir, device=device, batch_size=batch_size)
    warm = FeatureCache(config, cache_dir=warm_dir, device=device, batch_size=batch_size)
    try:
        result = warm.extract(paths)
        check = librosa_reference(paths[: min(n, 16)])
        max_db = max(
            float(np.abs(np.asarray(a) - b).max()) for a, b in zip(result.arrays, check, strict=False)
        )
        del result

        def librosa_in_memory() -> None:
            for y in waves:
                mel = librosa.feature.melspectrogram(
                    y=y, sr=SAMPLE_RATE, n_fft=1024, hop_length=512, n_mels=128
                )
                librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)

        timings = interleaved(
            {
                "reference": lambda: librosa_reference(paths),
                "reference_1": lambda: librosa_reference(paths, blas_threads=1),
                "cold": lambda: cold.extract(paths),
                "warm": lambda: warm.extract(paths),
                "librosa_mem": librosa_in_memory,
                "asdkit_mem": lambda: compute_logmel(waves, config, device, batch_size),
                "read": lambda: [load_audio(p) for p in paths],
            },
            repeat,
            before={"cold": lambda: shutil.rmtree(cold_dir, ignore_errors=True)},
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    def row(method: str, key: str, versus: str = "reference") -> dict[str, Any]:
        t, base = timings[key], timings[versus]
        return {
            "method": method,
            "clips": n,
            "seconds": t.wall,
            "clips/s": n / t.wall,
            "speed-up": f"{base.wall / t.wall:.1f}x",
            "cpu s": t.cpu,
            "cpu speed-up": f"{base.cpu / t.cpu:.1f}x",
        }

    rows = [
        row("librosa per clip: load + melspectrogram + power_to_db (reference)", "reference"),
        row("librosa per clip, as above with 1 BLAS thread (vs reference)", "reference_1"),
        row(f"asdkit FeatureCache.extract, cold cache ({cold.strategy}, {cold.workers} workers)", "cold"),
        row("asdkit FeatureCache.extract, warm cache (memmaps)", "warm"),
        row(
            "  parts, in memory: librosa melspectrogram + power_to_db (vs itself)",
            "librosa_mem",
            "librosa_mem",
        ),
        row(
            f"  parts, in memory: asdkit compute_logmel ({torch.get_num_threads()} threads; vs librosa)",
            "asdkit_mem",
            "librosa_mem",
        ),
        row("  parts: asdkit load_audio only, one thread (vs reference)", "read"),
    ]
    print(f"max |dB difference| of the cached features vs librosa on {min(n, 16)} clips: {max_db:.1e}")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=None, help="number of clips (default: all real ones)")
    parser.add_argument("--data", type=Path, default=default_data_dir(), help="shared data folder")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (median)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="asdkit-bench-clips-"))
    try:
        paths, what = prepare_clips(args.clips, args.data, scratch)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"{what}; {os.cpu_count()} CPUs, load average {load:.2f} at start")
        rows = bench_feature_extraction(
            paths, repeat=args.repeat, device=args.device, batch_size=args.batch_size
        )
        print_table(rows, title=f"Feature extraction (median of {args.repeat} interleaved rounds)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
