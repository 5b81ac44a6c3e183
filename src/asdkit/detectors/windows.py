"""How a clip's log-mel array [n_mels, frames] is cut into a network's items: one module for every family.

- :class:`StackedFrames`: every position's ``n_frames`` consecutive frames as one vector (the dense AE,
  VAE, IDNN and density models; :func:`asdkit.features.logmel.stack_frames`);
- :class:`Patches`: ``frames``-frame windows every ``hop`` frames plus one flush with the clip's end, as
  [n, frames, n_mels] (the conv AE's patches, the section and margin classifiers' snippets); a clip shorter
  than one window is repeated (numpy "wrap" padding) up to one.

Each knows its item count from the number of frames alone (``count``), so training streams size their
epochs without reading the clips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from asdkit.features.logmel import stack_frames


class Windows(Protocol):
    def items(self, logmel: np.ndarray) -> np.ndarray: ...

    def count(self, n_frames: int) -> int: ...

    @property
    def min_frames(self) -> int: ...


@dataclass(frozen=True)
class StackedFrames:
    """Vectors of ``n_frames`` consecutive frames per position: [frames - n_frames + 1, n_mels * n_frames]."""

    n_frames: int

    def items(self, logmel: np.ndarray) -> np.ndarray:
        return stack_frames(logmel, self.n_frames)

    def count(self, n_frames: int) -> int:
        return n_frames - self.n_frames + 1

    @property
    def min_frames(self) -> int:
        return self.n_frames


def patch_starts(n_frames: int, frames: int, hop: int) -> np.ndarray:
    """First frame of each window: every ``hop`` frames, plus one flush with the end (every frame counts).

    A clip shorter than a window gives one window (its frames repeated, see :func:`patches`).
    """
    if n_frames <= frames:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, n_frames - frames + 1, hop)
    if starts[-1] != n_frames - frames:
        starts = np.append(starts, n_frames - frames)
    return starts


def patches(logmel: np.ndarray, frames: int, hop: int) -> np.ndarray:
    """Windows [n, frames, n_mels] at :func:`patch_starts` (frame-major); a short clip wraps up to one."""
    n_frames = logmel.shape[1]
    if n_frames < frames:
        logmel = np.pad(logmel, ((0, 0), (0, frames - n_frames)), mode="wrap")
    windows = np.lib.stride_tricks.sliding_window_view(logmel, frames, axis=1)
    starts = patch_starts(n_frames, frames, hop)
    return np.ascontiguousarray(windows[:, starts].transpose(1, 2, 0), dtype=np.float32)


@dataclass(frozen=True)
class Patches:
    """Overlapping ``frames``-frame windows every ``hop`` frames (:func:`patches`)."""

    frames: int
    hop: int

    def items(self, logmel: np.ndarray) -> np.ndarray:
        return patches(logmel, self.frames, self.hop)

    def count(self, n_frames: int) -> int:
        return len(patch_starts(n_frames, self.frames, self.hop)) if n_frames > 0 else 0

    def starts(self, n_frames: int) -> np.ndarray:
        return patch_starts(n_frames, self.frames, self.hop)

    @property
    def min_frames(self) -> int:
        return 1  # a shorter clip wraps round to one window
