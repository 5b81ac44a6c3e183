"""The pretrained audio encoder interface and its registry.

An encoder maps waveforms to the frame embeddings of every transformer layer. Front ends
(:mod:`asdkit.features.encoder`) pool them into clip vectors or frames for the bank detectors; a fine-tuning
head trains on top of them. Every encoder is built from a checkpoint file that the user supplies (nothing is
downloaded), or with random weights of a tiny shape for tests.
"""

from __future__ import annotations

import hashlib
import os
from abc import abstractmethod
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, TypeVar

import torch
from torch import nn

from asdkit.errors import ModelError


class CheckpointError(ModelError):
    """A missing or unusable encoder checkpoint file (the message says what was expected and where the
    published files are)."""


class AudioEncoder(nn.Module):
    """Waveforms ``[B, T]`` (float32 at ``sample_rate``) -> every layer's frames ``[B, frames, embed_dim]``.

    ``forward`` returns ``num_layers`` tensors, the output of layer 1 first and the final output last.
    ``padding_mask`` ([B, T] bool, True = padding sample) marks the padded end of shorter clips in a batch;
    :meth:`frame_padding_mask` gives the matching mask of the output frames, for pooling.
    ``frame_groups`` consecutive output frames share one time step (BEATs: its frequency patches), so
    ``frames.unflatten(1, (-1, frame_groups)).mean(2)`` is one vector per time step.
    """

    name: ClassVar[str] = ""
    #: where the published checkpoint files are, for error messages
    published_at: ClassVar[str] = ""

    sample_rate: int
    embed_dim: int
    num_layers: int
    frame_groups: int = 1

    @abstractmethod
    def forward(self, waveform: torch.Tensor, padding_mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Every layer's frame embeddings, last = final output."""

    @abstractmethod
    def frame_padding_mask(self, padding_mask: torch.Tensor, n_frames: int) -> torch.Tensor:
        """[B, n_frames] bool: the output frames made only of padding samples."""

    @classmethod
    @abstractmethod
    def from_checkpoint(cls, path: Path | str) -> AudioEncoder:
        """The encoder of a published checkpoint file, in eval mode, on the CPU."""

    @classmethod
    @abstractmethod
    def checkpoint_problem(cls, path: Path | str) -> str:
        """Empty when ``path`` names a checkpoint there to be read, else one line saying what is wrong
        (nothing is loaded: detectors ask before any data is read; :meth:`from_checkpoint` asks first)."""

    @classmethod
    @abstractmethod
    def tiny(cls, seed: int = 0) -> AudioEncoder:
        """A few-layer, narrow encoder with random weights (tests)."""

    # -- what fine-tuning needs (asdkit.models.encoder_classifier) -------------------------------------------
    #: the names of the linear layers that LoRA adapts (attention projections)
    lora_targets: ClassVar[tuple[str, ...]] = ()

    def architecture(self) -> dict:
        """The JSON-able shape of this encoder, from which :meth:`from_architecture` rebuilds it (untrained):
        a fine-tuned encoder is saved as this and its state_dict, not as the user's checkpoint."""
        raise ModelError(f"encoder {self.name!r} cannot be fine-tuned (it does not record its architecture)")

    @classmethod
    def from_architecture(cls, architecture: dict) -> AudioEncoder:
        raise ModelError(f"encoder {cls.name!r} cannot be fine-tuned (it cannot be rebuilt from its shape)")

    def transformer_layers(self) -> list[nn.Module]:
        """The encoder's layers, input side first: layer-wise learning-rate decay scales each one's rate
        (what is not in a layer, the patch embedding, counts as the layer before the first)."""
        raise ModelError(f"encoder {self.name!r} does not list its layers for layer-wise learning rates")

    @classmethod
    @abstractmethod
    def save_random_checkpoint(cls, path: Path | str, seed: int = 0, size: str = "tiny") -> Path:
        """Write a random-weight checkpoint in the published file format (tests and benchmarks)."""


E = TypeVar("E", bound=type[AudioEncoder])
_ENCODERS: dict[str, type[AudioEncoder]] = {}


def register_encoder(cls: E) -> E:
    """Class decorator: make ``cls`` available by its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no encoder name")
    if cls.name in _ENCODERS and _ENCODERS[cls.name] is not cls:
        raise ValueError(f"encoder {cls.name!r} is already registered by {_ENCODERS[cls.name].__name__}")
    _ENCODERS[cls.name] = cls
    return cls


def _load_builtin() -> None:
    import asdkit.models.encoders.ast  # registers itself; imports transformers only when used
    import asdkit.models.encoders.beats  # noqa: F401  (registers itself)


def available_encoders() -> list[str]:
    _load_builtin()
    return sorted(_ENCODERS)


def get_encoder_class(name: str) -> type[AudioEncoder]:
    _load_builtin()
    try:
        return _ENCODERS[name]
    except KeyError:
        raise ModelError(f"unknown encoder {name!r}; available: {', '.join(sorted(_ENCODERS))}") from None


def load_encoder(name: str, checkpoint: Path | str) -> AudioEncoder:
    """Encoder ``name`` with the weights of the user's ``checkpoint`` file (CPU, eval mode)."""
    return get_encoder_class(name).from_checkpoint(checkpoint)


def build_tiny_encoder(name: str, seed: int = 0) -> AudioEncoder:
    """Encoder ``name`` in its tiny random-weight configuration (tests)."""
    return get_encoder_class(name).tiny(seed)


def checkpoint_sha256(path: Path | str) -> str:
    """The sha256 of a checkpoint file, memoised by (resolved path, size, mtime); of a checkpoint directory
    (``save_pretrained``), the sha256 of its files' names and hashes."""
    resolved = Path(path).expanduser().resolve()
    if resolved.is_dir():
        files = sorted(p for p in resolved.rglob("*") if p.is_file())
        listing = "".join(f"{p.relative_to(resolved)}\0{checkpoint_sha256(p)}\n" for p in files)
        return hashlib.sha256(listing.encode()).hexdigest()
    st = resolved.stat()
    return _sha256(str(resolved), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def published_where(what: str, published_at: str) -> str:
    """What a checkpoint file was expected to be and where the official ones are, for error messages."""
    return f"expected {what}; the official files are published at {published_at}"


def file_problem(path: Path | str, where: str, inside: str = "", kind: str = "checkpoint file") -> str:
    """Empty when ``path`` (with ``inside``: that file in the directory ``path``) is a file this process
    can read, else one line: no path given, no such ``kind``, or not readable; ``where`` says what was
    expected and where the published files are."""
    if not str(path):
        return f"no checkpoint given: {where} (give --param checkpoint=PATH)"
    given = Path(os.path.expanduser(str(path)))
    file = given / inside if inside else given
    if not file.is_file():
        return f"{given}: no such {kind}; {where}"
    try:
        with open(file, "rb"):
            pass
    except OSError as exc:
        return f"{file}: cannot be read ({exc.strerror or type(exc).__name__}); {where}"
    return ""


def read_checkpoint(path: Path | str, what: str, published_at: str, check: Callable[[object], str]) -> dict:
    """``torch.load(path)`` of a published checkpoint, or one CheckpointError line.

    ``check`` returns "" for a usable object, else what is wrong with it. Published checkpoints hold plain
    dicts and tensors, so they load with ``weights_only=True``: no pickled code runs.
    """
    file = Path(os.path.expanduser(str(path)))
    where = published_where(what, published_at)
    problem = file_problem(path, where)
    if problem:
        raise CheckpointError(problem)
    try:
        data = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated file, another format: torch raises many kinds
        detail = str(exc).splitlines()[0][:160] if str(exc) else ""
        reason = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        raise CheckpointError(f"{file}: not a readable checkpoint ({reason}); {where}") from None
    problem = check(data)
    if problem:
        raise CheckpointError(f"{file}: {problem}; {where}")
    return data  # type: ignore[return-value]
