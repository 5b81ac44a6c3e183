"""The shared base of reconstruction detectors: a network, what it reconstructs, and its per-item error.

A new reconstruction model is a network plus ``_network``, ``_items``, ``_count`` and (when the error
is not plain MSE of input vs output) ``_item_errors``. Training streams items from the feature cache
through Lightning; the clip score is the mean item error over the clip.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from asdkit.detectors.base import ClipFeatures, Detector
from asdkit.detectors.frames import ItemStream


def scoring_device(accelerator: str) -> torch.device:
    """Score on the GPU when there is one and the detector was not pinned to the CPU."""
    if accelerator != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


class ReconstructionDetector(Detector):
    has_network: ClassVar[bool] = True
    debug_params: ClassVar[dict[str, Any]] = {"epochs": 2}

    epochs: int
    batch_size: int
    learning_rate: float
    validation_fraction: float
    seed: int
    accelerator: str
    devices: int | str
    strategy: str
    progress: bool

    # -- what a model provides --------------------------------------------------------------------------
    def _network(self, n_mels: int) -> nn.Module:
        raise NotImplementedError

    def _items(self, logmel: np.ndarray) -> np.ndarray:
        """The clip's network inputs, [n_items, ...], from its log-mel array [n_mels, frames]."""
        raise NotImplementedError

    def _count(self, n_frames: int) -> int:
        """How many items a clip of ``n_frames`` frames gives."""
        raise NotImplementedError

    def _item_errors(self, network: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        """One error per item; training minimises their mean. Default: MSE of the reconstruction."""
        return ((network(batch) - batch) ** 2).flatten(1).mean(dim=1)

    def _loss(self, network: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return self._item_errors(network, batch).mean()

    # -- shared machinery -------------------------------------------------------------------------------
    def _build_network(self, n_mels: int) -> None:
        torch.manual_seed(self.seed)
        self.n_mels_in_ = n_mels
        self.network_ = self._network(n_mels)

    def _fit(self, X: ClipFeatures) -> None:
        from asdkit.detectors.training import fit_network

        self._build_network(X.config.n_mels)
        train_idx, val_idx = split_clips(len(X), self.validation_fraction, self.seed)
        stream = ItemStream(
            [X.arrays[i] for i in train_idx], self._items, self._count, self.batch_size, seed=self.seed
        )
        val = None
        if val_idx:
            val = ItemStream(
                [X.arrays[i] for i in val_idx], self._items, self._count, self.batch_size, shuffle=False
            )
        self.history_ = fit_network(
            self.network_,
            self._loss,
            stream,
            val,
            epochs=self.epochs,
            learning_rate=self.learning_rate,
            seed=self.seed,
            accelerator=self.accelerator,
            devices=self.devices,
            strategy=self.strategy,
            progress=self.progress,
        )

    @torch.inference_mode()
    def _score(self, X: ClipFeatures) -> np.ndarray:
        return np.array([float(e.mean()) for e in self.item_errors(X.arrays)], dtype=np.float64)

    @torch.inference_mode()
    def item_errors(self, arrays: Sequence[np.ndarray], max_items: int = 8192) -> list[np.ndarray]:
        """Per-item errors of each clip (e.g. per frame over time: the reconstruction view plots them)."""
        device = scoring_device(self.accelerator)
        network = self.network_.to(device).eval()
        out: list[np.ndarray] = []
        for items, counts in _item_chunks(arrays, self._items, max_items):
            errors = self._item_errors(network, torch.from_numpy(items).to(device)).double().cpu().numpy()
            out += np.split(errors, np.cumsum(counts)[:-1])
        return out

    def _extra_state(self) -> dict[str, Any]:
        return {"n_mels_in": self.n_mels_in_}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._build_network(int(state["n_mels_in"]))


def split_clips(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Clip-level hold-out (items of one clip never straddle training and validation)."""
    n_val = round(n * fraction) if n >= 10 else 0
    order = np.random.default_rng(seed).permutation(n)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def _item_chunks(
    arrays: Sequence[np.ndarray], items_fn: Any, max_items: int
) -> Iterator[tuple[np.ndarray, list[int]]]:
    """Items of consecutive clips, about ``max_items`` at a time, with per-clip counts."""
    pending: list[np.ndarray] = []
    for i, array in enumerate(arrays):
        pending.append(items_fn(np.asarray(array, dtype=np.float32)))
        if sum(len(p) for p in pending) >= max_items or i == len(arrays) - 1:
            yield np.concatenate(pending), [len(p) for p in pending]
            pending = []
