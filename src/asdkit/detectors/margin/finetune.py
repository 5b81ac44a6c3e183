"""A pretrained audio encoder fine-tuned with an angular-margin head (``finetune``), scored by k-NN.

The DCASE2024 winner (Lv et al., AITHU) fine-tuned BEATs with attentive statistics pooling and
ArcFace/AdaCos on machine x section x attribute x domain classes; the DCASE2025 winner (L. Wang) fine-tuned
EAT, fully or with LoRA, with ArcFace on attribute + domain classes; both score a clip by the cosine
distance to its nearest normal training embedding (k-NN, k=1). Here: any registered encoder
(:mod:`asdkit.models.encoders`, from the user's ``checkpoint``), attentive statistics or mean pooling of a
layer mix, ArcFace or sub-cluster AdaCos on classes taken from the manifest (machine x section, with
``labels=attributes`` their attributes, with ``domain_classes`` the domain; other machine types' clips as
extra classes with ``proxy_classes``), LoRA (peft) or full fine-tuning, layer-wise learning-rate decay,
mixed precision (the ``precision`` trainer setting: ``bf16-mixed`` on a CPU, ``16-mixed`` on a GPU), DDP
(``devices``/``strategy``) and, with ``n_models=K``, the z-normalised ensemble of K fine-tuned models.

Training items are ``segment_seconds`` crops of the waveform (the ``waveform`` front end); a clip's
embedding is the mean of its crops' normalised embeddings, scored by the bank back end of every embedding
detector. The saved model holds the fine-tuned encoder (LoRA merged into it), not the user's file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
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
from asdkit.detectors.margin.family import LABEL_MODES, class_key
from asdkit.detectors.margin.seed_ensemble import SeedEnsembleMixin
from asdkit.detectors.params import ParamConflict, RegistryWords
from asdkit.detectors.registry import register
from asdkit.detectors.tags import DetectorTags
from asdkit.errors import ModelError
from asdkit.features.encoder import parse_layers
from asdkit.models.encoder_classifier import POOLINGS as ENCODER_POOLINGS
from asdkit.models.encoder_classifier import (
    TUNINGS,
    EncoderClassifier,
    embedding_of,
    lora_problem,
    merge_lora,
    set_tuning,
)
from asdkit.models.encoders import available_encoders, checkpoint_sha256, get_encoder_class, load_encoder
from asdkit.models.margin_heads import ArcFace, SubClusterAdaCos

log = logging.getLogger(__name__)

WAVEFORM = "waveform"
HEADS = ("arcface", "adacos")


def finetune_class_key(clip: Clip, mode: str, with_domain: bool) -> tuple[str, ...]:
    """Machine x section (x attributes) (x domain), all from the manifest."""
    key = class_key(clip, mode)
    return (*key, f"domain={clip.domain}") if with_domain else key


def crops(wave: np.ndarray, length: int) -> np.ndarray:
    """A clip's waveform ``[1, T]`` -> non-overlapping crops ``[n, length]`` (a short clip repeated)."""
    x = np.asarray(wave, dtype=np.float32).reshape(-1)
    if len(x) < length:
        x = np.tile(x, -(-length // max(len(x), 1)))
    n = len(x) // length
    return x[: n * length].reshape(n, length).copy()  # a cached clip is a read-only memmap


@register
class FineTunedEncoderDetector(SeedEnsembleMixin, EmbeddingDetector, DeepDetector):
    """A pretrained encoder (BEATs...) fine-tuned with ArcFace or AdaCos on the manifest's classes; k-NN."""

    name: ClassVar[str] = "finetune"
    choices: ClassVar[dict[str, Sequence[str]]] = {
        "encoder": RegistryWords(available_encoders),
        "head": HEADS,
        "labels": LABEL_MODES,
        "pooling": ENCODER_POOLINGS,
        "tuning": TUNINGS,
    }
    parsers: ClassVar[dict[str, Callable[[str], object]]] = {"layers": parse_layers}
    learns_embedding: ClassVar[bool] = True
    trainer_defaults: ClassVar[TrainerConfig] = TrainerConfig(epochs=10, batch_size=16, learning_rate=1e-4)

    def __init__(
        self,
        encoder: str = "beats",
        checkpoint: str = "",
        tuning: str = "lora",
        lora_rank: int = 8,
        lora_alpha: float = 16.0,
        layer_decay: float = 0.75,
        layers: str = "last",
        pooling: str = "asp",
        embedding_dim: int = 256,
        head: str = "arcface",
        margin: float = 0.5,
        scale: float = 30.0,
        n_subclusters: int = 16,
        labels: str = "auto",
        domain_classes: bool = True,
        proxy_classes: bool = True,
        segment_seconds: float = 10.0,
        scorer: str = "knn",
        k: int = 1,
        metric: str = "cosine",
        domains: str = "min",
        covariance: str = "ledoit_wolf",
        n_components: int = 2,
        covariance_type: str = "diag",
        n_models: int = 1,
        split_seed: int | None = None,
        **trainer: Any,
    ) -> None:
        super().__init__(**trainer)
        self.encoder = encoder
        self.checkpoint = checkpoint
        self.tuning = tuning
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha
        self.layer_decay = layer_decay
        self.layers = layers
        self.pooling = pooling
        self.embedding_dim = embedding_dim
        self.head = head
        self.margin = margin
        self.scale = scale
        self.n_subclusters = n_subclusters
        self.labels = labels
        self.domain_classes = domain_classes
        self.proxy_classes = proxy_classes
        self.segment_seconds = segment_seconds
        self.scorer = scorer
        self.k = k
        self.metric = metric
        self.domains = domains
        self.covariance = covariance
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.n_models = n_models
        self.split_seed = split_seed

    @classmethod
    def debug_params(cls) -> dict[str, Any]:
        return {"epochs": 1}

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> None:
        """The encoder's ``checkpoint``: given, there and readable (what loading it asks first); LoRA
        where it cannot be added (no peft, an encoder without attention layers named)."""
        encoder = get_encoder_class(params["encoder"])
        problem = encoder.checkpoint_problem(params["checkpoint"])
        if problem:
            key = "checkpoint" if params["checkpoint"] else "encoder"
            raise ParamConflict(key, params[key], problem)
        if params["tuning"] == "lora" and lora_problem(encoder):
            raise ParamConflict("tuning", "lora", lora_problem(encoder))

    # -- what it reads: the waveform at the encoder's rate ---------------------------------------------------
    def tags(self) -> DetectorTags:
        proxies = frozenset({"machines"}) if self.proxy_classes else frozenset()
        base = super().tags()
        return replace(base, inputs=(*base.inputs, WAVEFORM), proxies=proxies)

    def _input_options(self, name: str) -> dict[str, Any]:
        return {"sample_rate": get_encoder_class(self.encoder).sample_rate} if name == WAVEFORM else {}

    def _segment(self) -> int:
        if not self.segment_seconds > 0:
            raise ModelError(f"{self.name}: segment_seconds must be positive, got {self.segment_seconds}")
        return max(1, round(self.segment_seconds * get_encoder_class(self.encoder).sample_rate))

    def _items(self, wave: np.ndarray) -> np.ndarray:
        return crops(wave, self._segment())

    def _count(self, n_samples: int) -> int:
        return max(1, n_samples // self._segment())

    @staticmethod
    def _waves(X: ClipFeatures, who: str) -> list[np.ndarray]:
        waves = X.arrays_of(WAVEFORM)
        if waves is None:
            raise ModelError(f"{who}: the features lack the {WAVEFORM!r} input it fine-tunes on")
        return list(waves)

    # -- the network ---------------------------------------------------------------------------------------
    def _head_module(self, n_classes: int) -> nn.Module:
        if self.head == "arcface":
            return ArcFace(self.embedding_dim, n_classes, self.scale, self.margin)
        if self.head == "adacos":
            return SubClusterAdaCos(self.embedding_dim, n_classes, self.n_subclusters)
        raise ModelError(f"{self.name}: head must be one of {', '.join(HEADS)}, got {self.head!r}")

    def _network(self, encoder: Any, n_classes: int) -> EncoderClassifier:
        try:
            return EncoderClassifier(
                encoder, self._head_module(n_classes), self.embedding_dim, self.layers, self.pooling
            )
        except ValueError as exc:
            raise ModelError(f"{self.name}: {exc}") from None

    def _fit_embedder(self, X: ClipFeatures) -> None:
        if self.labels not in LABEL_MODES:
            raise ModelError(
                f"{self.name}: labels must be one of {', '.join(LABEL_MODES)}, got {self.labels!r}"
            )
        self._segment()
        waves, clips = self._waves(X, self.name), list(X.clips)
        if self.proxy_classes and X.proxy is not None:
            waves += self._waves(X.proxy, self.name)
            clips += list(X.proxy.clips)
        mode = self.labels
        if mode == "auto":
            mode = "attributes" if any(c.attributes for c in clips) else "section"
        keys = [finetune_class_key(c, mode, self.domain_classes) for c in clips]
        self.classes_ = sorted(set(keys))
        if len(self.classes_) < 2:
            raise ModelError(
                f"{self.name}: the training clips form one class ({'/'.join(self.classes_[0])}); a margin "
                "head needs two or more (more sections, attributes, domain_classes or proxy machine types)"
            )
        torch.manual_seed(self.seed)
        encoder = load_encoder(self.encoder, self.checkpoint)
        self.weights_sha256_ = checkpoint_sha256(self.checkpoint)
        self.architecture_ = encoder.architecture()
        shortest = int(getattr(encoder, "min_samples", 1))
        if self._segment() < shortest:
            raise ModelError(
                f"{self.name}: segment_seconds={self.segment_seconds} is shorter than {self.encoder}'s "
                f"shortest input ({shortest} samples)"
            )
        network = self._network(encoder, len(self.classes_))
        set_tuning(network, self.tuning, self.lora_rank, self.lora_alpha)
        network.train()
        index = {k: i for i, k in enumerate(self.classes_)}
        stream = ItemStream(
            waves, self._items, self._count, self.batch_size, seed=self.seed, labels=[index[k] for k in keys]
        )
        self.history_ = self._train(network, stream, None)
        merge_lora(network)
        for p in network.parameters():
            p.requires_grad_(True)
        self.network_ = nn.ModuleDict({EMBEDDER: network})

    def _loss(self, network: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y = batch
        return network.head.loss(network(x).float(), y, y, 1.0)

    def _optimiser_groups(self, network: nn.Module, learning_rate: float) -> list[dict[str, Any]]:
        return network.parameter_groups(learning_rate, self.layer_decay)

    @torch.inference_mode()
    def embed(self, X: ClipFeatures, max_items: int = 16) -> np.ndarray:
        device = self.scoring_device()
        network = self.network_[EMBEDDER].to(device).eval()
        out = []
        for wave in self._waves(X, self.name):
            items = torch.from_numpy(self._items(np.asarray(wave)))
            parts = [
                embedding_of(network, items[s : s + max_items].to(device))
                for s in range(0, len(items), max_items)
            ]
            out.append(torch.cat(parts).mean(dim=0).double().cpu().numpy())
        return np.stack(out)

    # -- saving: the fine-tuned encoder's shape, rebuilt untrained and filled from weights.pt ----------------
    def _embedder_state(self) -> dict[str, Any]:
        return {
            "classes": [list(k) for k in self.classes_],
            "architecture": self.architecture_,
            "weights_sha256": self.weights_sha256_,
        }

    def _load_embedder(self, state: dict[str, Any]) -> None:
        self.classes_ = [tuple(k) for k in state["classes"]]
        self.architecture_ = dict(state["architecture"])
        self.weights_sha256_ = str(state.get("weights_sha256", ""))
        encoder = get_encoder_class(self.encoder).from_architecture(self.architecture_)
        self.network_ = nn.ModuleDict({EMBEDDER: self._network(encoder, len(self.classes_))})
