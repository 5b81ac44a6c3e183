"""A pretrained audio encoder fine-tuned as an angular-margin classifier (the DCASE2024/2025 winners' way).

Waveform -> encoder (:mod:`asdkit.models.encoders`) -> a mix of its layers' frames -> pooling over frames
(attentive statistics pooling or the mean) -> a linear projection: the embedding. The margin head
(:mod:`asdkit.models.margin_heads`) is used only by the training loss. Plain torch: the detector
(:mod:`asdkit.detectors.margin.finetune`) trains it through the Lightning path of every network detector.

LoRA (:func:`add_lora`) goes through the ``peft`` library and is merged into the encoder's weights after
training (:func:`merge_lora`), so a saved model is a plain encoder that loads and scores without peft.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from asdkit.errors import ModelError
from asdkit.features.encoder import parse_layers
from asdkit.models.encoders import AudioEncoder

POOLINGS = ("asp", "mean")
TUNINGS = ("lora", "full", "frozen")


class AttentiveStatisticsPooling(nn.Module):
    """Frames ``[B, N, D]`` -> ``[B, 2D]``: the mean and standard deviation of the frames, weighted by a
    learned attention over them (Okabe et al. 2018), so the frames that tell classes apart count most."""

    def __init__(self, dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.attention = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, frames: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.attention(frames).squeeze(-1)
        if padding is not None:
            logits = logits.masked_fill(padding, float("-inf"))
        weights = torch.softmax(logits.float(), dim=1).to(frames.dtype).unsqueeze(-1)
        mean = (weights * frames).sum(dim=1)
        var = (weights * frames.square()).sum(dim=1) - mean.square()
        return torch.cat([mean, var.clamp(min=1e-6).sqrt()], dim=-1)


class EncoderClassifier(nn.Module):
    """Encoder, layer mix, pooling, projection to ``embedding_dim``; ``head`` for the training loss."""

    def __init__(
        self,
        encoder: AudioEncoder,
        head: nn.Module,
        embedding_dim: int,
        layers: str = "last",
        pooling: str = "asp",
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ModelError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.encoder = encoder
        self.mix = parse_layers(layers, encoder.num_layers)
        dim = encoder.embed_dim
        self.pool = AttentiveStatisticsPooling(dim) if pooling == "asp" else None
        self.projection = nn.Linear(2 * dim if pooling == "asp" else dim, embedding_dim)
        self.head = head

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Waveforms ``[B, T]`` (or ``[B, 1, T]``) -> embeddings ``[B, embedding_dim]``."""
        if wave.ndim == 3:
            wave = wave.squeeze(1)
        layers = self.encoder(wave)
        frames = sum(w * layers[i - 1] for i, w in self.mix)
        assert isinstance(frames, torch.Tensor)
        pooled = frames.mean(dim=1) if self.pool is None else self.pool(frames)
        return self.projection(pooled)

    def parameter_groups(self, learning_rate: float, layer_decay: float = 1.0) -> list[dict[str, Any]]:
        """The optimiser's groups: pooling, projection and head at ``learning_rate``; the encoder's layer
        ``i`` of ``L`` at ``learning_rate * layer_decay ** (L - i + 1)``, what precedes the layers at
        ``layer_decay ** (L + 1)`` (layer-wise learning-rate decay: the input side, which holds the most
        general knowledge, moves least). Frozen parameters are left out."""
        depth_of: dict[int, int] = {}
        if layer_decay != 1.0:
            stack = self.encoder.transformer_layers()
            for depth, layer in enumerate(stack, start=1):
                for p in layer.parameters():
                    depth_of[id(p)] = depth
        n_layers = len({*depth_of.values()})
        groups: dict[float, list[nn.Parameter]] = {}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            rate = learning_rate
            if name.startswith("encoder.") and layer_decay != 1.0:
                rate = learning_rate * layer_decay ** (n_layers + 1 - depth_of.get(id(p), 0))
            groups.setdefault(rate, []).append(p)
        return [{"params": params, "lr": rate} for rate, params in sorted(groups.items(), reverse=True)]


def set_tuning(network: EncoderClassifier, tuning: str, rank: int = 8, alpha: float = 16.0) -> None:
    """``full``: every encoder weight trains; ``frozen``: none; ``lora``: the encoder's weights stay and
    rank-``rank`` adapters of its attention projections train (peft)."""
    if tuning not in TUNINGS:
        raise ModelError(f"tuning must be one of {', '.join(TUNINGS)}, got {tuning!r}")
    for p in network.encoder.parameters():
        p.requires_grad_(tuning == "full")
    if tuning == "lora":
        add_lora(network.encoder, rank, alpha)


def lora_problem(encoder: type[AudioEncoder]) -> str:
    """Empty when LoRA can adapt ``encoder`` here (peft is installed, the encoder names its layers)."""
    if find_spec("peft") is None:
        return "tuning=lora needs the peft package: pip install 'asdkit[finetune]'"
    if not encoder.lora_targets:
        return f"encoder {encoder.name!r} names no layers for LoRA; use tuning=full"
    return ""


def add_lora(encoder: AudioEncoder, rank: int, alpha: float) -> None:
    """Inject LoRA adapters (peft) into the encoder's ``lora_targets``; only they train."""
    problem = lora_problem(type(encoder))
    if problem:
        raise ModelError(problem)
    from peft import LoraConfig, inject_adapter_in_model

    targets = list(type(encoder).lora_targets)
    if rank < 1:
        raise ModelError(f"lora_rank must be a positive integer, got {rank}")
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0, bias="none")
    inject_adapter_in_model(config, encoder)
    for name, p in encoder.named_parameters():
        p.requires_grad_("lora_" in name)


def merge_lora(module: nn.Module) -> None:
    """Fold every LoRA adapter into its base layer and put the base layer back in its place: the result
    holds plain ``nn.Linear`` layers with the adapted weights (no peft needed to load or score it)."""
    for name, child in list(module.named_children()):
        base = getattr(child, "base_layer", None)
        if base is not None and hasattr(child, "merge"):
            child.merge()
            setattr(module, name, base)
        else:
            merge_lora(child)


def embedding_of(network: EncoderClassifier, waves: torch.Tensor) -> torch.Tensor:
    """L2-normalised embeddings of waveform items ``[B, T]`` (inference; autocast fp16 on a GPU)."""
    device = waves.device.type
    with torch.inference_mode(), torch.autocast(device, dtype=torch.float16, enabled=device == "cuda"):
        return F.normalize(network(waves).float(), dim=1)
