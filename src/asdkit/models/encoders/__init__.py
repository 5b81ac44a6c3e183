"""Pretrained audio encoders (BEATs, ...): plain nn.Modules that load the user's published checkpoints.

Interface (:class:`AudioEncoder`): ``sample_rate``, ``embed_dim``, ``num_layers``, ``frame_groups``;
``forward(waveform [B, T] float32, padding_mask [B, T] bool | None) -> list[[B, frames, embed_dim]]`` (one
per transformer layer, last = final output); ``frame_padding_mask``; ``from_checkpoint(path)``;
``tiny(seed)``; ``save_random_checkpoint(path, seed, size)``. Registry: :func:`get_encoder_class`,
:func:`available_encoders`, :func:`load_encoder`, :func:`build_tiny_encoder`.
"""

from asdkit.models.encoders.base import (
    AudioEncoder,
    CheckpointError,
    available_encoders,
    build_tiny_encoder,
    checkpoint_sha256,
    get_encoder_class,
    load_encoder,
    register_encoder,
)

__all__ = [
    "AudioEncoder",
    "CheckpointError",
    "available_encoders",
    "build_tiny_encoder",
    "checkpoint_sha256",
    "get_encoder_class",
    "load_encoder",
    "register_encoder",
]
