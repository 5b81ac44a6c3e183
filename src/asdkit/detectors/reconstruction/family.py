"""The shared base of reconstruction detectors: a network, what it reconstructs, and its per-item error.

A new reconstruction model is a network (``_network``), its items (``_windows``; stacked frames by
default) and, when the error is not plain MSE of input vs output, ``_item_errors``. Training streams
items from the feature cache through Lightning (:class:`asdkit.detectors.deep.DeepDetector`); the clip
score is the mean item error over the clip.

A network whose input is not its target (IDNN: context frames in, centre frame out) overrides
``_inputs_targets``. The reconstruction view (:meth:`ReconstructionDetector.reconstruct`) maps items back
onto the clip's frames with ``_layout``; the default layout is that of stacked frames. A model with
``standardise = True`` has a network with a ``scaler`` (:class:`asdkit.models.scaling.BandScaler`) that
is set from the training clips' band statistics before training.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import IterableDataset

from asdkit.detectors.base import ClipFeatures, held_out_count
from asdkit.detectors.deep import DeepDetector
from asdkit.detectors.frames import ItemStream
from asdkit.detectors.tags import DetectorTags
from asdkit.detectors.windows import StackedFrames, Windows
from asdkit.models.scaling import band_statistics


class ReconstructionDetector(DeepDetector):
    """Reconstruction family: ``validation_fraction`` of the training clips are held out for the
    validation loss and the threshold; the trainer settings are those of ``deep.TrainerConfig``."""

    #: set ``network_.scaler`` from the training data (a detector may make this a parameter, as the AE does)
    standardise: bool = False

    n_frames: int

    def __init__(self, validation_fraction: float = 0.1, **trainer: Any) -> None:
        super().__init__(**trainer)
        self.validation_fraction = validation_fraction

    # -- what a model provides --------------------------------------------------------------------------
    def _network(self, n_mels: int) -> nn.Module:
        raise NotImplementedError

    def _windows(self) -> Windows:
        return StackedFrames(self.n_frames)

    def tags(self) -> DetectorTags:
        return replace(super().tags(), min_frames=self._windows().min_frames)

    def _inputs_targets(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the network sees and what it must reproduce; an autoencoder's are the item itself."""
        return batch, batch

    def _item_errors(self, network: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        """One error per item; training minimises their mean. Default: MSE of the reconstruction."""
        inputs, targets = self._inputs_targets(batch)
        return ((network(inputs) - targets) ** 2).flatten(1).mean(dim=1)

    def _loss(self, network: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return self._item_errors(network, batch).mean()

    # -- shared machinery -------------------------------------------------------------------------------
    def _build_network(self, n_mels: int) -> None:
        torch.manual_seed(self.seed)
        self.n_mels_in_ = n_mels
        self.network_ = self._network(n_mels)

    def _training_data(self, X: ClipFeatures) -> tuple[IterableDataset, IterableDataset | None]:
        self._build_network(X.config.n_mels)
        if self.standardise:
            mean, std = band_statistics(X.arrays)
            self.network_.scaler.set(torch.from_numpy(mean), torch.from_numpy(std))
        train_idx, val_idx = split_clips(len(X), self.validation_fraction, self.seed)
        self._held_out_idx = val_idx  # not saved: the threshold is fitted to their scores
        stream = ItemStream(
            [X.arrays[i] for i in train_idx], self._items, self._count, self.batch_size, seed=self.seed
        )
        val = None
        if val_idx:
            val = ItemStream(
                [X.arrays[i] for i in val_idx], self._items, self._count, self.batch_size, shuffle=False
            )
        return stream, val

    @torch.inference_mode()
    def _score(self, X: ClipFeatures) -> np.ndarray:
        return np.array([float(e.mean()) for e in self.item_errors(X.arrays)], dtype=np.float64)

    @torch.inference_mode()
    def item_errors(self, arrays: Sequence[np.ndarray], max_items: int = 8192) -> list[np.ndarray]:
        """Per-item errors of each clip (e.g. per frame over time: the reconstruction view plots them)."""
        device = self.scoring_device()
        network = self.network_.to(device).eval()
        out: list[np.ndarray] = []
        for items, counts in _item_chunks(arrays, self._items, max_items):
            errors = self._item_errors(network, torch.from_numpy(items).to(device)).double().cpu().numpy()
            out += np.split(errors, np.cumsum(counts)[:-1])
        return out

    def _layout(self, n_frames: int) -> tuple[np.ndarray, int]:
        """First clip frame of each item's target, and the target's width in frames.

        The network output is read frame-major (frame j's n_mels values contiguous). Default: stacked
        frames (item t reconstructs frames t .. t + n_frames - 1, as in the AE).
        """
        return np.arange(self._count(n_frames)), self.n_frames

    @torch.inference_mode()
    def reconstruct(self, logmel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The clip as the network rebuilds it, [n_mels, frames], and the error per frame, [frames].

        Overlapping reconstructions of a frame are averaged. A frame's error is the mean, over the items
        covering it, of that item's squared error on the frame plus the item's error beyond its per-frame
        errors (e.g. a KL term), spread evenly: so each item's frame errors average to its item error and
        the line is on the scale of the clip score. Frames that no item reconstructs are NaN.
        """
        self._check_fitted()
        logmel = np.asarray(logmel, dtype=np.float32)
        n_mels, n_frames = logmel.shape
        network = self.network_.cpu().eval()
        batch = torch.from_numpy(self._items(logmel))
        inputs, targets = self._inputs_targets(batch)
        starts, width = self._layout(n_frames)
        outputs = network(inputs).reshape(len(batch), width, n_mels).double()
        frame_errors = ((outputs - targets.reshape(outputs.shape).double()) ** 2).mean(dim=2)
        item_errors = self._item_errors(network, batch).double()
        frame_errors += (item_errors - frame_errors.mean(dim=1))[:, None]
        spectrogram = overlap_average(outputs.transpose(1, 2).numpy(), starts, n_frames)
        errors = overlap_average(frame_errors[:, None, :].numpy(), starts, n_frames)[0]
        return spectrogram, errors

    def _extra_state(self) -> dict[str, Any]:
        return {"n_mels_in": self.n_mels_in_}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._build_network(int(state["n_mels_in"]))


def split_clips(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Clip-level hold-out (items of one clip never straddle training and validation); the validation
    clips also fit the threshold, so there are at least a few dozen of them where the data allows."""
    n_val = held_out_count(n, fraction)
    order = np.random.default_rng(seed).permutation(n)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def overlap_average(parts: np.ndarray, starts: np.ndarray, n_frames: int) -> np.ndarray:
    """Average of overlapping parts [n, rows, width] placed at ``starts`` on ``n_frames`` columns.

    Columns past ``n_frames`` (a padded short clip) are dropped; uncovered columns are NaN.
    """
    total = np.zeros((parts.shape[1], n_frames), dtype=np.float64)
    count = np.zeros(n_frames, dtype=np.float64)
    for part, start in zip(parts, starts, strict=True):
        stop = min(int(start) + parts.shape[2], n_frames)
        total[:, start:stop] += part[:, : stop - start]
        count[start:stop] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


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
