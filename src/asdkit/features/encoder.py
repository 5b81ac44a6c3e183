"""Pretrained encoders as front ends: a clip's frame embeddings ``[embed_dim, frames]``, cached like log-mel.

A frozen encoder (BEATs, :mod:`asdkit.models.encoders`) is one more registered front end: its config names
the user's checkpoint file, the sha256 of that file (so the cache and the saved model are keyed by the
weights, not by where the file lies), which layers are mixed (one, the mean of several, or a weighted mix)
and whether the frames are the encoder's patches or one vector per time step. The array has the layout of
a log-mel spectrogram (rows = features, columns = frames), so every detector that reads frames or pools
them over time takes it unchanged: ``knn``/``mahalanobis``/``gmm`` with ``input=beats`` pool it (mean,
mean+std, GeM), ``patch_bank`` with ``input=beats`` keeps its frames.

Storage: BEATs base at 768 features x 62 time steps is 190 kB per 10-s clip (``frames="time"``), eight
times that with ``frames="patches"``. Embedding runs where :class:`asdkit.features.cache.FeatureCache` is
told (the GPU when there is one: ``accelerated``), batched over clips of equal length.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
import torch

from asdkit.errors import AudioError, ModelError
from asdkit.features.config import FeatureConfig
from asdkit.features.frontends import FrontEnd, register_front_end
from asdkit.models.encoders import AudioEncoder, checkpoint_sha256, get_encoder_class

FRAMES = ("time", "patches")


def parse_layers(text: str, num_layers: int | None = None) -> list[tuple[int, float]]:
    """``"all"``, ``"last"``, ``"12"``, ``"4,8,12"`` (their mean) or ``"4:0.2,12:0.8"`` (weighted, the
    weights normalised to sum 1) -> [(1-based layer, weight)]; layers are checked when ``num_layers`` is
    known."""
    text = str(text).strip()
    if text in ("all", "last"):
        if num_layers is None:
            return []
        chosen = list(range(1, num_layers + 1)) if text == "all" else [num_layers]
        return [(i, 1.0 / len(chosen)) for i in chosen]
    pairs = []
    try:
        for part in text.split(","):
            layer, _, weight = part.partition(":")
            pairs.append((int(layer), float(weight) if weight else 1.0))
    except ValueError:
        raise ValueError(
            f"layers: expected all, last, layer numbers such as 4,8,12 or weighted 4:0.2,12:0.8, got {text!r}"
        ) from None
    total = sum(w for _, w in pairs)
    if not pairs or total <= 0 or any(w < 0 for _, w in pairs):
        raise ValueError(f"layers: weights must be non-negative with a positive sum, got {text!r}")
    if num_layers is not None and any(not 1 <= i <= num_layers for i, _ in pairs):
        raise ValueError(f"layers: the encoder has layers 1..{num_layers}, got {text!r}")
    return [(i, w / total) for i, w in pairs]


@dataclass(frozen=True)
class EncoderConfig:
    """A frozen encoder's frames: which weights, which layers, which frames (saved with the model)."""

    #: the front end's name in the error on unknown settings
    kind: ClassVar[str] = "encoder"
    #: the user's checkpoint file (published format); only ``weights_sha256`` enters the cache key
    checkpoint: str = ""
    #: sha256 of the checkpoint file, filled by :meth:`resolved`
    weights_sha256: str = ""
    #: see :func:`parse_layers`
    layers: str = "all"
    #: "time": one vector per time step (an encoder's frequency patches averaged); "patches": every frame
    frames: str = "time"
    sample_rate: int = 16000
    channel: int | Literal["mix"] = 0

    def __post_init__(self) -> None:
        if self.frames not in FRAMES:
            raise ValueError(f"frames must be one of {', '.join(FRAMES)}, got {self.frames!r}")
        parse_layers(self.layers)

    def resolved(self) -> EncoderConfig:
        """This config with the sha256 of its checkpoint file (one line naming the file if it is missing)."""
        if not self.checkpoint or not Path(self.checkpoint).expanduser().exists():  # a file or a directory
            return self  # the encoder's loader names the missing file and where the official ones are
        return replace(self, weights_sha256=checkpoint_sha256(Path(self.checkpoint).expanduser()))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.kind} settings: {', '.join(sorted(unknown))}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EncoderFrontEnd(FrontEnd):
    """Frames of a registered encoder (``encoder``: its name in :mod:`asdkit.models.encoders`)."""

    encoder: ClassVar[str] = ""
    accelerated: ClassVar[bool] = True

    @classmethod
    def from_features(cls, features: FeatureConfig, **options: Any) -> FrontEnd:
        """Reads the channel the log-mel reads, at the encoder's own sample rate; checks the checkpoint."""
        rate = get_encoder_class(cls.encoder).sample_rate
        config = cls.config_type(**{"channel": features.channel, **options, "sample_rate": rate}).resolved()
        front = cls(config)
        front.load_encoder("cpu")  # a missing or wrong file fails here, before any clip is read
        return front

    def valid_shape(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == 2 and shape[1] > 0

    def cache_key(self) -> str:
        """The weights' hash, layers and frames (not the file's path: a moved file keeps its cache)."""
        import hashlib
        import json

        settings = {k: v for k, v in asdict(self.config).items() if k != "checkpoint"}
        blob = json.dumps({"front_end": self.name, **settings}, sort_keys=True).encode()
        return f"{self.name}-" + hashlib.sha1(blob).hexdigest()[:12]

    def load_encoder(self, device: str) -> AudioEncoder:
        return _encoder(self.encoder, self.config.checkpoint, self.config.weights_sha256, device)

    def check_wave(self, wave: np.ndarray, audio: Path) -> None:
        super().check_wave(wave, audio)
        shortest = getattr(self.load_encoder("cpu"), "min_samples", 1)
        if wave.shape[0] < shortest:
            raise AudioError(f"{audio}: {wave.shape[0]} samples, shorter than {self.name}'s {shortest}")

    def module(self, device: str = "cpu") -> torch.nn.Module:
        return _frames_module(type(self), self.config, device)


class EncoderFrames(torch.nn.Module):
    """Waveforms ``[T]`` or ``[B, T]`` -> the config's layer mix, ``[embed_dim, frames]`` (batched:
    ``[B, embed_dim, frames]``), float32; under autocast when the device is a GPU."""

    def __init__(self, encoder: AudioEncoder, config: EncoderConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.mix = parse_layers(config.layers, encoder.num_layers)
        self.time = config.frames == "time"

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        unbatched = wave.ndim == 1
        batch = wave.unsqueeze(0) if unbatched else wave
        device = batch.device.type
        with torch.inference_mode(), torch.autocast(device, dtype=torch.float16, enabled=device == "cuda"):
            layers = self.encoder(batch.float())
            mixed = sum(w * layers[i - 1].float() for i, w in self.mix)
        assert isinstance(mixed, torch.Tensor)
        if self.time:
            mixed = mixed.unflatten(1, (-1, self.encoder.frame_groups)).mean(2)
        out = mixed.transpose(1, 2).contiguous()
        return out[0] if unbatched else out


@functools.lru_cache(maxsize=4)
def _encoder(name: str, checkpoint: str, sha256: str, device: str) -> AudioEncoder:
    model = get_encoder_class(name).from_checkpoint(checkpoint)  # names an empty or missing path
    path = Path(checkpoint).expanduser()
    if sha256 and checkpoint_sha256(path) != sha256:
        raise ModelError(f"{path}: the checkpoint changed (sha256 {checkpoint_sha256(path)[:12]}..., "
                         f"expected {sha256[:12]}...)")  # fmt: skip
    return model.to(device).eval()


@functools.lru_cache(maxsize=4)
def _frames_module(kind: type[EncoderFrontEnd], config: EncoderConfig, device: str) -> EncoderFrames:
    return EncoderFrames(_encoder(kind.encoder, config.checkpoint, config.weights_sha256, device), config)


@dataclass(frozen=True)
class BeatsInputConfig(EncoderConfig):
    """BEATs frames (:class:`asdkit.models.encoders.beats.Beats`); fields as :class:`EncoderConfig`."""

    kind: ClassVar[str] = "beats"


@register_front_end
class BeatsFrontEnd(EncoderFrontEnd):
    """BEATs frames ``[768, frames]`` of the user's checkpoint (cache folder ``beats-*``)."""

    name = "beats"
    encoder = "beats"
    config_type = BeatsInputConfig
