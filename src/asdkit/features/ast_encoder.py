"""AST frames (transformers' ASTModel, :mod:`asdkit.models.encoders.ast`) as a front end, like ``beats``."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from asdkit.features.encoder import EncoderConfig, EncoderFrontEnd
from asdkit.features.frontends import register_front_end


@dataclass(frozen=True)
class AstInputConfig(EncoderConfig):
    """AST frames; fields as :class:`asdkit.features.encoder.EncoderConfig` (``checkpoint``: a directory
    written by ``save_pretrained``)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AstInputConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown ast settings: {', '.join(sorted(unknown))}")
        return cls(**data)


@register_front_end
class AstFrontEnd(EncoderFrontEnd):
    """AST frames ``[768, frames]`` of the user's model directory (cache folder ``ast-*``)."""

    name = "ast"
    encoder = "ast"
    config_type = AstInputConfig
