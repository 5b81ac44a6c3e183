"""Variational autoencoder on stacked log-mel frames (a DCASE2020 variant of the dense AE baseline).

Loss per item = ``recon_weight`` * MSE + ``kl_weight`` * KL, both means (MSE over the n_mels * n_frames
values, KL over the latent dimensions), so the weights mean the same whatever the sizes; the MSE is taken
on standardised log-mels (per-band mean, one overall scale learnt from the training clips), so they
mean the same whatever the recording level too. Users usually try one of five weightings, shipped as
:data:`PRESETS` ("recon:kl"):

========== ===============================================================================================
``1:0.01`` default: reconstruction-led, the latent mildly pulled to the prior
``1:0``    no KL: behaves like the plain AE with a noisy bottleneck (the encoder learns to shrink the
           noise); scored on the posterior mean, it is a deterministic AE
``0.01:1`` prior-led: a heavily regularised latent, blurry reconstructions
``0:1``    prior only: the decoder gets no gradient; a degenerate reference point, not a detector to use
``1:1``    unit weights (with these means, KL counts n_features/latent times more than in a sum-based loss)
========== ===============================================================================================

A preset sets both weights. Rule for explicit weights: without a preset, a weight left ``None`` takes the
default preset's value; with a preset, an explicit weight must equal the preset's (or the fit stops with
an error naming both), so a model's parameters never say two different things.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from asdkit.detectors.base import ClipFeatures
from asdkit.detectors.params import ParamConflict
from asdkit.detectors.reconstruction.family import ReconstructionDetector
from asdkit.detectors.registry import register
from asdkit.errors import AsdkitError
from asdkit.models.vae import VariationalAutoencoder, kl_divergence

#: name -> (recon_weight, kl_weight); the name is "recon:kl".
PRESETS: dict[str, tuple[float, float]] = {
    "1:0.01": (1.0, 0.01),
    "1:0": (1.0, 0.0),
    "0.01:1": (0.01, 1.0),
    "0:1": (0.0, 1.0),
    "1:1": (1.0, 1.0),
}
DEFAULT_PRESET = "1:0.01"
#: The preset that acts like the plain AE (no KL term).
AE_LIKE_PRESET = "1:0"
SCORES = ("recon", "elbo")


class VaeParameterError(AsdkitError, ValueError):
    """Inconsistent VAE parameters (a ValueError for scikit-learn habits, one line in the CLI);
    ``parameter`` is the one the message starts from."""

    def __init__(self, message: str, parameter: str = "preset") -> None:
        super().__init__(message)
        self.parameter = parameter


def resolve_weights(
    preset: str | None, recon_weight: float | None, kl_weight: float | None
) -> tuple[float, float]:
    """The (recon, kl) weights that ``preset`` and explicit weights give, by the module's rule."""
    if preset is not None and preset not in PRESETS:
        raise VaeParameterError(f"vae: unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
    base = PRESETS[preset if preset is not None else DEFAULT_PRESET]
    weights = []
    for name, given, default in (("recon_weight", recon_weight, base[0]), ("kl_weight", kl_weight, base[1])):
        if given is None:
            weights.append(default)
            continue
        try:
            value = float(given)
        except (TypeError, ValueError):
            raise VaeParameterError(f"vae: {name} must be a number, got {given!r}", name) from None
        if preset is not None and value != default:
            raise VaeParameterError(
                f"vae: preset {preset!r} sets {name}={default:g} but {name}={value:g} was given; "
                "drop one of them"
            )
        if not value >= 0.0:
            raise VaeParameterError(f"vae: {name} must be >= 0, got {given!r}", name)
        weights.append(value)
    if weights == [0.0, 0.0]:
        raise VaeParameterError(
            "vae: recon_weight and kl_weight are both 0; nothing to learn", "recon_weight"
        )
    return weights[0], weights[1]


@register
class VaeDetector(ReconstructionDetector):
    """Variational AE on 5 stacked frames: score = MSE of the posterior mean's reconstruction, or -ELBO.

    ``score="recon"`` (default): MSE (dB**2, like the AE) of the posterior mean's reconstruction; no
    sampling, so scores are deterministic. ``score="elbo"``: the unit-weight negative ELBO evaluated at
    the posterior mean, MSE + KL on the standardised scale, multiplied back to dB**2: comparable across
    presets and never below the "recon" score. ``preset``/``recon_weight``/``kl_weight``: see the module doc.
    """

    name: ClassVar[str] = "vae"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"score": SCORES, "preset": tuple(PRESETS)}
    standardise: ClassVar[bool] = True

    recon_weight_: float
    kl_weight_: float

    def __init__(
        self,
        n_frames: int = 5,
        hidden: int = 128,
        latent: int = 8,
        n_hidden: int = 4,
        preset: str | None = None,
        recon_weight: float | None = None,
        kl_weight: float | None = None,
        score: str = "recon",
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self.n_frames = n_frames
        self.hidden = hidden
        self.latent = latent
        self.n_hidden = n_hidden
        self.preset = preset
        self.recon_weight = recon_weight
        self.kl_weight = kl_weight
        self.score = score

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> None:
        """A preset and an explicit weight that says otherwise, or two zero weights (:func:`resolve_weights`,
        which fit reads too)."""
        try:
            resolve_weights(params["preset"], params["recon_weight"], params["kl_weight"])
        except VaeParameterError as exc:
            key = exc.parameter
            raise ParamConflict(key, params[key], str(exc).removeprefix("vae: ")) from None

    def weights(self) -> tuple[float, float]:
        """The (recon, kl) loss weights these parameters give (errors on a conflict)."""
        return resolve_weights(self.preset, self.recon_weight, self.kl_weight)

    def _fit(self, X: ClipFeatures) -> None:
        self._check_score()
        self.recon_weight_, self.kl_weight_ = self.weights()
        super()._fit(X)

    def _network(self, n_mels: int) -> nn.Module:
        return VariationalAutoencoder(n_mels, self.n_frames, self.hidden, self.latent, self.n_hidden)

    def _loss(self, network: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        """Weighted -ELBO with the MSE in standardised units, so the presets do not depend on dB levels."""
        recon, mean, log_var = network.sample(batch)  # type: ignore[operator]
        mse = ((recon - batch) ** 2).mean(dim=1) / network.scaler.scale**2  # type: ignore[union-attr]
        return (self.recon_weight_ * mse + self.kl_weight_ * kl_divergence(mean, log_var)).mean()

    def _item_errors(self, network: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        """MSE in dB**2 of the posterior mean's reconstruction (+ KL, rescaled to dB**2, for "elbo")."""
        self._check_score()
        mean, log_var = network.encode(batch)  # type: ignore[operator]
        errors = ((network.decode(mean) - batch) ** 2).mean(dim=1)  # type: ignore[operator]
        if self.score == "elbo":
            errors = errors + network.scaler.scale**2 * kl_divergence(mean, log_var)  # type: ignore[union-attr]
        return errors

    def _check_score(self) -> None:
        if self.score not in SCORES:
            raise VaeParameterError(f"vae: score must be one of {', '.join(SCORES)}, got {self.score!r}")

    def _extra_state(self) -> dict[str, Any]:
        return {**super()._extra_state(), "recon_weight": self.recon_weight_, "kl_weight": self.kl_weight_}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        super()._load_extra_state(state)
        self.recon_weight_ = float(state["recon_weight"])
        self.kl_weight_ = float(state["kl_weight"])
