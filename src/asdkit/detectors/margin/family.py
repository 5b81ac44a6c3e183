"""Angular-margin section classifiers as embedding learners (``arcface``, ``adacos``).

A CNN learns to tell the sections (and, for DCASE2022+ data, the attribute combinations) of the training
clips apart through an ArcFace or sub-cluster AdaCos head. Normal clips of one class land close together
in its embedding space; an anomalous clip lands away from them. A clip's embedding is the mean of its
snippets' L2-normalised embeddings, scored by the embedding scorers (k-NN, cosine, minimum over the
section's source and target banks by default).

``n_models=K`` trains K seeds as one model (:mod:`asdkit.detectors.margin.seed_ensemble`): the mean of their
normalised scores (``ensemble_mode="scores"``, the default) or one back end on their joint embeddings
(``ensemble_mode="embeddings"``).

With ``proxy_classes`` (default), the other machine types' training clips of the data tree join as extra
classes: more classes make a richer embedding than the few sections of one machine type.

``inputs="spectrum+logmel"`` adds a second branch on the clip's Welch spectrum (0.98 Hz bins by default,
see :mod:`asdkit.features.spectrum`), as in the two-branch systems that led DCASE2023: the log-mel branch
sees how the sound changes over time, the spectrum branch resolves tones far finer than mel bands. The
embedding is the two branches' embeddings side by side (``2 * embedding_dim``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from asdkit.data.manifest import Clip
from asdkit.detectors.banks.embedding import EMBEDDER, EmbeddingDetector
from asdkit.detectors.base import ClipFeatures
from asdkit.detectors.deep import DeepDetector, TrainerConfig
from asdkit.detectors.frames import ItemStream
from asdkit.detectors.margin.pretext import PRETEXTS, extend_batch, pretext_classes, resolve
from asdkit.detectors.margin.seed_ensemble import SeedEnsembleMixin
from asdkit.detectors.params import ParamConflict
from asdkit.detectors.registry import register
from asdkit.detectors.tags import DetectorTags
from asdkit.detectors.windows import Patches
from asdkit.errors import ModelError
from asdkit.models.margin_classifier import BACKBONES, MarginClassifier, make_backbone
from asdkit.models.margin_heads import ArcFace, SubClusterAdaCos
from asdkit.models.scaling import band_statistics

log = logging.getLogger(__name__)

LABEL_MODES = ("auto", "section", "attributes")
#: What the network reads: log-mel snippets, or those and the clip's spectrum (two branches).
INPUTS = ("logmel", "spectrum+logmel")
#: The shortest snippet a margin classifier trains on.
MIN_SNIPPET_FRAMES = 8


def class_key(clip: Clip, mode: str) -> tuple[str, ...]:
    """The class a training clip teaches: its machine type and section, plus its attributes if asked."""
    key = (clip.machine, clip.section)
    if mode == "attributes":
        key += tuple(f"{k}={v}" for k, v in sorted(clip.attributes.items()))
    return key


class MarginClassifierDetector(SeedEnsembleMixin, EmbeddingDetector, DeepDetector):
    """Shared fitting of the ArcFace and AdaCos detectors; subclasses build the head."""

    choices: ClassVar[dict[str, tuple[str, ...]]] = {
        "inputs": INPUTS,
        "labels": LABEL_MODES,
        "pretext": PRETEXTS,
        "backbone": BACKBONES,
    }

    learns_embedding: ClassVar[bool] = True
    trainer_defaults: ClassVar[TrainerConfig] = TrainerConfig(epochs=20, batch_size=64)

    def __init__(
        self,
        snippet_frames: int = 64,
        hop_frames: int = 64,
        embedding_dim: int = 128,
        base_channels: int = 32,
        backbone: str = "compact",
        inputs: str = "logmel",
        spectrum_fft: int = 16384,
        labels: str = "auto",
        proxy_classes: bool = True,
        mixup: float = 0.0,
        scorer: str = "knn",
        k: int = 1,
        metric: str = "cosine",
        domains: str = "min",
        covariance: str = "ledoit_wolf",
        n_components: int = 2,
        covariance_type: str = "diag",
        local_density: bool = False,
        n_centres: int = 16,
        oversample: int = 0,
        n_models: int = 1,
        ensemble_mode: str = "scores",
        pretext: str = "auto",
        split_seed: int | None = None,
        **trainer: Any,
    ) -> None:
        super().__init__(**trainer)
        self.snippet_frames = snippet_frames
        self.hop_frames = hop_frames
        self.embedding_dim = embedding_dim
        self.base_channels = base_channels
        self.backbone = backbone
        self.inputs = inputs
        self.spectrum_fft = spectrum_fft
        self.labels = labels
        self.proxy_classes = proxy_classes
        self.mixup = mixup
        self.scorer = scorer
        self.k = k
        self.metric = metric
        self.domains = domains
        self.covariance = covariance
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.local_density = local_density
        self.n_centres = n_centres
        self.oversample = oversample
        self.n_models = n_models
        self.ensemble_mode = ensemble_mode
        self.pretext = pretext
        self.split_seed = split_seed

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> None:
        if params["snippet_frames"] < MIN_SNIPPET_FRAMES:
            problem = f"snippet_frames must be >= {MIN_SNIPPET_FRAMES}"
            raise ParamConflict("snippet_frames", params["snippet_frames"], problem)

    def _head(self, dim: int, n_classes: int) -> nn.Module:
        raise NotImplementedError

    # -- what it reads: the log-mel (and the clip spectrum), other machine types as extra classes ---------
    def tags(self) -> DetectorTags:
        if self.inputs not in INPUTS:
            raise ModelError(f"{self.name}: inputs must be one of {', '.join(INPUTS)}, got {self.inputs!r}")
        inputs = tuple(self.inputs.split("+"))[::-1]  # "spectrum+logmel" -> ("logmel", "spectrum")
        proxies = frozenset({"machines"}) if self.proxy_classes else frozenset()
        return replace(super().tags(), inputs=inputs, proxies=proxies)

    def _input_options(self, name: str) -> dict[str, Any]:
        return {"n_fft": self.spectrum_fft} if name == "spectrum" else {}

    # -- the embedding ------------------------------------------------------------------------------------
    def _network(self, n_mels: int, n_classes: int) -> MarginClassifier:
        from asdkit.models.spectrum_cnn import SpectrumCnn

        backbone = make_backbone(self.backbone, n_mels, self.embedding_dim, self.base_channels)
        spectrum = self.input_configs(self.feature_config_).get("spectrum")
        if spectrum is None:
            return MarginClassifier(n_mels, backbone, self._head(self.embedding_dim, n_classes))
        head = self._head(2 * self.embedding_dim, n_classes)
        return MarginClassifier(n_mels, backbone, head, SpectrumCnn(spectrum.n_bins, self.embedding_dim))

    def _label_mode(self, clips: Sequence[Clip]) -> str:
        if self.labels not in LABEL_MODES:
            raise ModelError(
                f"{self.name}: labels must be one of {', '.join(LABEL_MODES)}, got {self.labels!r}"
            )
        if self.labels == "auto":
            return "attributes" if any(c.attributes for c in clips) else "section"
        return self.labels

    def _fit_embedder(self, X: ClipFeatures) -> None:
        if self.snippet_frames < MIN_SNIPPET_FRAMES or self.hop_frames < 1:
            raise ModelError(
                f"{self.name}: snippet_frames must be >= {MIN_SNIPPET_FRAMES} and hop_frames >= 1 "
                f"(got {self.snippet_frames} and {self.hop_frames})"
            )
        if self.mixup < 0:
            raise ModelError(
                f"{self.name}: mixup (the Beta distribution's alpha) must be >= 0, got {self.mixup}"
            )
        arrays, clips = list(X.arrays), list(X.clips)
        own_spectra = X.arrays_of("spectrum")
        spectra = None if own_spectra is None else list(own_spectra)
        proxy = X.proxy  # other machine types' clips, with the same inputs (the bundle's contract)
        if self.proxy_classes and proxy is not None:
            arrays += list(proxy.arrays)
            clips += list(proxy.clips)
            if spectra is not None:
                spectra += list(proxy.arrays_of("spectrum") or [])
        mode = self._label_mode(clips)
        keys = [class_key(c, mode) for c in clips]
        self.classes_ = sorted(set(keys))
        try:
            self.pretext_tasks_ = resolve(self.pretext, len(self.classes_))
        except ModelError as exc:
            raise ModelError(f"{self.name}: {exc}") from None
        if len(self.classes_) == 1 and not self.pretext_tasks_:
            raise ModelError(
                f"{self.name}: the training clips form one class; pretext=none leaves nothing to learn"
            )
        if self.pretext == "auto" and self.pretext_tasks_:
            log.warning(
                "%s: the training clips form one class (%s); training against band-shifted copies as two "
                "extra classes (more sections, attributes or proxy machine types make a better embedding)",
                self.name,
                "/".join(self.classes_[0]),
            )
        self.labelled_classes_ = len(self.classes_)
        self.classes_ += pretext_classes(self.pretext_tasks_, self.classes_)
        self._pretext_rng = np.random.default_rng(self.seed)
        index = {k: i for i, k in enumerate(self.classes_)}
        torch.manual_seed(self.seed)
        self.n_mels_in_ = X.config.n_mels
        network = self._network(self.n_mels_in_, len(self.classes_))
        mean, std = band_statistics(X.arrays)  # the machine's own clips set the scale
        network.scaler.set(torch.from_numpy(mean), torch.from_numpy(std))
        if network.spectrum_branch is not None and own_spectra is not None:
            own = np.stack([np.asarray(s, dtype=np.float64)[0] for s in own_spectra])
            network.spectrum_scaler.set(torch.from_numpy(own.mean(axis=0)), max(float(own.std()), 1e-3))
        stream = ItemStream(
            arrays,
            self._items,
            self._count,
            self.batch_size,
            seed=self.seed,
            labels=[index[k] for k in keys],
            side=None if spectra is None else [np.asarray(s)[0] for s in spectra],
        )
        self.history_ = self._train(network, stream, None)
        self.network_ = nn.ModuleDict({EMBEDDER: network})

    def _windows(self) -> Patches:
        return Patches(self.snippet_frames, self.hop_frames)

    def _loss(self, network: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y = batch[0], batch[-1]
        spectra = batch[1] if len(batch) == 3 else None
        x, y, spectra, exchanged = extend_batch(
            self.pretext_tasks_, x, y, spectra, self.labelled_classes_, self._pretext_rng
        )
        y_b, lam = y, 1.0
        if self.mixup > 0 and len(x) > 1:
            lam = float(torch.distributions.Beta(self.mixup, self.mixup).sample())
            perm = torch.randperm(len(x), device=x.device)
            x, y_b = lam * x + (1 - lam) * x[perm], y[perm]
            if spectra is not None:
                spectra = lam * spectra + (1 - lam) * spectra[perm]
        if exchanged is not None:  # exchanged items join the forward pass, not the mixup
            return exchanged.loss(network, x, spectra, y, y_b, lam)
        return network.head.loss(network(x, spectra), y, y_b, lam)

    @torch.inference_mode()
    def embed(self, X: ClipFeatures, max_items: int = 2048) -> np.ndarray:
        if self._embedding_ensemble():
            return self.joint_embedding(X)
        device = self.scoring_device()
        network = self.network_[EMBEDDER].to(device).eval()
        out = []
        spectra = X.arrays_of("spectrum")
        for i, array in enumerate(X.arrays):
            items = torch.from_numpy(self._items(np.asarray(array, dtype=np.float32)))
            spectrum = None
            if spectra is not None and network.spectrum_branch is not None:
                spectrum = torch.from_numpy(np.array(spectra[i], dtype=np.float32)).to(device)
            parts = []
            for start in range(0, len(items), max_items):
                chunk = items[start : start + max_items].to(device)
                side = None if spectrum is None else spectrum.expand(len(chunk), -1)
                parts.append(network(chunk, side))
            emb = nn.functional.normalize(torch.cat(parts), dim=1).mean(dim=0)
            out.append(emb.double().cpu().numpy())
        return np.stack(out)

    def _embedder_state(self) -> dict[str, Any]:
        return {"n_mels_in": self.n_mels_in_, "classes": [list(k) for k in self.classes_]}

    def _load_embedder(self, state: dict[str, Any]) -> None:
        # feature_config_ is set before the extra state is loaded; the spectrum branch's size follows from it
        self.n_mels_in_ = int(state["n_mels_in"])
        self.classes_ = [tuple(k) for k in state["classes"]]
        self.network_ = nn.ModuleDict({EMBEDDER: self._network(self.n_mels_in_, len(self.classes_))})


@register
class ArcFaceDetector(MarginClassifierDetector):
    """Section (x attribute) classifier with an ArcFace head; scored by k-NN on its embeddings."""

    name: ClassVar[str] = "arcface"

    def __init__(self, margin: float = 0.5, scale: float = 30.0, **params: Any) -> None:
        super().__init__(**params)
        self.margin = margin
        self.scale = scale

    def _head(self, dim: int, n_classes: int) -> nn.Module:
        return ArcFace(dim, n_classes, self.scale, self.margin)


@register
class AdaCosDetector(MarginClassifierDetector):
    """Section (x attribute) classifier with a sub-cluster AdaCos head; scored by k-NN on its embeddings."""

    name: ClassVar[str] = "adacos"

    def __init__(self, n_subclusters: int = 16, **params: Any) -> None:
        super().__init__(**params)
        self.n_subclusters = n_subclusters

    def _head(self, dim: int, n_classes: int) -> nn.Module:
        return SubClusterAdaCos(dim, n_classes, self.n_subclusters)
