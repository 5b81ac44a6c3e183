"""The feature configuration: saved with every model so that scoring computes exactly what training saw."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel front end, DCASE baseline defaults.

    dB conversion follows ``librosa.power_to_db(S, ref=1.0, amin=amin, top_db=top_db)``; the official
    baselines add machine epsilon instead of flooring at ``amin``, which differs only on digital silence.
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 512
    win_length: int | None = None
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None
    power: float = 2.0
    amin: float = 1e-10
    top_db: float | None = None
    center: bool = True
    channel: int | Literal["mix"] = 0

    def valid_shape(self, shape: tuple[int, ...]) -> bool:
        """Whether a stored array has the layout this configuration computes, ``[n_mels, frames]``."""
        return len(shape) == 2 and shape[0] == self.n_mels

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureConfig:
        """The config of ``data``; a ``front_end`` key names a registered log-mel variant (noise_aware)."""
        target, settings = cls.split_front_end(data)
        if target is not cls:
            return target.from_dict(settings)
        return cls(**settings)

    @classmethod
    def split_front_end(cls, data: dict[str, Any]) -> tuple[type[FeatureConfig], dict[str, Any]]:
        """The config type ``data`` names (its ``front_end`` key, else ``cls``) and the other settings,
        checked to be that type's fields; ValueError naming unknown ones."""
        settings = dict(data)
        name = settings.pop("front_end", None)
        target = cls if name is None else _variant(str(name))
        unknown = set(settings) - {f.name for f in fields(target)}
        if unknown:
            raise ValueError(f"unknown feature settings: {', '.join(sorted(unknown))}")
        return target, settings

    def key(self) -> str:
        """A short stable hash of the configuration, used in cache file names."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha1(blob).hexdigest()[:12]


def _variant(name: str) -> type[FeatureConfig]:
    """The config type of the registered front end ``name``, which must be a log-mel variant."""
    from asdkit.errors import AsdkitError
    from asdkit.features.frontends import get_front_end

    try:
        target = get_front_end(name).config_type
    except AsdkitError as exc:
        raise ValueError(str(exc)) from None
    if not (isinstance(target, type) and issubclass(target, FeatureConfig)):
        raise ValueError(f"front end {name!r} is not a log-mel variant every detector can read")
    return target
