"""Scoring latency per 10-s clip and peak training memory at N and 4N clips (the streaming claim).

Run: ``.venv/bin/python benchmarks/bench_pipeline.py [--clips N] [--epochs E]``

Training memory is measured in fresh child processes (peak resident set size, ``ru_maxrss``), each
training the dense AE on N or 4N cached 10-s clips; target: peak(4N) < 1.3 x peak(N). Scoring latency is
one clip at a time, wav file to score (read, log-mel, network), as a monitoring service would do it,
against the same work with the librosa per-clip front end that the official baselines use.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import print_table

CHILD = r"""
import json, resource, sys
from pathlib import Path
import torch
torch.set_num_threads(2)
from asdkit.features.cache import FeatureCache
from asdkit.features.config import FeatureConfig
from asdkit.detectors.base import ClipFeatures
from asdkit.data.manifest import Clip
from asdkit.detectors.registry import create_detector
paths = [Path(p) for p in json.loads(sys.argv[1])]
cache = FeatureCache(FeatureConfig(), cache_dir=Path(sys.argv[2]))
res = cache.extract(paths)
X = ClipFeatures(res.arrays, [Clip(path=p, machine="m", section="00") for p in res.kept])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
create_detector("ae", epochs=int(sys.argv[3]), accelerator="cpu").fit(X)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_mb": before / 1024, "peak_mb": peak / 1024}))
"""


def make_clips(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` 10-s synthetic pump clips (the toolkit's own generator), written once."""
    import soundfile as sf

    from asdkit.data.synthetic import synthesize_clip

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"clip_{i:05d}.wav"
        if not path.exists():
            rng = np.random.default_rng([seed, i])
            wave = synthesize_clip("pump", i % 3, "source", None, 0.0, rng, 10.0, 16000)
            sf.write(path, wave, 16000, subtype="PCM_16")
        paths.append(path)
    return paths


def bench_training_memory(paths: list[Path], n: int, epochs: int, cache_dir: Path) -> list[dict[str, object]]:
    rows = []
    peaks = {}
    for count in (n, 4 * n):
        start = time.perf_counter()
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                json.dumps([str(p) for p in paths[:count]]),
                str(cache_dir),
                str(epochs),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        seconds = time.perf_counter() - start
        result = json.loads(out.stdout.strip().splitlines()[-1])
        peaks[count] = result["peak_mb"]
        rows.append(
            {
                "measure": f"train ae peak RSS, {count} clips",
                "value": f"{result['peak_mb']:.0f} MB",
                "note": f"{result['before_mb']:.0f} MB before fit, {seconds:.1f} s incl. features",
            }
        )
    ratio = peaks[4 * n] / peaks[n]
    rows.append(
        {
            "measure": "peak(4N) / peak(N)",
            "value": f"{ratio:.3f}",
            "note": "target < 1.3: " + ("met" if ratio < 1.3 else "NOT met"),
        }
    )
    return rows


def bench_scoring_latency(
    paths: list[Path], train_paths: list[Path], cache_dir: Path
) -> list[dict[str, object]]:
    import librosa
    import torch

    from asdkit.data.audio import load_audio
    from asdkit.data.manifest import Clip
    from asdkit.detectors.base import ClipFeatures
    from asdkit.detectors.registry import create_detector
    from asdkit.features.cache import FeatureCache
    from asdkit.features.config import FeatureConfig
    from asdkit.features.logmel import compute_logmel

    config = FeatureConfig()
    res = FeatureCache(config, cache_dir=cache_dir).extract(train_paths)
    detector = create_detector("ae", epochs=1, accelerator="cpu")
    detector.fit(
        ClipFeatures(res.arrays, [Clip(path=p, machine="m", section="00") for p in res.kept], config)
    )

    def asdkit_path(p: Path) -> float:
        wave = load_audio(p, config.sample_rate)
        logmel = compute_logmel([wave], config)
        clip = [Clip(path=p, machine="m", section="00")]
        return float(detector.anomaly_score(ClipFeatures(logmel, clip, config))[0])

    def librosa_path(p: Path) -> float:
        y, _ = librosa.load(p, sr=config.sample_rate)
        mel = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=1024, hop_length=512, n_mels=128, power=2.0)
        logmel = [librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).astype(np.float32)]
        clip = [Clip(path=p, machine="m", section="00")]
        return float(detector.anomaly_score(ClipFeatures(logmel, clip, config))[0])

    rows = []
    torch.set_num_threads(2)
    for name, fn in (
        ("asdkit (soundfile + torch.stft log-mel + AE)", asdkit_path),
        ("reference (librosa.load + librosa log-mel + AE)", librosa_path),
    ):
        fn(paths[0])  # warm-up
        times = []
        for p in paths:
            start = time.perf_counter()
            fn(p)
            times.append(time.perf_counter() - start)
        ms = sorted(t * 1000 for t in times)
        rows.append(
            {
                "measure": f"score one 10-s clip: {name}",
                "value": f"{statistics.median(ms):.1f} ms median",
                "note": f"p95 {ms[int(0.95 * (len(ms) - 1))]:.1f} ms over {len(ms)} clips",
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=50, help="N for the memory test (4N clips are made)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--latency-clips", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="asdkit-bench-") as tmp:
        tmp_path = Path(tmp)
        paths = make_clips(tmp_path / "wav", 4 * args.clips)
        cache = tmp_path / "cache"
        rows = bench_training_memory(paths, args.clips, args.epochs, cache)
        rows += bench_scoring_latency(paths[: args.latency_clips], paths[: args.clips], cache)
    print_table(rows, title="asdkit pipeline benchmark (2 CPU cores unless the machine says otherwise)")


if __name__ == "__main__":
    main()
