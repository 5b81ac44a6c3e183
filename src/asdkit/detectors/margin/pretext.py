"""Self-supervised pretext classes for the angular-margin classifiers (``arcface``, ``adacos``).

A machine type with one section and no attributes gives a classifier nothing to tell apart; few sections
give it an easy task and a poor embedding. Pretext tasks add artificial classes, built per training batch
from the snippets themselves, so the network must learn the structure of the normal sound to solve them:

- ``band_shift``: each snippet with its mel bands rolled up, and rolled down, by a few bands (two classes).
- ``stats_exchange``: a snippet keeps its own normalised time-frequency pattern but takes a partner
  snippet's per-band mean and standard deviation over time (its level and spread in every band), in the
  spirit of the statistics exchange of recent DCASE systems: the network must notice when a sound's
  fine structure and its band statistics do not belong together.
- ``feature_exchange``: a snippet joined with a partner's other feature (Wilkinghoff, "Self-supervised
  learning for anomalous sound detection", ICASSP 2024, FeatEx). In a two-branch network the partner's
  clip spectrum replaces the snippet's own (the branches meet only at the embedding, so this swaps one
  branch's embedding, as FeatEx does); with log-mel alone, the partner's upper half of the mel bands.

Partners come from another class of the batch where there is one (else another snippet). An exchanged
item is labelled as FeatEx labels it: half "own part of class i", half "partner part of class j", two
blocks of extra classes (2C for C classes), so the classifier learns which class each part came from.

The items are made by plain numpy functions on one batch; :func:`extend_batch` and :class:`Exchanged`
are the glue to a training step's tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from asdkit.errors import ModelError

#: The values of the detectors' ``pretext`` parameter. ``auto``: band shift when the clips form one class,
#: nothing otherwise (the behaviour before the parameter existed); ``all``: the three tasks together.
PRETEXTS = ("auto", "none", "band_shift", "stats_exchange", "feature_exchange", "all")
TASKS = ("band_shift", "stats_exchange", "feature_exchange")
#: The band-shift classes: the snippets with their mel bands rolled up or down.
SHIFTED_UP, SHIFTED_DOWN = ("band-shifted", "up"), ("band-shifted", "down")
BAND_SHIFT = 3
#: A band whose spread is below this (dB) is not rescaled by a statistics exchange (no division by ~0).
MIN_STD = 1e-3


def resolve(pretext: str, n_classes: int) -> tuple[str, ...]:
    """The tasks ``pretext`` stands for when the training clips form ``n_classes`` classes."""
    if pretext not in PRETEXTS:
        raise ModelError(f"pretext must be one of {', '.join(PRETEXTS)}, got {pretext!r}")
    if pretext == "auto":
        return ("band_shift",) if n_classes == 1 else ()
    if pretext == "all":
        return TASKS
    return () if pretext == "none" else (pretext,)


def pretext_classes(tasks: tuple[str, ...], classes: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """The class keys the tasks add after ``classes``, in the order :func:`pretext_items` labels them."""
    added: list[tuple[str, ...]] = []
    for task in tasks:
        if task == "band_shift":
            added += [SHIFTED_UP, SHIFTED_DOWN]
        else:
            added += [(task, part, *key) for part in ("own", "partner") for key in classes]
    return added


@dataclass(frozen=True)
class PretextItems:
    """One task's extra items of a batch: label ``labels`` with weight ``share``, ``partner_labels`` with
    ``1 - share`` (``share`` 1: a plain class)."""

    snippets: np.ndarray  # [m, frames, n_mels]
    labels: np.ndarray  # [m] int64
    partner_labels: np.ndarray  # [m] int64
    share: float
    spectra: np.ndarray | None  # [m, n_bins], two-branch networks only


def partners(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each item, the index of a random other item of another class (else of any other item)."""
    n = len(labels)
    out = np.arange(n)
    for i in range(n):
        candidates = np.flatnonzero(labels != labels[i])
        if len(candidates) == 0:
            candidates = np.delete(np.arange(n), i)
        if len(candidates):
            out[i] = candidates[rng.integers(len(candidates))]
    return out


def band_shift(snippets: np.ndarray, shift: int = BAND_SHIFT) -> tuple[np.ndarray, np.ndarray]:
    """The snippets [B, frames, n_mels] with their bands rolled up, then down: [2B, ...], and the direction
    of each (0 up, 1 down)."""
    shifted = np.concatenate([np.roll(snippets, shift, axis=-1), np.roll(snippets, -shift, axis=-1)])
    return shifted, np.repeat(np.arange(2), len(snippets))


def stats_exchange(snippets: np.ndarray, partner: np.ndarray) -> np.ndarray:
    """Each snippet's per-band pattern with its partner snippet's per-band mean and std over time."""
    x = np.asarray(snippets, dtype=np.float64)
    mean, std = x.mean(axis=1, keepdims=True), x.std(axis=1, keepdims=True)
    pattern = (x - mean) / np.maximum(std, MIN_STD)
    return (pattern * std[partner] + mean[partner]).astype(snippets.dtype)


def feature_exchange(
    snippets: np.ndarray, partner: np.ndarray, spectra: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Each snippet joined with its partner's other feature: the partner's clip spectrum if there are
    spectra (the snippet unchanged), else the partner's upper half of the mel bands."""
    if spectra is not None:
        return snippets.copy(), spectra[partner]
    half = snippets.shape[-1] // 2
    return np.concatenate([snippets[..., :half], snippets[partner][..., half:]], axis=-1), None


def pretext_items(
    tasks: tuple[str, ...],
    snippets: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    rng: np.random.Generator,
    spectra: np.ndarray | None = None,
) -> list[PretextItems]:
    """The extra items of each task for one batch of snippets of classes ``labels`` (< ``n_classes``).

    Class indices follow :func:`pretext_classes`: the tasks' classes come after the ``n_classes`` real ones.
    """
    labels = np.asarray(labels, dtype=np.int64)
    out = []
    offset = n_classes
    for task in tasks:
        if task == "band_shift":
            x, direction = band_shift(snippets)
            side = None
            if spectra is not None:  # the same relative shift of the frequency axis
                shift = max(1, round(BAND_SHIFT * spectra.shape[-1] / snippets.shape[-1]))
                side, _ = band_shift(spectra[:, None, :], shift)
                side = side[:, 0]
            y = offset + direction
            out.append(PretextItems(x, y, y, 1.0, side))
            offset += 2
            continue
        partner = partners(labels, rng)
        if task == "stats_exchange":
            x, side = stats_exchange(snippets, partner), spectra
        else:
            x, side = feature_exchange(snippets, partner, spectra)
        own, other = offset + labels, offset + n_classes + labels[partner]
        out.append(PretextItems(x, own, other, 0.5, side))
        offset += 2 * n_classes
    return out


# -- the glue to a training step ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Exchanged:
    """A batch's exchanged items, each counted once under its own part's class and once under its partner
    part's (the half-and-half label, in one call of the head: AdaCos adapts its scale on each call)."""

    snippets: torch.Tensor
    labels: torch.Tensor
    partner_labels: torch.Tensor
    spectra: torch.Tensor | None

    def loss(
        self,
        network: nn.Module,
        x: torch.Tensor,
        spectra: torch.Tensor | None,
        y_a: torch.Tensor,
        y_b: torch.Tensor,
        lam: float,
    ) -> torch.Tensor:
        """The head's loss over the batch (labels ``y_a``/``y_b`` mixed ``lam``) and these items; one forward
        pass, so batch normalisation sees both together."""
        n = len(x)
        side = None if spectra is None or self.spectra is None else torch.cat([spectra, self.spectra])
        embedding = network(torch.cat([x, self.snippets]), side)
        embedding = torch.cat([embedding, embedding[n:]])
        labels = torch.cat([self.labels, self.partner_labels])
        return network.head.loss(embedding, torch.cat([y_a, labels]), torch.cat([y_b, labels]), lam)


def extend_batch(
    tasks: tuple[str, ...],
    x: torch.Tensor,
    y: torch.Tensor,
    spectra: torch.Tensor | None,
    n_classes: int,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, Exchanged | None]:
    """A training batch with the tasks' plain-class items appended (to be mixed up like the rest), and its
    exchanged items apart (None without any)."""
    if not tasks:
        return x, y, spectra, None
    side = None if spectra is None else spectra.detach().cpu().numpy()
    items = pretext_items(tasks, x.detach().cpu().numpy(), y.cpu().numpy(), n_classes, rng, side)

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, device=x.device)

    exchanged = [i for i in items if i.share < 1]
    for item in (i for i in items if i.share == 1):
        x, y = torch.cat([x, tensor(item.snippets)]), torch.cat([y, tensor(item.labels)])
        if spectra is not None and item.spectra is not None:
            spectra = torch.cat([spectra, tensor(item.spectra)])
    if not exchanged:
        return x, y, spectra, None
    return (
        x,
        y,
        spectra,
        Exchanged(
            tensor(np.concatenate([i.snippets for i in exchanged])),
            tensor(np.concatenate([i.labels for i in exchanged])),
            tensor(np.concatenate([i.partner_labels for i in exchanged])),
            None if spectra is None else tensor(np.concatenate([i.spectra for i in exchanged])),
        ),
    )
