"""The front end a bank detector reads, by parameter: log-mel or any registered front end of the same layout
``[features, frames]`` (a frozen pretrained encoder such as ``beats``).

``input`` names the front end; ``checkpoint`` and ``layers`` go to an encoder front end's config
(:class:`asdkit.features.encoder.EncoderConfig`) and are ignored by the others. The detector then reads
``X.arrays_of(input)`` wherever it read log-mel, so ``knn``, ``mahalanobis``, ``gmm`` and ``patch_bank``
work on encoder embeddings with no code of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from asdkit.detectors.base import ClipFeatures
from asdkit.detectors.params import ParamConflict, RegistryWords
from asdkit.detectors.tags import DetectorTags
from asdkit.errors import ModelError
from asdkit.features.encoder import parse_layers
from asdkit.features.frontends import LOGMEL, available_front_ends, get_front_end
from asdkit.models.encoders import get_encoder_class

POOLINGS = ("mean_std", "mean", "gem")
#: GeM's exponent: between the mean (1) and the maximum (infinity), as in image retrieval
GEM_POWER = 3.0


class InputChoice:
    """Mixin of a detector with ``input``, ``checkpoint`` and ``layers`` parameters."""

    choices: ClassVar[dict[str, Sequence[str]]] = {
        "pooling": POOLINGS,
        "input": RegistryWords(available_front_ends),
    }
    parsers: ClassVar[dict[str, Callable[[str], object]]] = {"layers": parse_layers}

    input: str
    checkpoint: str
    layers: str
    name: str

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> None:
        """An encoder's input (``input=beats``) needs its ``checkpoint``: given, there and readable (the
        encoder's loader asks the same when the features are computed)."""
        from asdkit.features.encoder import EncoderFrontEnd

        front = get_front_end(params["input"])
        if issubclass(front, EncoderFrontEnd):
            problem = get_encoder_class(front.encoder).checkpoint_problem(params["checkpoint"])
            if problem:
                key = "checkpoint" if params["checkpoint"] else "input"
                raise ParamConflict(key, params[key], problem)

    def _with_input(self, tags: DetectorTags) -> DetectorTags:
        if self.input == LOGMEL or self.input in tags.inputs:
            return tags
        return replace(tags, inputs=(*tags.inputs, self.input))

    def _input_options(self, name: str) -> dict[str, Any]:
        from asdkit.features.encoder import EncoderFrontEnd

        if name == self.input and issubclass(get_front_end(name), EncoderFrontEnd):
            return {"checkpoint": self.checkpoint, "layers": self.layers}
        return {}

    def _frames(self, X: ClipFeatures) -> Sequence[np.ndarray]:
        """The ``[features, frames]`` arrays of the chosen input."""
        arrays = X.arrays_of(self.input)
        if arrays is None:
            raise ModelError(f"{self.name}: the features lack input {self.input!r}")
        return arrays


def pool_frames(frames: np.ndarray, pooling: str, quantiles: Sequence[float] = ()) -> np.ndarray:
    """One vector from a clip's ``[features, frames]``: per-feature mean and standard deviation over frames
    (``mean_std``), the mean, or GeM (the cube root of the mean cube, of frames floored at 1e-6: meant for
    non-negative features); then each per-feature quantile."""
    x = np.asarray(frames, dtype=np.float64)
    if pooling == "mean_std":
        parts = [x.mean(axis=1), x.std(axis=1)]
    elif pooling == "mean":
        parts = [x.mean(axis=1)]
    elif pooling == "gem":
        parts = [np.mean(np.maximum(x, 1e-6) ** GEM_POWER, axis=1) ** (1.0 / GEM_POWER)]
    else:
        raise ModelError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    if quantiles:
        parts += list(np.quantile(x, quantiles, axis=1))
    return np.concatenate(parts)
