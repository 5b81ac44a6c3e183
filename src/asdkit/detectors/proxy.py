"""Proxy outliers for density training (Primus et al., DCASE2021): batches pairing normal items with proxies.

One network models every section of a machine type, the section being its condition. A proxy for an item
of section s is a sound that is *not* section s's normal sound, evaluated under condition s: an item of
another section of the same batch ("other sections"), or an item of another machine type ("other
machines"). Training then ranks each normal item's NLL below its proxy's by a margin.

Each batch is ``(x, section, partner, x_machines)``: ``partner[i]`` indexes an item of the same batch whose
section differs from ``section[i]`` (-1 when the batch has none), ``x_machines`` holds other machine types'
items (row i is paired with item i; zero rows when unused). Both come from :class:`ItemStream`, so only one
chunk of clips per stream is in memory at a time.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset

from asdkit.detectors.frames import ItemStream

PROXY_MODES: tuple[str, ...] = ("none", "other_sections", "other_sections_and_machines", "other_machines")
ProxyBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def partner_indices(sections: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each item, a uniformly drawn item of another section in the same batch; -1 where there is none."""
    sections = np.asarray(sections)
    partner = np.full(len(sections), -1, dtype=np.int64)
    for s in np.unique(sections):
        mine = np.flatnonzero(sections == s)
        others = np.flatnonzero(sections != s)
        if len(others):
            partner[mine] = others[rng.integers(0, len(others), size=len(mine))]
    return partner


def _cycle(stream: ItemStream) -> Iterator[torch.Tensor]:
    """Pass after pass over ``stream`` (each reshuffled); stops only if it yields nothing at all."""
    while True:
        empty = True
        for batch in stream:
            empty = False
            yield batch[0] if isinstance(batch, tuple) else batch
        if empty:
            return


class ProxyBatches(IterableDataset):
    """Normal items with their section ids, paired with proxies (see the module docstring).

    ``normal`` must carry section labels; ``machines`` (other machine types' clips) is cycled, so an epoch
    is one pass over the normal items whatever the number of proxy clips.
    """

    def __init__(
        self,
        normal: ItemStream,
        machines: ItemStream | None = None,
        other_sections: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if normal.labels is None:
            raise ValueError("the normal stream must carry section labels")
        self.normal = normal
        self.machines = machines
        self.other_sections = other_sections
        self.seed = seed
        self._passes = 0

    def __len__(self) -> int:
        return len(self.normal)

    def __iter__(self) -> Iterator[ProxyBatch]:
        rng = np.random.default_rng([self.seed, self._passes, 7])
        self._passes += 1
        proxies = _cycle(self.machines) if self.machines is not None else None
        for x, sections in self.normal:  # type: ignore[misc]
            if self.other_sections:
                partner = torch.from_numpy(partner_indices(sections.numpy(), rng))
            else:
                partner = torch.full((len(x),), -1, dtype=torch.int64)
            x_machines = x.new_zeros((0, x.shape[1]))
            if proxies is not None:
                x_machines = next(proxies, x_machines)[: len(x)]
            yield x, sections, partner, x_machines
