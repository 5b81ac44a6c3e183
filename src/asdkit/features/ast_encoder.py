"""AST frames (transformers' ASTModel, :mod:`asdkit.models.encoders.ast`) as a front end, like ``beats``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from asdkit.features.encoder import EncoderConfig, EncoderFrontEnd
from asdkit.features.frontends import register_front_end


@dataclass(frozen=True)
class AstInputConfig(EncoderConfig):
    """AST frames; fields as :class:`asdkit.features.encoder.EncoderConfig` (``checkpoint``: a directory
    written by ``save_pretrained``)."""

    kind: ClassVar[str] = "ast"


@register_front_end
class AstFrontEnd(EncoderFrontEnd):
    """AST frames ``[768, frames]`` of the user's model directory (cache folder ``ast-*``)."""

    name = "ast"
    encoder = "ast"
    config_type = AstInputConfig
