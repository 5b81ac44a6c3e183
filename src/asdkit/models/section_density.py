"""Section-conditioned density networks of the ``density_ae``, ``made`` and ``maf`` detectors.

:class:`SectionDensity` standardises stacked log-mel vectors and gives each one's NLL per dimension under
its section's condition, with a core of :class:`ConditionalAutoencoder`, :class:`asdkit.models.made.MADE`
or :class:`asdkit.models.maf.MAF`.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from asdkit.models.maf import MAF


class ConditionalAutoencoder(nn.Module):
    """Dense autoencoder whose hidden layers each add a learned vector of the section (not masked).

    No batch norm: proxy samples share batches with normal ones and must not shift normalisation statistics.
    """

    def __init__(
        self, n_features: int, hidden: int, bottleneck: int, n_hidden: int, n_conditions: int
    ) -> None:
        super().__init__()
        sizes = [hidden] * n_hidden + [bottleneck] + [hidden] * n_hidden
        dims = [n_features, *sizes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        self.conditions = nn.ModuleList(nn.Embedding(n_conditions, b) for b in sizes)
        for emb in self.conditions:
            nn.init.normal_(emb.weight, std=0.01)
        self.output = nn.Linear(dims[-1], n_features)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        for layer, cond in zip(self.layers, self.conditions, strict=True):
            x = torch.relu(layer(x) + cond(c))
        return self.output(x)


class SectionDensity(nn.Module):
    """Standardises the vectors, then gives each item's NLL per dimension under condition ``c``."""

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, core: nn.Module, n_features: int) -> None:
        super().__init__()
        self.core = core
        self.n_features = n_features
        self.register_buffer("shift", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))

    def forward(self, x: torch.Tensor, c: torch.Tensor, stat_rows: int | None = None) -> torch.Tensor:
        z = (x - self.shift) / self.scale
        if isinstance(self.core, ConditionalAutoencoder):
            return ((self.core(z, c) - z) ** 2).mean(dim=1)
        if isinstance(self.core, MAF):
            return -self.core.log_prob(z, c, stat_rows) / self.n_features
        return -self.core.log_prob(z, c) / self.n_features
