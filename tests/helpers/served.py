"""Saved models and wav files for the service, watcher and export tests (no training: fast and exact)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from asdkit.detectors.base import Detector
from asdkit.detectors.reconstruction.autoencoder import AutoencoderDetector
from asdkit.features.config import FeatureConfig


def fitted_ae(seed: int = 0, n_mels: int = 128, threshold: float = 100.0, **params: object) -> Detector:
    """A small AE with seeded random weights and random BatchNorm statistics, ready to score and save."""
    detector = AutoencoderDetector(
        hidden=32, bottleneck=4, n_hidden=2, seed=seed, accelerator="cpu", **params
    )
    detector._build_network(n_mels)
    generator = torch.Generator().manual_seed(seed)
    for module in detector.network_.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.normal_(0.0, 1.0, generator=generator)
            module.running_var.uniform_(0.5, 2.0, generator=generator)
    detector.network_.eval()
    detector.feature_config_ = FeatureConfig(n_mels=n_mels)
    detector.threshold_ = threshold
    return detector


def fitted_bank_model(name: str = "ensemble", n_clips: int = 24, seed: int = 0, **params: object) -> Detector:
    """A bank detector (the default ensemble unless ``name``) fitted on log-mels of hum-and-noise clips of
    two sections, ready to score and save."""
    from asdkit.data.audio import load_audio
    from asdkit.data.manifest import Clip
    from asdkit.detectors.base import ClipFeatures
    from asdkit.detectors.registry import create_detector
    from asdkit.features.logmel import compute_logmel

    with tempfile.TemporaryDirectory(prefix="asdkit-bank-") as scratch:  # the wavs are only read once
        root = Path(scratch)
        paths = [write_wav(root / f"{i}.wav", seconds=2.0, seed=seed * 1000 + i) for i in range(n_clips)]
        config = FeatureConfig()
        arrays = compute_logmel([load_audio(p) for p in paths], config)
        clips = [
            Clip(path=p, machine="fan", section=f"0{i % 2}", domain="source") for i, p in enumerate(paths)
        ]
        detector = create_detector(name, **params)
        return detector.fit(ClipFeatures(arrays, clips, config))  # type: ignore[attr-defined]


def save_run(root: Path, machines: dict[str, float]) -> Path:
    """A run-like directory holding ``models/<machine>/`` for each machine (value: its threshold)."""
    for i, (machine, threshold) in enumerate(machines.items()):
        fitted_ae(seed=i, threshold=threshold).save(root / "models" / machine, metadata={"machine": machine})
    return root


def write_wav(path: Path, seconds: float = 1.0, rate: int = 16000, seed: int = 0, loud: bool = False) -> Path:
    """A hum plus noise (louder and with a whine when ``loud``), 16-bit PCM."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.2 * np.sin(2 * np.pi * 120 * t) + 0.02 * rng.standard_normal(len(t))
    if loud:
        wave = 3 * wave + 0.3 * np.sin(2 * np.pi * 3000 * t)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.clip(wave, -1, 1), rate, subtype="PCM_16")
    return path
