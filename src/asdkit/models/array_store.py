"""Named numpy arrays kept as buffers of an nn.Module, so that they travel in a model's weights file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn


class ArrayStore(nn.Module):
    """Float64 buffers by name (memory banks, covariances, normalisation statistics).

    Built either from arrays (after fitting) or from shapes alone (zeros, before ``load_state_dict``
    fills them when a saved model is loaded). Names must be valid buffer names (no dots).
    """

    def __init__(self, shapes: Mapping[str, Sequence[int]]) -> None:
        super().__init__()
        self.names = list(shapes)
        for name, shape in shapes.items():
            self.register_buffer(name, torch.zeros(tuple(shape), dtype=torch.float64))

    @classmethod
    def of(cls, arrays: Mapping[str, np.ndarray]) -> ArrayStore:
        store = cls({name: np.shape(a) for name, a in arrays.items()})
        for name, a in arrays.items():
            getattr(store, name).copy_(torch.from_numpy(np.asarray(a, dtype=np.float64)))
        return store

    def shapes(self) -> dict[str, list[int]]:
        return {name: list(getattr(self, name).shape) for name in self.names}

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name).detach().cpu().numpy() for name in self.names}
