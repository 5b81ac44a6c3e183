"""Mahalanobis scoring of an autoencoder's reconstruction-error vectors (the DCASE2023/2024 baseline's).

The official baseline does not score a clip by its mean squared error alone: it estimates the covariance
of the error vectors (input minus reconstruction, one per stacked-frame item) of the normal training
items, once over the source-domain and once over the target-domain training clips, and scores an item by
the squared Mahalanobis norm of its error vector under that covariance. The clip score is the mean over
its items; "selective Mahalanobis" takes the smaller of the source and the target clip score. The error
vector itself is not centred (a systematic error counts), only the covariance estimate is.

Here the banks are :class:`asdkit.scoring.embedding.DomainBanks` of :class:`ErrorCovariance` states, one
per (section, domain), or per section with ``pooled`` (plain ``mahalanobis``). Each bank's covariance is
estimated from at most ``MAX_ITEMS`` error vectors (an equal, evenly spaced share from each clip), so the
memory stays bounded when the training set grows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from asdkit.scoring.embedding import Arrays, DomainBanks

#: Error vectors a bank's covariance is estimated from, at most.
MAX_ITEMS = 16384
ERROR_SCORES = ("mse", "mahalanobis", "selective_mahalanobis")


@dataclass(frozen=True)
class ErrorCovariance:
    """Precision of the error vectors' (centred, slightly ridged) covariance; score = d' P d, d uncentred."""

    kind: ClassVar[str] = "error_mahalanobis"
    ridge: float = 1e-6

    def fit(self, E: np.ndarray) -> Arrays:
        E = np.asarray(E, dtype=np.float64)
        centred = E - E.mean(axis=0)
        cov = centred.T @ centred / max(len(E) - 1, 1)
        level = float(np.mean(np.diag(cov))) or 1.0
        cov += self.ridge * level * np.eye(len(cov))
        return {"precision": np.linalg.pinv(cov, hermitian=True)}

    def score(self, state: Arrays, E: np.ndarray) -> np.ndarray:
        d = np.asarray(E, dtype=np.float64)
        return ((d @ state["precision"]) * d).sum(axis=1)


def item_share(counts: Sequence[int], keys: Sequence[object]) -> list[np.ndarray]:
    """Evenly spaced item indices per clip, so that each bank (key) gets at most ``MAX_ITEMS`` items."""
    per_key = {k: list(keys).count(k) for k in set(keys)}
    out = []
    for n, key in zip(counts, keys, strict=True):
        share = max(1, MAX_ITEMS // per_key[key])
        out.append(np.unique(np.linspace(0, n - 1, min(n, share)).round().astype(np.int64)))
    return out


def fit_error_banks(
    errors: Callable[[int, np.ndarray], np.ndarray],
    counts: Sequence[int],
    sections: Sequence[str],
    domains: Sequence[str],
    mode: str,
) -> DomainBanks:
    """Banks from the training clips' error vectors; ``errors(i, items)`` gives clip i's error vectors
    [len(items), dim] for those item indices (only the chosen share of each clip is computed).
    ``mode``: ``mahalanobis`` (one bank per section) or ``selective_mahalanobis`` (per section and domain).
    """
    banks = DomainBanks(ErrorCovariance(), "min" if mode == "selective_mahalanobis" else "pooled")
    keys = [
        (s, d if mode == "selective_mahalanobis" else "all") for s, d in zip(sections, domains, strict=True)
    ]
    chosen = item_share(counts, keys)
    rows = [errors(i, c) for i, c in enumerate(chosen)]
    item_sections = [s for s, r in zip(sections, rows, strict=True) for _ in range(len(r))]
    item_domains = [d for d, r in zip(domains, rows, strict=True) for _ in range(len(r))]
    return banks.fit(np.concatenate(rows), item_sections, item_domains)


def clip_scores(banks: DomainBanks, errors: Sequence[np.ndarray], sections: Sequence[str]) -> np.ndarray:
    """Each clip's mean item score under each of its section's banks, then the minimum over those banks
    (a clip of an unknown section: over every bank)."""
    bank_sections = [s for s, _ in banks.keys]
    counts = [len(e) for e in errors]
    per_item = banks.score_banks(np.concatenate(errors))  # one product per bank for all clips
    out = np.empty(len(errors))
    for i, (rows, section) in enumerate(
        zip(np.split(per_item, np.cumsum(counts)[:-1]), sections, strict=True)
    ):
        mine = [j for j, s in enumerate(bank_sections) if s == section] or list(range(len(bank_sections)))
        out[i] = rows.mean(axis=0)[mine].min()
    return out
