"""ONNX export speed and parity: onnxruntime against the PyTorch scoring path, per detector, in one run.

Run: ``python benchmarks/bench_onnx.py [--data ../shared/data/dcase2020_dev_sample] [--epochs 5]``

Each detector (the default ``ensemble``, its members ``mahalanobis`` and ``patch_bank``, ``knn``, ``gmm``,
the dense ``ae``) is trained on every third normal clip of the data (one section per machine type;
synthetic pump clips when the folder is absent), exported, and every clip is scored one at a time both
ways, as the service or a watcher scores a new recording: PyTorch (log-mel on ``LogMel``, then the
detector's ``anomaly_score``) and onnxruntime (the exported graph from the waveform); the differences are
over the clips not used in training (a training clip's distances to the banks that hold its own frames are
near zero, where float32 rounding in either path dominates: shown apart). Both run on one
thread (torch, BLAS and onnxruntime's intra-op), the best of ``--repeats`` passes. A second table times the
front end alone: ``LogMel``, the exported STFT front end (float64 and float32), and the dense-DFT front
end that the export used before (rebuilt here as the reference: window and DFT as two matrix products).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import print_table

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dcase2020_dev_sample"
DETECTORS: list[tuple[str, dict]] = [
    ("ensemble", {}),
    ("mahalanobis", {}),
    ("patch_bank", {"aggregate": "mean"}),
    ("knn", {}),
    ("gmm", {}),
    ("ae", {"accelerator": "cpu"}),
]


def load_clips(folder: Path) -> tuple[list[np.ndarray], list[bool], list[str], str]:
    """Waveforms, whether each is normal, its section, and where they came from."""
    from asdkit.data.audio import load_audio

    files = sorted(folder.glob("*/test/*.wav")) if folder.is_dir() else []
    if files:
        sections = [f.parents[1].name for f in files]  # ids hold too few normal clips for banks
        normal = [f.name.startswith("normal") for f in files]
        return [load_audio(f) for f in files], normal, sections, str(folder)
    from asdkit.data.synthetic import synthesize_clip

    rng = np.random.default_rng(0)
    normal = [i % 4 != 3 for i in range(40)]
    waves = [
        synthesize_clip("pump", i % 2, "source", None if n else "bearing", 1.0, rng, 10.0, 16000)
        for i, n in enumerate(normal)
    ]
    return waves, normal, [f"0{i % 2}" for i in range(40)], "synthetic pump clips (shared data absent)"


def best_ms(run: Callable[[int], float], n: int, repeats: int) -> tuple[float, np.ndarray]:
    """Scores of clips 0..n-1 by ``run`` and the best pass's milliseconds per clip (after one warm-up)."""
    run(0)
    best, scores = math.inf, np.zeros(n)
    for _ in range(repeats):
        t = time.perf_counter()
        scores = np.array([run(i) for i in range(n)])
        best = min(best, (time.perf_counter() - t) / n * 1e3)
    return best, scores


def torch_score(detector: Any, clip: Any, wave: np.ndarray) -> float:
    """The PyTorch path of one clip: log-mel on LogMel, then the detector."""
    from asdkit.detectors.base import ClipFeatures
    from asdkit.features.logmel import compute_logmel

    config = detector.feature_config_
    return float(
        detector.anomaly_score(ClipFeatures(compute_logmel([wave], config, workers=1), [clip], config))[0]
    )


def onnx_score(session: Any, section: np.ndarray | None, wave: np.ndarray) -> float:
    """The exported graph on one clip (``section``: its index input, [1], for models with banks)."""
    feed = {"waveform": wave[None, :].astype(np.float32)}
    if section is not None:
        feed["section"] = section
    return float(session.run(["score"], feed)[0][0])


def dense_dft_front_end(config: object, path: Path) -> Path:
    """The earlier export's front end (frames by gather, window folded into float64 DFT matrices, MatMul)."""
    import torch
    from torch import nn

    from asdkit.export.onnx import to_onnx_model
    from asdkit.features.logmel import mel_filterbank, periodic_hann
    from asdkit.utils.io import atomic_write_bytes

    class DenseDft(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            c = self.c = config
            n = torch.arange(c.n_fft, dtype=torch.float64)  # type: ignore[attr-defined]
            k = torch.arange(c.n_fft // 2 + 1, dtype=torch.float64)  # type: ignore[attr-defined]
            angle = 2 * math.pi * torch.outer(n, k) / c.n_fft  # type: ignore[attr-defined]
            window = periodic_hann(c, torch.float64)[:, None]  # type: ignore[arg-type]
            self.register_buffer("re", window * torch.cos(angle))
            self.register_buffer("im", -window * torch.sin(angle))
            self.register_buffer("mel", mel_filterbank(c).T.contiguous())  # type: ignore[arg-type]

        def forward(self, wave: torch.Tensor) -> torch.Tensor:
            c = self.c
            wave = nn.functional.pad(wave, (c.n_fft // 2, c.n_fft // 2))  # type: ignore[attr-defined]
            count = (wave.shape[1] - c.n_fft) // c.hop_length + 1  # type: ignore[attr-defined]
            index = torch.arange(count)[:, None] * c.hop_length + torch.arange(c.n_fft)[None, :]  # type: ignore[attr-defined]
            frames = wave[:, index].double()
            re, im = torch.matmul(frames, self.re).float(), torch.matmul(frames, self.im).float()
            power = torch.matmul(re * re + im * im, self.mel)
            return 10.0 * torch.log10(torch.clamp(power, min=c.amin))  # type: ignore[attr-defined]

    axes = {"waveform": {0: "batch", 1: "samples"}, "logmel": {0: "batch", 1: "frames"}}
    model = to_onnx_model(DenseDft().eval(), (torch.zeros(1, 16000),), ["waveform"], axes, "logmel")
    atomic_write_bytes(path, model.SerializeToString())
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--epochs", type=int, default=5, help="AE training epochs")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes over the clips (best kept)")
    parser.add_argument("--clips", type=int, default=0, help="score only the first N clips (0: all)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")

    import torch
    from threadpoolctl import threadpool_limits

    from asdkit.data.manifest import Clip
    from asdkit.detectors.base import ClipFeatures
    from asdkit.detectors.registry import create_detector
    from asdkit.export.onnx import export_front_end, export_onnx, onnx_session, section_indices
    from asdkit.features.config import FeatureConfig
    from asdkit.features.logmel import compute_logmel

    torch.set_num_threads(1)
    threadpool_limits(limits=1)
    waves, normal, sections, source = load_clips(args.data)
    config = FeatureConfig()
    clips = [Clip(path=Path(f"clip{i}.wav"), machine="m", section=s) for i, s in enumerate(sections)]
    X = ClipFeatures(compute_logmel(waves, config), clips, config)
    train = [i for i, n in enumerate(normal) if n][::3]
    n = len(waves) if args.clips <= 0 else min(args.clips, len(waves))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, params in DETECTORS:
            if name == "ae":
                params = {**params, "epochs": args.epochs}
            detector = create_detector(name, **params).fit(X.subset(train))

            torch_ms, expected = best_ms(lambda i: torch_score(detector, clips[i], waves[i]), n, args.repeats)  # noqa: B023
            path = export_onnx(detector, Path(tmp) / f"{name}.onnx")
            session = onnx_session(path, threads=1)
            index = section_indices(path, sections)
            takes_section = any(i.name == "section" for i in session.get_inputs())

            def onnx_path(i: int) -> float:
                return onnx_score(session, index[i : i + 1] if takes_section else None, waves[i])  # noqa: B023

            onnx_ms, got = best_ms(onnx_path, n, args.repeats)
            # parity on the clips the model did not see: a training clip's frames are in the banks, and
            # its near-zero distances are rounding noise in either implementation (float32 expansion)
            unseen = np.array([i not in set(train) for i in range(n)])
            diff = np.abs(got - expected)[unseen]
            rows.append(
                {
                    "detector": name if params.get("aggregate") is None else f"{name} (aggregate=mean)",
                    "pytorch_ms": torch_ms,
                    "onnxruntime_ms": onnx_ms,
                    "ratio": onnx_ms / torch_ms,
                    "max_abs_diff": f"{diff.max():.1e}",
                    "max_rel_diff": f"{(diff / np.abs(expected[unseen])).max():.1e}",
                    "max_abs_diff_train_clips": f"{np.abs(got - expected)[~unseen].max(initial=0.0):.1e}",
                    "file_mb": path.stat().st_size / 2**20,
                }
            )
        title = f"Scoring one clip at a time, {n} clips of {source} (one thread each; ensemble = the default)"
        print_table(rows, title=title)

        reference = compute_logmel(waves[:n], config, workers=1)
        fronts = [("PyTorch LogMel (float64 FFT)", None)]
        fronts += [
            (f"ONNX STFT {p}", export_front_end(config, Path(tmp) / f"front_{p}.onnx", p))
            for p in ("float64", "float32")
        ]
        fronts.append(
            ("ONNX dense DFT float64 (earlier)", dense_dft_front_end(config, Path(tmp) / "dft.onnx"))
        )
        front_rows = []
        for label, path in fronts:
            if path is None:
                outputs = [compute_logmel([w], config, workers=1)[0] for w in waves[:n]]
                ms, _ = best_ms(
                    lambda i: float(compute_logmel([waves[i]], config, workers=1)[0][0, 0]), n, args.repeats
                )
            else:
                session = onnx_session(path, threads=1)
                outputs = [
                    session.run(None, {"waveform": w[None, :].astype(np.float32)})[0][0].T for w in waves[:n]
                ]
                feed = [{"waveform": w[None, :].astype(np.float32)} for w in waves[:n]]
                ms, _ = best_ms(lambda i: float(session.run(None, feed[i])[0][0, 0, 0]), n, args.repeats)  # noqa: B023
            err = max(float(np.abs(g - r).max()) for g, r in zip(outputs, reference, strict=True))
            front_rows.append({"front end": label, "ms_per_clip": ms, "max_abs_diff_db": f"{err:.1e}"})
        print_table(front_rows, title="Log-mel front end alone, one clip at a time (one thread)")


if __name__ == "__main__":
    main()
