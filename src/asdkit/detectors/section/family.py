"""Section classifiers: a network learns to tell a machine type's sections apart from log-mel snippets, and a
clip is anomalous when its own section is not recognised.

Shared by ``resnet_section`` (CP-JKU, DCASE2021) and ``mobilenet_section`` (the official 2021/2022
baseline). Training streams snippets from the feature cache with their labels. Options:

- proxy outliers: other machine types' normal clips, pushed to a uniform prediction (cross-entropy to the
  uniform distribution, weight ``proxy_lambda``); the fit bundle carries them (``ClipFeatures.proxy``);
- CCSA (Motiian et al. 2017): the contrastive semantic alignment loss on the L2-normalised embedding, over
  every source/target pair of snippets in a batch: same section pulled together (squared distance),
  different sections pushed at least ``margin`` apart (squared hinge), weight ``ccsa_weight``;
- fine-tuning from an earlier run directory or model folder (``init_from``), with a linear LR ramp-down;
- mixup (per-item Beta(``mixup``) mixing of snippets and of their target distributions) and
  SpecAugment-style time and frequency masks (filled with the band means);
- mixed precision (``precision``), several GPUs (``devices``, ``strategy`` go to Lightning).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from asdkit.data.manifest import TARGET
from asdkit.detectors.base import CONFIG_NAME, HELD_OUT_FRACTION, ClipFeatures, Detector, held_out_split
from asdkit.detectors.deep import DeepDetector
from asdkit.detectors.frames import ItemStream
from asdkit.detectors.params import ParamConflict
from asdkit.detectors.schedule import RampDown
from asdkit.detectors.sections import SectionIndex
from asdkit.detectors.tags import DetectorTags
from asdkit.detectors.windows import Patches
from asdkit.errors import DataError, ModelError
from asdkit.models.scaling import band_statistics
from asdkit.rundir import model_dir

log = logging.getLogger(__name__)

#: Training label of a proxy-outlier snippet; own snippets carry ``2 * section_index + is_target``.
PROXY = -1


def ccsa_loss(
    embedding: torch.Tensor, section: torch.Tensor, is_target: torch.Tensor, margin: float
) -> torch.Tensor:
    """Mean CCSA loss over all (source, target) pairs; zero when the batch lacks one of the domains."""
    z = F.normalize(embedding.float(), dim=1)
    source, target = z[~is_target], z[is_target]
    if len(source) == 0 or len(target) == 0:
        return embedding.sum() * 0.0
    distance = ((source[:, None, :] - target[None, :, :]) ** 2).sum(-1).add(1e-12).sqrt()
    same = section[~is_target][:, None] == section[is_target][None, :]
    pulled = distance**2
    pushed = F.relu(margin - distance) ** 2
    return 0.5 * torch.where(same, pulled, pushed).mean()


def mask_spans(x: torch.Tensor, fill: torch.Tensor, n_masks: int, max_width: int, axis: int) -> torch.Tensor:
    """SpecAugment-style masks: ``n_masks`` spans of 0..max_width along ``axis`` per item, set to ``fill``."""
    size = x.shape[axis]
    if n_masks <= 0 or max_width <= 0 or size == 0:
        return x
    positions = torch.arange(size, device=x.device)
    masked = torch.zeros(x.shape[0], size, dtype=torch.bool, device=x.device)
    for _ in range(n_masks):
        width = torch.randint(0, min(max_width, size) + 1, (x.shape[0], 1), device=x.device)
        start = (torch.rand(x.shape[0], 1, device=x.device) * (size - width + 1)).long()
        masked |= (positions >= start) & (positions < start + width)
    shape = [x.shape[0], 1, 1]
    shape[axis] = size
    return torch.where(masked.reshape(shape), fill.to(x.dtype), x)


@torch.no_grad()
def recalibrate_batchnorm(network: nn.Module, batches: Iterable[Any], device: torch.device) -> None:
    """Re-estimate BatchNorm statistics with the final weights (one forward pass, cumulative averages).

    Running averages lag behind weights that change fast, and a short training (a fine-tuning, a test's
    few steps) would otherwise score with statistics of earlier weights.
    """
    norms = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    network.to(device).train()
    for batch in batches:
        network(batch[0].to(device))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    network.cpu().eval()


class SectionClassifier(DeepDetector):
    """Base of the section classifiers; a subclass gives ``_network`` and ``_snippet_scores``."""

    #: parameters that fix the network's shape: fine-tuning requires them equal to the initial model's
    architecture: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        snippet_frames: int = 64,
        hop_frames: int = 32,
        proxy_outliers: bool = True,
        proxy_lambda: float = 0.5,
        init_from: str | None = None,
        ccsa_weight: float = 0.0,
        margin: float = 0.5,
        mixup: float = 0.0,
        time_masks: int = 0,
        time_mask_frames: int = 8,
        freq_masks: int = 0,
        freq_mask_bands: int = 8,
        rampdown_start: int = 0,
        rampdown_length: int = 0,
        **trainer: Any,
    ) -> None:
        super().__init__(**trainer)
        self.snippet_frames = snippet_frames
        self.hop_frames = hop_frames
        self.proxy_outliers = proxy_outliers
        self.proxy_lambda = proxy_lambda
        self.init_from = init_from
        self.ccsa_weight = ccsa_weight
        self.margin = margin
        self.mixup = mixup
        self.time_masks = time_masks
        self.time_mask_frames = time_mask_frames
        self.freq_masks = freq_masks
        self.freq_mask_bands = freq_mask_bands
        self.rampdown_start = rampdown_start
        self.rampdown_length = rampdown_length

    # -- what a model provides --------------------------------------------------------------------------
    def _network(self, n_classes: int, n_mels: int) -> nn.Module:
        raise NotImplementedError

    def _snippet_scores(self, log_probs: torch.Tensor) -> torch.Tensor:
        """Per-snippet anomaly scores from the log-probability of the clip's own section."""
        raise NotImplementedError

    # -- what it reads: sections as classes; other machine types' clips as proxy outliers ---------------
    def tags(self) -> DetectorTags:
        proxies = frozenset({"machines"}) if self.proxy_outliers and self.proxy_lambda > 0 else frozenset()
        return replace(super().tags(), proxies=proxies, sections="condition")

    # -- training -----------------------------------------------------------------------------------------
    def _build_network(self, n_mels: int, sections: Sequence[str]) -> None:
        torch.manual_seed(self.seed)
        self.n_mels_in_ = n_mels
        self.sections_ = list(sections)
        self.network_ = self._network(len(self.sections_), n_mels)

    def _training_data(self, X: ClipFeatures) -> tuple[ItemStream, None]:
        self._check_params()
        sections = sorted({c.section for c in X.clips})
        machine = X.clips[0].machine
        if len(sections) < 2:
            raise DataError(
                f"{self.name}: {machine} has only section {sections[0]}; a section classifier needs at "
                "least 2 sections (use a reconstruction detector such as ae)"
            )
        fit_idx, self._held_out_idx = held_out_split(X.clips, HELD_OUT_FRACTION, self.seed)
        X = X.subset(fit_idx)  # the held-out clips fit the threshold (Detector._training_scores)
        self._build_network(X.config.n_mels, sections)
        if self.init_from:
            self._load_initial_weights(Path(self.init_from), machine)
        else:
            mean, std = band_statistics(X.arrays)
            self.network_.scaler.set(torch.from_numpy(mean), torch.from_numpy(std))
        ids = SectionIndex(self.sections_).of((c.section for c in X.clips), self.name)
        arrays = list(X.arrays)
        labels = [2 * i + int(c.domain == TARGET) for i, c in zip(ids, X.clips, strict=True)]
        proxies = self._proxy_arrays(X.proxy, len(arrays))
        if self.tags().wants_machines and not proxies:
            log.warning("%s: %s: no proxy clips of other machine types; training without", self.name, machine)
        arrays += proxies
        labels += [PROXY] * len(proxies)
        stream = ItemStream(arrays, self._items, self._count, self.batch_size, seed=self.seed, labels=labels)
        return stream, None

    def _lr_lambda(self) -> RampDown:
        return RampDown(self.rampdown_start, self.rampdown_length)

    def _fitted(self, X: ClipFeatures, train: Any) -> None:
        recalibrate_batchnorm(self.network_, train, self.scoring_device())

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> None:
        """``init_from``: a model folder or a run directory with models (which machine type's model fits,
        and whether its network matches, is known at fit time)."""
        from asdkit.detectors.saved import models_problem

        if params["init_from"]:
            problem = models_problem(Path(params["init_from"]))
            if problem:
                raise ParamConflict("init_from", params["init_from"], problem)

    def _check_params(self) -> None:
        if self.snippet_frames < 1 or self.hop_frames < 1:
            raise ModelError(f"{self.name}: snippet_frames and hop_frames must be >= 1")
        if self.proxy_lambda < 0 or self.ccsa_weight < 0 or self.mixup < 0 or self.margin < 0:
            raise ModelError(f"{self.name}: proxy_lambda, ccsa_weight, mixup and margin must be >= 0")

    def _proxy_arrays(self, proxy: ClipFeatures | None, n_own: int) -> list[np.ndarray]:
        """A seeded subset of the proxy clips, at most as many as the machine's own clips."""
        if not self.tags().wants_machines or proxy is None or len(proxy) == 0:
            return []
        chosen = np.random.default_rng(self.seed).permutation(len(proxy))[:n_own]
        return [proxy.arrays[i] for i in sorted(chosen)]

    def _load_initial_weights(self, path: Path, machine: str) -> None:
        """Start from an earlier model of this machine type: a model folder or a run's models/<machine>/."""
        folder = path if (path / CONFIG_NAME).is_file() else model_dir(path, machine)
        if not (folder / CONFIG_NAME).is_file():
            raise ModelError(f"init_from={path}: neither a model folder nor a run directory with {machine}")
        initial = Detector.load(folder)  # weights read with weights_only=True
        if type(initial) is not type(self):
            raise ModelError(f"init_from={folder}: holds a {initial.name!r} model, not {self.name!r}")
        assert isinstance(initial, SectionClassifier)
        if initial.sections_ != self.sections_ or initial.n_mels_in_ != self.n_mels_in_:
            raise ModelError(
                f"init_from={folder}: trained on sections {initial.sections_} with {initial.n_mels_in_} mel "
                f"bands; this data has sections {self.sections_} with {self.n_mels_in_}"
            )
        if initial.feature_config_ != self.feature_config_:
            raise ModelError(f"init_from={folder}: trained on features of another configuration")
        differ = [k for k in self.architecture if getattr(initial, k) != getattr(self, k)]
        if differ:
            raise ModelError(f"init_from={folder}: network differs in {', '.join(differ)}")
        self.network_.load_state_dict(initial.network_.state_dict())

    def _windows(self) -> Patches:
        return Patches(self.snippet_frames, self.hop_frames)

    def _loss(self, network: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, code = batch
        n_classes = len(self.sections_)
        proxy = code == PROXY
        section = torch.where(proxy, 0, code // 2)
        target = F.one_hot(section, n_classes).float()
        target[proxy] = 1.0 / n_classes
        weight = torch.where(proxy, self.proxy_lambda, 1.0).to(x.dtype)
        fill = network.scaler.offset[None, None, :]  # the band means: zero after standardisation
        x = mask_spans(x, fill, self.time_masks, self.time_mask_frames, axis=1)
        x = mask_spans(x, fill, self.freq_masks, self.freq_mask_bands, axis=2)
        embedding = network.embed(x)
        loss = torch.zeros((), device=x.device)
        if self.ccsa_weight > 0:
            own = ~proxy
            is_target = (code % 2 == 1) & own
            loss = self.ccsa_weight * ccsa_loss(embedding[own], section[own], is_target[own], self.margin)
        if self.mixup > 0:
            beta = torch.distributions.Beta(self.mixup, self.mixup)
            lam = beta.sample((len(x),)).to(x.device)
            perm = torch.randperm(len(x), device=x.device)
            x = lam[:, None, None] * x + (1 - lam[:, None, None]) * x[perm]
            target = lam[:, None] * target + (1 - lam[:, None]) * target[perm]
            weight = lam * weight + (1 - lam) * weight[perm]
            embedding = network.embed(x)
        log_probs = F.log_softmax(network.classifier(embedding).float(), dim=1)
        return loss + (weight * -(target * log_probs).sum(dim=1)).mean()

    # -- scoring ------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def _score(self, X: ClipFeatures) -> np.ndarray:
        ids = SectionIndex(self.sections_).of((c.section for c in X.clips), self.name)
        device = self.scoring_device()
        network = self.network_.to(device).eval()
        scores = np.empty(len(X), dtype=np.float64)
        for i, (array, section) in enumerate(zip(X.arrays, ids, strict=True)):
            items = torch.from_numpy(self._items(np.asarray(array, dtype=np.float32))).to(device)
            log_probs = torch.cat(
                [
                    F.log_softmax(network(part).double(), dim=1)[:, section]
                    for part in items.split(max(self.batch_size, 256))
                ]
            )
            scores[i] = float(self._snippet_scores(log_probs).mean())
        return scores

    def _extra_state(self) -> dict[str, Any]:
        return {"n_mels_in": self.n_mels_in_, "sections": self.sections_, "history": self.history_}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._build_network(int(state["n_mels_in"]), [str(s) for s in state["sections"]])
        self.history_ = list(state.get("history", []))
