"""Section-conditioned density estimators with proxy outliers (CP-JKU, Primus, Zwifl & Widmer, DCASE2021).

One network per machine type models 5-frame log-mel vectors of all its sections at once, the section being
the condition. Proxy outliers teach each section's condition to give *lower* likelihood to sounds that are
not that section's normal sound (other sections' items, other machine types' items). The clip score is the
mean NLL of its vectors under its own section's condition, z-normalised with the scores of that section's
held-out normal clips (all its clips when too few are held out), so sections share one threshold.

Detectors and the original system's flags (``train density --architecture ... --machine_type fan``):

- ``--architecture AE`` / ``MADE`` / ``MAF`` -> detector ``density_ae`` / ``made`` / ``maf``;
- ``--n_gaussians 1`` -> ``n_gaussians=1`` (``made``: mixture per dimension; ``maf``: mixture base);
- ``--proxy_outliers none|other_sections|other_sections_and_machines`` -> ``proxy_outliers=`` the same
  value (plus ``"other_machines"``: other machine types only);
- ``--proxy_outlier_lambda 1.0`` -> ``proxy_lambda=1.0``; ``--margin 0.5`` -> ``margin=0.5``;
- ``--machine_type fan`` -> ``asdkit run --machine fan`` (one model per machine type);
- ``--debug`` -> ``asdkit run --debug``.

Loss per batch: mean NLL of the normal items (of their own section) + ``proxy_lambda`` * mean over
(normal, proxy) pairs of max(0, margin - (NLL_proxy - NLL_normal)), the proxy evaluated under the normal
item's condition. NLLs are per input dimension (nats/dim; the AE's is its mean squared error), so that
``margin`` means the same whatever the vector size. Inputs are standardised per mel band with training
statistics (buffers of the network); this shifts every NLL by the same constant, which the per-section
z-score removes anyway. The learning rate is constant, then ramps linearly to 0 over ``rampdown_length``
epochs from epoch ``rampdown_start`` (``rampdown_length=0``: no ramp-down). Layer sizes and learning
rates are asdkit's defaults, not taken from the original.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from asdkit.detectors.base import ClipFeatures
from asdkit.detectors.deep import DeepDetector
from asdkit.detectors.frames import ItemStream
from asdkit.detectors.proxy import PROXY_MODES, ProxyBatches
from asdkit.detectors.reconstruction.family import split_clips
from asdkit.detectors.registry import register
from asdkit.detectors.schedule import RampDown
from asdkit.detectors.sections import SectionIndex
from asdkit.detectors.tags import DetectorTags
from asdkit.detectors.windows import StackedFrames
from asdkit.models.made import MADE
from asdkit.models.maf import MAF
from asdkit.models.scaling import band_statistics
from asdkit.models.section_density import ConditionalAutoencoder, SectionDensity

log = logging.getLogger(__name__)

#: Proxy modes that need clips of other machine types (the fit bundle's ``proxy``).
MACHINE_MODES = ("other_sections_and_machines", "other_machines")
SECTION_MODES = ("other_sections", "other_sections_and_machines")


def proxy_loss(
    network: nn.Module, batch: tuple[torch.Tensor, ...], proxy_lambda: float, margin: float
) -> torch.Tensor:
    """Mean NLL of the normal items + lambda * margin ranking of (normal, proxy) pairs (module docstring).

    One forward pass over normal items, other-section partners and other-machine proxies, the proxies
    under their normal item's condition; flow batch norms take their statistics from the normal rows only.
    """
    x, sections, partner, x_machines = batch
    valid = partner >= 0
    n_pairs_sec, n_mach = int(valid.sum()), len(x_machines)
    if n_pairs_sec == 0 and n_mach == 0:
        return network(x, sections).mean()
    inputs = torch.cat([x, x[partner[valid]], x_machines])
    conditions = torch.cat([sections, sections[valid], sections[:n_mach]])
    nll = network(inputs, conditions, len(x))
    normal = nll[: len(x)]
    pair_normal = torch.cat([normal[valid], normal[:n_mach]])
    pair_proxy = nll[len(x) :]
    ranking = torch.relu(margin - (pair_proxy - pair_normal)).mean()
    return normal.mean() + proxy_lambda * ranking


class SectionDensityDetector(DeepDetector):
    """Shared machinery of ``density_ae``, ``made`` and ``maf``: sections as conditions, proxies, z-scores.

    Proxy clips of *other machine types* come in the fit bundle's ``X.proxy`` (a model covers one machine
    type): the tags ask for them when ``proxy_outliers`` needs them. They are not saved with the model.

    Common parameters: ``proxy_outliers`` ("none", "other_sections", "other_sections_and_machines",
    "other_machines"), ``proxy_lambda`` (weight of the ranking loss), ``margin`` (nats per dimension),
    ``rampdown_start``/``rampdown_length`` (epochs of the learning-rate ramp-down), and the usual training
    knobs; ``accelerator``/``devices``/``strategy`` go to Lightning's Trainer (GPU when there is one).
    """

    choices: ClassVar[dict[str, tuple[str, ...]]] = {"proxy_outliers": PROXY_MODES}

    def __init__(
        self,
        n_frames: int = 5,
        proxy_outliers: str = "none",
        proxy_lambda: float = 1.0,
        margin: float = 0.5,
        rampdown_start: int = 70,
        rampdown_length: int = 30,
        validation_fraction: float = 0.1,
        **trainer: Any,
    ) -> None:
        super().__init__(**trainer)
        self.n_frames = n_frames
        self.proxy_outliers = proxy_outliers
        self.proxy_lambda = proxy_lambda
        self.margin = margin
        self.rampdown_start = rampdown_start
        self.rampdown_length = rampdown_length
        self.validation_fraction = validation_fraction

    def _core(self, n_features: int, n_conditions: int) -> nn.Module:
        raise NotImplementedError

    # -- proxies ------------------------------------------------------------------------------------------
    def tags(self) -> DetectorTags:
        mode = self.proxy_outliers
        proxies = {"machines"} if mode in MACHINE_MODES else set()
        proxies |= {"sections"} if mode in SECTION_MODES else set()
        tags = replace(super().tags(), proxies=frozenset(proxies), sections="condition")
        return replace(tags, min_frames=self._windows().min_frames)

    def _proxy_mode(self, X: ClipFeatures, n_sections: int) -> str:
        """The mode actually trained: machine modes fall back to other sections without proxy clips."""
        mode = self.proxy_outliers
        if mode not in PROXY_MODES:
            raise ValueError(
                f"{self.name}: proxy_outliers must be one of {', '.join(PROXY_MODES)}; got {mode!r}"
            )
        if mode in MACHINE_MODES:
            other = X.proxy
            if other is None or len(other) == 0:
                log.warning(
                    "%s: proxy_outliers=%s but no clips of other machine types were given; "
                    "using other sections as proxy outliers",
                    self.name,
                    mode,
                )
                mode = "other_sections"
        if mode in SECTION_MODES and n_sections < 2:
            log.warning("%s: only one section in the training clips, so no other-section proxies", self.name)
            mode = "other_machines" if mode == "other_sections_and_machines" else "none"
        return mode

    # -- items and network --------------------------------------------------------------------------------
    def _windows(self) -> StackedFrames:
        return StackedFrames(self.n_frames)

    def _build_network(self, n_mels: int, sections: Sequence[str]) -> None:
        torch.manual_seed(self.seed)
        self.n_mels_in_ = n_mels
        self.sections_ = list(sections)
        n_features = n_mels * self.n_frames
        self.network_ = SectionDensity(self._core(n_features, len(self.sections_)), n_features)

    def _section_ids(self, X: ClipFeatures) -> list[int]:
        return SectionIndex(self.sections_).of((c.section for c in X.clips), self.name)

    # -- training -----------------------------------------------------------------------------------------
    def _training_data(self, X: ClipFeatures) -> tuple[ProxyBatches, ProxyBatches | None]:
        sections = sorted({c.section for c in X.clips})
        mode = self._proxy_mode(X, len(sections))
        self.proxy_outliers_used_ = mode
        self._build_network(X.config.n_mels, sections)
        shift, scale = band_statistics(X.arrays, per_band=True)
        self.network_.shift.copy_(torch.from_numpy(np.tile(shift, self.n_frames)))
        self.network_.scale.copy_(torch.from_numpy(np.tile(scale, self.n_frames)))
        labels = self._section_ids(X)
        train_idx, val_idx = split_clips(len(X), self.validation_fraction, self.seed)
        self._split = train_idx, val_idx, labels  # not saved: _fitted's section statistics need it

        def stream(idx: Sequence[int], shuffle: bool) -> ItemStream:
            return ItemStream(
                [X.arrays[i] for i in idx],
                self._items,
                self._count,
                self.batch_size,
                shuffle=shuffle,
                seed=self.seed,
                labels=[labels[i] for i in idx],
            )

        machines = None
        if mode in MACHINE_MODES and X.proxy is not None:
            other = X.proxy
            machines = ItemStream(
                list(other.arrays),
                self._items,
                self._count,
                self.batch_size,
                seed=self.seed + 1,
                labels=[-1] * len(other),
            )
        train = ProxyBatches(stream(train_idx, True), machines, mode in SECTION_MODES, self.seed)
        val = ProxyBatches(stream(val_idx, False)) if val_idx else None  # val_loss: plain NLL
        return train, val

    def _loss(self, network: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return proxy_loss(network, batch, self.proxy_lambda, self.margin)

    def _lr_lambda(self) -> RampDown:
        return RampDown(self.rampdown_start, self.rampdown_length)

    def _fitted(self, X: ClipFeatures, train: Any) -> None:
        """Per-section z-score statistics from the held-out clips' NLLs (all clips' when too few)."""
        train_idx, val_idx, labels = self._split
        basis, held_out = _held_out_basis(train_idx, val_idx, labels, len(self.sections_))
        self.section_stats_basis_ = "held_out" if held_out else "training"
        held = X.subset(basis)
        raw = self.clip_nll(held)
        ids = np.asarray([labels[i] for i in basis])
        self.section_stats_: dict[str, tuple[float, float]] = {}
        for i, s in enumerate(self.sections_):
            values = raw[ids == i]
            std = float(values.std()) if len(values) > 1 else 0.0
            self.section_stats_[s] = (float(values.mean()), std if std > 1e-12 else 1.0)
        self._held_out_idx = basis if held_out else []  # not saved: only the threshold needs it

    # -- scoring ------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def clip_nll(self, X: ClipFeatures, max_items: int = 8192) -> np.ndarray:
        """Mean NLL per dimension of each clip's vectors under its section's condition (not normalised)."""
        ids = self._section_ids(X)
        device = self.scoring_device()
        network = self.network_.to(device).eval()
        out: list[float] = []
        pending: list[tuple[np.ndarray, int]] = []

        def flush() -> None:
            items = np.concatenate([p[0] for p in pending])
            conds = np.concatenate([np.full(len(p[0]), p[1], dtype=np.int64) for p in pending])
            nll = network(torch.from_numpy(items).to(device), torch.from_numpy(conds).to(device))
            counts = [len(p[0]) for p in pending]
            out.extend(float(v.mean()) for v in np.split(nll.double().cpu().numpy(), np.cumsum(counts)[:-1]))
            pending.clear()

        for array, cond in zip(X.arrays, ids, strict=True):
            pending.append((self._items(np.asarray(array, dtype=np.float32)), cond))
            if sum(len(p[0]) for p in pending) >= max_items:
                flush()
        if pending:
            flush()
        return np.asarray(out, dtype=np.float64)

    def _normalise(self, raw: np.ndarray, ids: np.ndarray) -> np.ndarray:
        stats = np.array([self.section_stats_[s] for s in self.sections_], dtype=np.float64)
        return (raw - stats[ids, 0]) / stats[ids, 1]

    def _score(self, X: ClipFeatures) -> np.ndarray:
        return self._normalise(self.clip_nll(X), np.asarray(self._section_ids(X)))

    # -- persistence --------------------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        return {
            "n_mels_in": self.n_mels_in_,
            "sections": self.sections_,
            "section_mean": {s: m for s, (m, _) in self.section_stats_.items()},
            "section_std": {s: sd for s, (_, sd) in self.section_stats_.items()},
            "proxy_outliers_used": getattr(self, "proxy_outliers_used_", self.proxy_outliers),
            "section_stats_basis": self.section_stats_basis_,
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._build_network(int(state["n_mels_in"]), [str(s) for s in state["sections"]])
        self.section_stats_ = {
            s: (float(state["section_mean"][s]), float(state["section_std"][s])) for s in self.sections_
        }
        self.proxy_outliers_used_ = str(state.get("proxy_outliers_used", self.proxy_outliers))
        self.section_stats_basis_ = str(state["section_stats_basis"])


#: Held-out clips a section needs before its statistics (and the threshold) come from them.
MIN_HELD_OUT_PER_SECTION = 3


def _held_out_basis(
    train_idx: Sequence[int], val_idx: Sequence[int], labels: Sequence[int], n_sections: int
) -> tuple[list[int], bool]:
    """Clips to fit the per-section z-score and the threshold on, and whether they are held-out ones.

    Training clips score lower than unseen normal clips once the network fits them closely, and a threshold
    fitted to those scores flags nearly every test clip. So the held-out clips are used whenever every
    section has a few of them; otherwise all clips (the training ones included).
    """
    counts = np.bincount([labels[i] for i in val_idx], minlength=n_sections)
    if len(val_idx) and counts.min() >= MIN_HELD_OUT_PER_SECTION:
        return list(val_idx), True
    log.info(
        "density: fewer than %d held-out clips in some section; section statistics use training clips too",
        MIN_HELD_OUT_PER_SECTION,
    )
    return sorted([*train_idx, *val_idx]), False


@register
class MadeDetector(SectionDensityDetector):
    """MADE (or MADE-MoG with ``n_gaussians > 1``) conditioned on the section; score = mean NLL, z-scored."""

    name: ClassVar[str] = "made"

    def __init__(self, hidden: int = 512, n_hidden: int = 2, n_gaussians: int = 1, **params: Any) -> None:
        super().__init__(**params)
        self.hidden = hidden
        self.n_hidden = n_hidden
        self.n_gaussians = n_gaussians

    def _core(self, n_features: int, n_conditions: int) -> nn.Module:
        return MADE(
            n_features, [self.hidden] * self.n_hidden, self.n_gaussians, n_conditions, mask_seed=self.seed
        )


@register
class MafDetector(SectionDensityDetector):
    """Masked autoregressive flow of ``n_blocks`` conditional MADEs (reversals + batch norm between them),
    with a standard normal base or, with ``n_gaussians > 1``, a conditional MADE-MoG base."""

    name: ClassVar[str] = "maf"

    def __init__(
        self,
        n_blocks: int = 4,
        hidden: int = 512,
        n_hidden: int = 1,
        n_gaussians: int = 1,
        batch_norm: bool = True,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self.n_blocks = n_blocks
        self.hidden = hidden
        self.n_hidden = n_hidden
        self.n_gaussians = n_gaussians
        self.batch_norm = batch_norm

    def _core(self, n_features: int, n_conditions: int) -> nn.Module:
        return MAF(
            n_features,
            self.n_blocks,
            [self.hidden] * self.n_hidden,
            self.n_gaussians,
            n_conditions,
            batch_norm=self.batch_norm,
            mask_seed=self.seed,
        )


@register
class DensityAutoencoderDetector(SectionDensityDetector):
    """Section-conditioned dense autoencoder trained with the proxy ranking loss on its reconstruction error
    (CP-JKU's AE variant); the baseline's layer shape without batch norm. Not the ``ae`` baseline."""

    name: ClassVar[str] = "density_ae"

    def __init__(self, hidden: int = 128, bottleneck: int = 8, n_hidden: int = 4, **params: Any) -> None:
        super().__init__(**params)
        self.hidden = hidden
        self.bottleneck = bottleneck
        self.n_hidden = n_hidden

    def _core(self, n_features: int, n_conditions: int) -> nn.Module:
        return ConditionalAutoencoder(n_features, self.hidden, self.bottleneck, self.n_hidden, n_conditions)
