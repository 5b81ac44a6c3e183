"""Seed ensembles of one detector (``n_models=K``): the same configuration trained K times, as one model.

Learned embeddings on a few clips swing between seeds (an AdaCos run on 12 fan clips went from 0.61 to
0.88). Averaging K networks of different seeds narrows that spread. The K members are trained by
:class:`asdkit.detectors.ensemble.EnsembleDetector` (each member's scores z-normalised with its own
training scores, then averaged), with seeds ``seed * K + i``, so ensembles of different outer seeds share
no member. The saved model is one folder: every member's configuration in model.json, every network in
weights.pt (loaded with ``weights_only=True``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from asdkit.detectors.base import ClipFeatures
from asdkit.detectors.ensemble import EnsembleDetector
from asdkit.errors import ModelError

STATE = "seed_ensemble"


class SeedEnsembleMixin:
    """Mixed in before a detector's base: with ``n_models > 1`` it fits, scores and saves K seeds."""

    name: str
    n_models: int

    def _seed_ensemble(self) -> EnsembleDetector:
        params: dict[str, Any] = self.get_params()  # type: ignore[attr-defined]
        k = int(self.n_models)
        members = [
            {"model": self.name, "params": {**params, "n_models": 1, "seed": params["seed"] * k + i}}
            for i in range(k)
        ]
        return EnsembleDetector(members=members, normalise="zscore", seed=params["seed"])

    def _fit(self, X: ClipFeatures) -> None:
        if not isinstance(self.n_models, int) or self.n_models < 1:
            raise ModelError(f"{self.name}: n_models must be a positive integer, got {self.n_models!r}")
        if self.n_models == 1:
            super()._fit(X)  # type: ignore[misc]
            return
        ensemble = self._seed_ensemble()
        ensemble.fit(X)  # X carries the proxy clips the members' tags ask for
        self.ensemble_ = ensemble
        self.network_ = ensemble.network_
        self.history_ = [row for m in ensemble.members_ for row in m.training_history()]

    def _score(self, X: ClipFeatures) -> np.ndarray:
        if self.n_models == 1:
            return super()._score(X)  # type: ignore[misc]
        return self.ensemble_._score(X)

    def _training_scores(self, X: ClipFeatures) -> np.ndarray:
        if self.n_models == 1:
            return super()._training_scores(X)  # type: ignore[misc]
        return self.ensemble_._training_scores(X)

    def _extra_state(self) -> dict[str, Any]:
        if self.n_models == 1:
            return super()._extra_state()  # type: ignore[misc]
        return {STATE: self.ensemble_._extra_state()}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        if self.n_models == 1:
            super()._load_extra_state(state)  # type: ignore[misc]
            return
        ensemble = self._seed_ensemble()
        ensemble.feature_config_ = self.feature_config_  # type: ignore[attr-defined]
        ensemble._load_extra_state(state[STATE])
        self.ensemble_ = ensemble
        self.network_ = ensemble.network_
