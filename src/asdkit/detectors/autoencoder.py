"""The official DCASE2020/2021 dense autoencoder baseline: reconstruction error of stacked log-mel frames."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from asdkit.detectors.base import ClipFeatures, Detector
from asdkit.detectors.frames import FrameStream
from asdkit.detectors.registry import register
from asdkit.features.logmel import stack_frames
from asdkit.models.dense_ae import DenseAutoencoder


def scoring_device(accelerator: str) -> torch.device:
    """Score on the GPU when there is one and the detector was not pinned to the CPU."""
    if accelerator != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def mse_loss(network: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(network(batch), batch)


@register
class AutoencoderDetector(Detector):
    """Clip score = mean squared reconstruction error over the clip's stacked-frame vectors.

    Defaults are the official baseline's (100 epochs, batch 512, Adam 1e-3, 10% of the training clips held
    out for the validation loss). ``accelerator``/``devices``/``strategy`` go to Lightning's Trainer, so
    several GPUs are ``devices=4, strategy="ddp"``.
    """

    name: ClassVar[str] = "ae"
    has_network: ClassVar[bool] = True
    debug_params: ClassVar[dict[str, Any]] = {"epochs": 2}

    def __init__(
        self,
        n_frames: int = 5,
        hidden: int = 128,
        bottleneck: int = 8,
        n_hidden: int = 4,
        epochs: int = 100,
        batch_size: int = 512,
        learning_rate: float = 1e-3,
        validation_fraction: float = 0.1,
        seed: int = 0,
        accelerator: str = "auto",
        devices: int | str = 1,
        strategy: str = "auto",
        progress: bool = False,
    ) -> None:
        self.n_frames = n_frames
        self.hidden = hidden
        self.bottleneck = bottleneck
        self.n_hidden = n_hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.accelerator = accelerator
        self.devices = devices
        self.strategy = strategy
        self.progress = progress

    def _build_network(self, n_features: int) -> None:
        torch.manual_seed(self.seed)
        self.n_features_in_ = n_features
        self.network_ = DenseAutoencoder(n_features, self.hidden, self.bottleneck, self.n_hidden)

    def _fit(self, X: ClipFeatures) -> None:
        from asdkit.detectors.training import fit_network, trainer_kwargs

        self._build_network(X.config.n_mels * self.n_frames)
        train_idx, val_idx = _split(len(X), self.validation_fraction, self.seed)
        stream = FrameStream([X.arrays[i] for i in train_idx], self.n_frames, self.batch_size, seed=self.seed)
        val = (
            FrameStream([X.arrays[i] for i in val_idx], self.n_frames, self.batch_size, shuffle=False)
            if val_idx
            else None
        )
        self.history_ = fit_network(
            self.network_,
            mse_loss,
            stream,
            val,
            epochs=self.epochs,
            learning_rate=self.learning_rate,
            seed=self.seed,
            **trainer_kwargs(self),
        )

    @torch.inference_mode()
    def _score(self, X: ClipFeatures) -> np.ndarray:
        device = scoring_device(self.accelerator)
        network = self.network_.to(device).eval()
        scores = np.zeros(len(X), dtype=np.float64)
        for start, stop, vectors, counts in _vector_chunks(X.arrays, self.n_frames):
            x = torch.from_numpy(vectors).to(device)
            errors = ((network(x) - x) ** 2).mean(dim=1).double().cpu().numpy()
            offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
            scores[start:stop] = np.add.reduceat(errors, offsets) / counts
        return scores

    def _extra_state(self) -> dict[str, Any]:
        return {"n_features_in": self.n_features_in_}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._build_network(int(state["n_features_in"]))


def _split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Clip-level hold-out (frames of one clip never straddle train and validation)."""
    n_val = round(n * fraction) if n >= 10 else 0
    order = np.random.default_rng(seed).permutation(n)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def _vector_chunks(arrays: Any, n_frames: int, max_vectors: int = 16384) -> Any:
    """Stacked vectors of consecutive clips, about ``max_vectors`` at a time, with per-clip counts."""
    start, pending, counts = 0, [], []
    for i, array in enumerate(arrays):
        vectors = stack_frames(np.asarray(array, dtype=np.float32), n_frames)
        pending.append(vectors)
        counts.append(len(vectors))
        if sum(counts) >= max_vectors or i == len(arrays) - 1:
            yield start, i + 1, np.concatenate(pending), np.array(counts)
            start, pending, counts = i + 1, [], []
