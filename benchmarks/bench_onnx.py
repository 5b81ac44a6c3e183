"""ONNX export parity and speed: onnxruntime's clip scores against the PyTorch detector's, per precision.

Run: ``.venv/bin/python benchmarks/bench_onnx.py [--data ../shared/data/dcase2020_dev_sample] [--epochs 5]``

Trains the official-shape dense AE (raw dB input, and with ``standardise=True``) on every third normal
clip of the data (synthetic pump clips when the folder is absent), exports it with a float64 and a
float32 DFT front end, and scores every clip both ways. The PyTorch row is the reference in the same run.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import print_table

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dcase2020_dev_sample"


def load_clips(folder: Path) -> tuple[list[np.ndarray], list[bool], str]:
    """Waveforms, whether each is normal, and where they came from."""
    from asdkit.data.audio import load_audio

    files = sorted(folder.glob("*/test/*.wav")) if folder.is_dir() else []
    if files:
        return [load_audio(f) for f in files], [f.name.startswith("normal") for f in files], str(folder)
    from asdkit.data.synthetic import synthesize_clip

    rng = np.random.default_rng(0)
    normal = [i % 4 != 3 for i in range(40)]
    waves = [
        synthesize_clip("pump", 0, "source", None if n else "bearing", 1.0, rng, 10.0, 16000) for n in normal
    ]
    return waves, normal, "synthetic pump clips (shared data absent)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")

    import torch

    from asdkit.data.manifest import Clip
    from asdkit.detectors.base import ClipFeatures
    from asdkit.detectors.reconstruction.autoencoder import AutoencoderDetector
    from asdkit.export.onnx import export_onnx, onnx_scores
    from asdkit.features.config import FeatureConfig
    from asdkit.features.logmel import compute_logmel

    torch.set_num_threads(1)
    waves, normal, source = load_clips(args.data)
    config = FeatureConfig()
    clips = [Clip(path=Path(f"clip{i}.wav"), machine="m", section="00") for i in range(len(waves))]
    X = ClipFeatures(compute_logmel(waves, config), clips, config)
    train = [i for i, n in enumerate(normal) if n][::3]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for standardise in (False, True):
            detector = AutoencoderDetector(epochs=args.epochs, standardise=standardise, accelerator="cpu")
            detector.fit(X.subset(train))
            t = time.perf_counter()  # PyTorch's scoring path from waveforms: log-mel, then network
            expected = detector.anomaly_score(
                ClipFeatures(compute_logmel(waves, config, workers=1), clips, config)
            )
            torch_ms = (time.perf_counter() - t) / len(waves) * 1e3
            rows.append(
                {
                    "model": f"ae standardise={standardise}",
                    "path": "PyTorch (reference)",
                    "max_rel_diff": 0.0,
                    "median_rel_diff": 0.0,
                    "ms_per_clip": torch_ms,
                    "file_mb": None,
                }
            )
            for precision in ("float64", "float32"):
                path = export_onnx(detector, Path(tmp) / f"{precision}.onnx", precision=precision)
                t = time.perf_counter()
                got = onnx_scores(path, waves)
                ms = (time.perf_counter() - t) / len(waves) * 1e3
                rel = np.abs(got - expected) / np.abs(expected)
                rows.append(
                    {
                        "model": f"ae standardise={standardise}",
                        "path": f"onnxruntime {precision}",
                        "max_rel_diff": f"{rel.max():.2e}",
                        "median_rel_diff": f"{np.median(rel):.2e}",
                        "ms_per_clip": ms,
                        "file_mb": path.stat().st_size / 2**20,
                    }
                )
    print_table(rows, title=f"ONNX parity on {len(waves)} clips of {source} (features+network per clip)")


if __name__ == "__main__":
    main()
