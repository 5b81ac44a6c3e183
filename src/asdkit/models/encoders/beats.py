"""BEATs (Chen et al., "BEATs: Audio Pre-Training with Acoustic Tokenizers", ICML 2023), written here to load
the published checkpoint files as they are.

The published files (github.com/microsoft/unilm/tree/master/beats) hold ``{"cfg": {...}, "model":
state_dict}``; the AudioSet-fine-tuned ones add a classifier (``predictor.*``), which an encoder has no use
for and drops. The network: a Kaldi filterbank (128 bands, normalised by fixed AudioSet statistics), 16x16
patches embedded by a convolution, a convolutional position embedding, then post-norm ("deep norm")
transformer layers whose attention adds a bucketed relative position bias gated by each query.

Differences from the official code that change no number (checked by the parity tests): batch-first tensors,
fused scaled-dot-product attention with the gated bias as its additive mask, the bias table computed once
per forward and shared by all layers and clips, the gate's 8 outputs summed in its weights (2 outputs),
filterbanks of a whole batch at once. A padded clip's frames are masked by their own samples (a patch is
padding when all its samples are), where the official code groups filterbank frames without regard to the
patch layout.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from asdkit.models.encoders.base import (
    AudioEncoder,
    file_problem,
    published_where,
    read_checkpoint,
    register_encoder,
)
from asdkit.models.encoders.kaldi_fbank import KaldiFbank

PUBLISHED_AT = (
    "https://github.com/microsoft/unilm/tree/master/beats (e.g. BEATs_iter3.pt, BEATs_iter3_plus_AS2M.pt)"
)
#: What a BEATs checkpoint is, for error messages.
EXPECTED = "a BEATs checkpoint (torch.load gives 'cfg' and 'model')"
#: The filterbank statistics every published BEATs model was trained with (mean, std; divided by 2 std).
FBANK_MEAN, FBANK_STD = 15.41663, 6.55582
#: Waveforms are scaled to 16-bit integer range before the filterbank, as in training.
INT16_SCALE = 32768.0


@dataclass(frozen=True)
class BeatsConfig:
    """The architecture fields of a published checkpoint's ``cfg`` (names as published; others ignored)."""

    input_patch_size: int = 16
    embed_dim: int = 512
    conv_bias: bool = False
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_norm_first: bool = False
    deep_norm: bool = True
    dropout: float = 0.0
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    dropout_input: float = 0.0
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = True
    num_buckets: int = 320
    max_distance: int = 800
    gru_rel_pos: bool = True

    def __post_init__(self) -> None:
        if self.activation_fn not in ("gelu", "relu"):
            raise ValueError(f"activation_fn {self.activation_fn!r} is not supported (gelu, relu)")
        if self.encoder_embed_dim % self.encoder_attention_heads:
            raise ValueError("encoder_embed_dim must be a multiple of encoder_attention_heads")
        if self.input_patch_size <= 0 or 128 % self.input_patch_size:
            raise ValueError(f"input_patch_size must divide the 128 mel bands, got {self.input_patch_size}")
        if self.deep_norm and self.layer_norm_first:
            raise ValueError("deep_norm and layer_norm_first exclude each other")

    @classmethod
    def from_published(cls, cfg: dict[str, Any]) -> BeatsConfig:
        """The fields this implementation uses; the official defaults for any the file leaves out."""
        official_defaults = {"deep_norm": False, "relative_position_embedding": False, "gru_rel_pos": False}
        official_defaults |= {"max_distance": 1280, "dropout": 0.1, "attention_dropout": 0.1}
        known = {f.name for f in fields(cls)}
        return cls(**{**official_defaults, **{k: v for k, v in cfg.items() if k in known}})

    def to_published(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def tiny(cls) -> BeatsConfig:
        return cls(
            embed_dim=32,
            encoder_layers=2,
            encoder_embed_dim=32,
            encoder_ffn_embed_dim=64,
            encoder_attention_heads=4,
            conv_pos=16,
            conv_pos_groups=4,
            num_buckets=32,
            max_distance=64,
        )

    @classmethod
    def small(cls) -> BeatsConfig:
        """A 3-layer, 96-wide shape for the parity tests (every code path, seconds on a CPU)."""
        return cls(
            embed_dim=64,
            encoder_layers=3,
            encoder_embed_dim=96,
            encoder_ffn_embed_dim=192,
            encoder_attention_heads=4,
            conv_pos_groups=4,
        )


class PositionConv(nn.Module):
    """Grouped convolution over time with weight normalisation (magnitude ``weight_g`` per kernel tap,
    direction ``weight_v``), as BEATs' checkpoints store it."""

    def __init__(self, dim: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.kernel, self.groups = kernel, groups
        v = torch.randn(dim, dim // groups, kernel) * math.sqrt(4.0 / (kernel * dim))
        self.weight_v = nn.Parameter(v)
        self.weight_g = nn.Parameter(v.norm(dim=(0, 1), keepdim=True))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, D] -> [B, T, D]: the convolution centred on each frame (an even kernel drops its last
        output), then GELU. In float32 even under autocast: torch 2.13's CPU bfloat16 grouped convolution
        returned wrong numbers for some shapes (the tiny test config), and this layer is a small share of
        the work."""
        with torch.autocast(x.device.type, enabled=False):
            v = self.weight_v.float()
            weight = v * (self.weight_g.float() / v.norm(dim=(0, 1), keepdim=True))
            y = F.conv1d(
                x.float().transpose(1, 2),
                weight,
                self.bias.float(),
                padding=self.kernel // 2,
                groups=self.groups,
            )
            if self.kernel % 2 == 0:
                y = y[..., :-1]
            return F.gelu(y).transpose(1, 2).to(x.dtype)


class GatedRelativeAttention(nn.Module):
    """Multi-head self-attention whose additive relative-position bias is scaled per query by a gate
    ``a * (b * grep_a - 1) + 2`` (a, b: sigmoids of the query's two gate logits)."""

    def __init__(self, dim: int, heads: int, gated: bool, dropout: float) -> None:
        super().__init__()
        self.heads, self.head_dim, self.dropout = heads, dim // heads, dropout
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.gated = gated
        if gated:
            # published as 8 outputs summed 4 by 4 before the sigmoid: the sums are folded into 2 outputs
            self.gate = nn.Linear(self.head_dim, 2)
            self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))

    def forward(
        self, x: torch.Tensor, position: torch.Tensor | None, key_padding: torch.Tensor | None
    ) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = (
            p(x).view(B, T, self.heads, self.head_dim).transpose(1, 2)
            for p in (self.q_proj, self.k_proj, self.v_proj)
        )
        bias = None
        if position is not None:
            bias = position  # [1, H, T, T]
            if self.gated:
                a, b = torch.sigmoid(self.gate(q)).unbind(-1)  # [B, H, T] each
                bias = (a * (b * self.grep_a.squeeze(-1) - 1.0) + 2.0).unsqueeze(-1) * position
        if key_padding is not None:
            hidden = key_padding[:, None, None, :]
            bias = torch.zeros_like(hidden, dtype=q.dtype) if bias is None else bias
            bias = bias.masked_fill(hidden, float("-inf"))
        if bias is not None:
            bias = bias.to(q.dtype)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(out.transpose(1, 2).reshape(B, T, D))


class BeatsLayer(nn.Module):
    def __init__(self, cfg: BeatsConfig) -> None:
        super().__init__()
        dim = cfg.encoder_embed_dim
        self.self_attn = GatedRelativeAttention(
            dim,
            cfg.encoder_attention_heads,
            cfg.relative_position_embedding and cfg.gru_rel_pos,
            cfg.attention_dropout,
        )
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, cfg.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(cfg.encoder_ffn_embed_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.activation = F.gelu if cfg.activation_fn == "gelu" else F.relu
        self.pre_norm = cfg.layer_norm_first
        self.residual_scale = (2 * cfg.encoder_layers) ** 0.25 if cfg.deep_norm else 1.0
        self.dropout = nn.Dropout(cfg.dropout)
        self.activation_dropout = nn.Dropout(cfg.activation_dropout)

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(self.activation_dropout(self.activation(self.fc1(x)))))

    def forward(
        self, x: torch.Tensor, position: torch.Tensor | None, key_padding: torch.Tensor | None
    ) -> torch.Tensor:
        if self.pre_norm:
            x = x + self.dropout(self.self_attn(self.self_attn_layer_norm(x), position, key_padding))
            return x + self._ffn(self.final_layer_norm(x))
        x = self.self_attn_layer_norm(
            x * self.residual_scale + self.dropout(self.self_attn(x, position, key_padding))
        )
        return self.final_layer_norm(x * self.residual_scale + self._ffn(x))


class BeatsTransformer(nn.Module):
    def __init__(self, cfg: BeatsConfig) -> None:
        super().__init__()
        dim = cfg.encoder_embed_dim
        self.pos_conv = PositionConv(dim, cfg.conv_pos, cfg.conv_pos_groups)
        self.layer_norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(BeatsLayer(cfg) for _ in range(cfg.encoder_layers))
        self.pre_norm = cfg.layer_norm_first
        self.dropout = nn.Dropout(cfg.dropout)
        self.num_buckets, self.max_distance = cfg.num_buckets, cfg.max_distance
        # one table for all layers (the published files repeat it in every layer)
        self.relative_bias = (
            nn.Embedding(cfg.num_buckets, cfg.encoder_attention_heads)
            if cfg.relative_position_embedding
            else None
        )
        if self.relative_bias is not None:
            nn.init.xavier_normal_(self.relative_bias.weight)

    def position_bias(self, T: int, device: torch.device) -> torch.Tensor | None:
        """[1, H, T, T]: each head's bias of key position j seen from query position i, by bucket of j - i:
        exact up to a quarter of the buckets each way, log-spaced up to ``max_distance`` beyond."""
        if self.relative_bias is None:
            return None
        offset = torch.arange(T, device=device)[None, :] - torch.arange(T, device=device)[:, None]
        half = self.num_buckets // 2
        exact = half // 2
        distance = offset.abs()
        far = exact + (
            torch.log(distance.clamp(min=1).float() / exact)
            / math.log(self.max_distance / exact)
            * (half - exact)
        ).to(torch.long)
        bucket = (offset > 0).long() * half + torch.where(distance < exact, distance, far.clamp(max=half - 1))
        return self.relative_bias(bucket).permute(2, 0, 1).unsqueeze(0)

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None) -> list[torch.Tensor]:
        if padding is not None:
            x = x.masked_fill(padding[..., None], 0.0)
        x = x + self.pos_conv(x)
        if not self.pre_norm:
            x = self.layer_norm(x)
        x = self.dropout(x)
        position = self.position_bias(x.shape[1], x.device)
        outputs = []
        for layer in self.layers:
            x = layer(x, position, padding)
            outputs.append(x)
        if self.pre_norm:
            outputs[-1] = self.layer_norm(outputs[-1])
        return outputs


@register_encoder
class Beats(AudioEncoder):
    """BEATs: 16-kHz waveforms -> every layer's patch embeddings ``[B, time_patches * 8, 768]`` (base size).

    Output frames are 16x16 filterbank patches in time-major order: 8 frequency patches (``frame_groups``)
    per 160 ms. A 10-s clip gives 62 x 8 = 496 frames.
    """

    name: ClassVar[str] = "beats"
    published_at: ClassVar[str] = PUBLISHED_AT
    sample_rate = 16000

    def __init__(self, cfg: BeatsConfig = BeatsConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_dim = cfg.encoder_embed_dim
        self.num_layers = cfg.encoder_layers
        self.patch = cfg.input_patch_size
        self.frame_groups = 128 // cfg.input_patch_size
        self.fbank = KaldiFbank(self.sample_rate, n_mels=128)
        self.patch_embedding = nn.Conv2d(1, cfg.embed_dim, self.patch, stride=self.patch, bias=cfg.conv_bias)
        self.layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.post_extract_proj = (
            nn.Linear(cfg.embed_dim, cfg.encoder_embed_dim)
            if cfg.embed_dim != cfg.encoder_embed_dim
            else None
        )
        self.dropout_input = nn.Dropout(cfg.dropout_input)
        self.encoder = BeatsTransformer(cfg)

    @property
    def min_samples(self) -> int:
        """The shortest clip that makes one patch (16 filterbank frames: 0.175 s)."""
        return self.fbank.win + (self.patch - 1) * self.fbank.hop

    def forward(self, waveform: torch.Tensor, padding_mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        if waveform.ndim != 2 or waveform.shape[1] < self.min_samples:
            raise ValueError(
                f"beats: expected waveforms [B, T] of at least {self.min_samples} samples, "
                f"got {tuple(waveform.shape)}"
            )
        fbank = (self.fbank(waveform * INT16_SCALE) - FBANK_MEAN) / (2 * FBANK_STD)
        x = self.patch_embedding(fbank.unsqueeze(1).to(self.patch_embedding.weight.dtype))
        x = self.layer_norm(x.flatten(2).transpose(1, 2))  # [B, time x freq patches, embed]
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        padding = None if padding_mask is None else self.frame_padding_mask(padding_mask, x.shape[1])
        if padding is not None and not padding.any():
            padding = None
        return self.encoder(self.dropout_input(x), padding)

    def frame_padding_mask(self, padding_mask: torch.Tensor, n_frames: int) -> torch.Tensor:
        """A filterbank frame is padding when all its samples are, a patch when all its frames are."""
        frames = padding_mask.unfold(1, self.fbank.win, self.fbank.hop).all(-1)
        patches = frames[:, : (n_frames // self.frame_groups) * self.patch]
        patches = patches.unflatten(1, (-1, self.patch)).all(-1)
        return patches.repeat_interleave(self.frame_groups, dim=1)

    # -- published checkpoint files -----------------------------------------------------------------------
    @classmethod
    def checkpoint_problem(cls, path: Path | str) -> str:
        return file_problem(path, published_where(EXPECTED, PUBLISHED_AT))

    @classmethod
    def from_checkpoint(cls, path: Path | str) -> Beats:
        data = read_checkpoint(path, EXPECTED, PUBLISHED_AT, _check_published)
        try:
            model = cls(BeatsConfig.from_published(data["cfg"]))
            model.load_published_state(data["model"])
        except (TypeError, ValueError, RuntimeError, KeyError) as exc:
            from asdkit.models.encoders.base import CheckpointError

            reason = str(exc).splitlines()[0][:200]
            raise CheckpointError(
                f"{path}: its weights do not fit its BEATs config ({reason}); the official files are "
                f"published at {PUBLISHED_AT}"
            ) from None
        return model.eval()

    def load_published_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load a published ``state_dict`` (the classifier of fine-tuned files is dropped)."""
        renamed = {}
        for key, value in state.items():
            if key.startswith("predictor."):
                continue
            if ".relative_attention_bias." in key:
                if not key.startswith("encoder.layers.0."):
                    continue  # the same table, repeated in every layer
                key = "encoder.relative_bias." + key.rsplit(".", 1)[1]
            key = key.replace("encoder.pos_conv.0.", "encoder.pos_conv.")
            if ".self_attn.grep_linear." in key:
                key, value = key.replace("grep_linear", "gate"), value.unflatten(0, (2, 4)).sum(1)
            renamed[key] = value
        self.load_state_dict(renamed, strict=True)

    def published_state(self) -> dict[str, torch.Tensor]:
        """This model's weights under the published names and shapes (random-weight test checkpoints)."""
        out = {}
        for key, value in self.state_dict().items():
            if key.startswith("encoder.relative_bias."):
                for i in range(self.num_layers):
                    out[f"encoder.layers.{i}.self_attn.relative_attention_bias.weight"] = value.clone()
                continue
            key = key.replace("encoder.pos_conv.", "encoder.pos_conv.0.")
            if ".self_attn.gate." in key:
                # 8 outputs whose sums of 4 are this layer's 2: split each evenly
                key = key.replace(".gate.", ".grep_linear.")
                value = value.repeat_interleave(4, dim=0) / 4
            out[key] = value
        return out

    # -- fine-tuning ----------------------------------------------------------------------------------------
    lora_targets: ClassVar[tuple[str, ...]] = ("q_proj", "k_proj", "v_proj", "out_proj")

    def architecture(self) -> dict[str, Any]:
        return self.cfg.to_published()

    @classmethod
    def from_architecture(cls, architecture: dict[str, Any]) -> Beats:
        return cls(BeatsConfig.from_published(architecture))

    def transformer_layers(self) -> list[nn.Module]:
        return list(self.encoder.layers)

    @classmethod
    def tiny(cls, seed: int = 0) -> Beats:
        torch.manual_seed(seed)
        return cls(BeatsConfig.tiny()).eval()

    @classmethod
    def save_random_checkpoint(cls, path: Path | str, seed: int = 0, size: str = "tiny") -> Path:
        shapes = {"tiny": BeatsConfig.tiny(), "small": BeatsConfig.small(), "base": BeatsConfig()}
        torch.manual_seed(seed)
        model = cls(shapes[size])
        for p in model.parameters():  # weights far from the init's symmetries, so every path matters
            if p.ndim >= 1:
                p.data.add_(0.02 * torch.randn_like(p))
        path = Path(path)
        torch.save({"cfg": model.cfg.to_published(), "model": model.published_state()}, path)
        return path


def _check_published(data: object) -> str:
    if not isinstance(data, dict) or "cfg" not in data or "model" not in data:
        keys = ", ".join(map(str, data)) if isinstance(data, dict) else type(data).__name__
        return f"holds {keys or 'nothing'}, not 'cfg' and 'model'"
    if not isinstance(data["cfg"], dict) or not isinstance(data["model"], dict):
        return "its 'cfg' and 'model' must be dicts"
    if "patch_embedding.weight" not in data["model"]:
        return "its 'model' has no patch_embedding.weight (not a BEATs model)"
    return ""
