"""Seed ensembles of one detector (``n_models=K``): the same configuration trained K times, as one model.

Learned embeddings on a few clips swing between seeds (an AdaCos run on 12 fan clips went from 0.61 to
0.88). Averaging K networks of different seeds narrows that spread. The K members are trained by
:class:`asdkit.detectors.ensemble.EnsembleDetector` (each member's scores z-normalised with its own
training scores, then averaged), with seeds ``seed * K + i``, so ensembles of different outer seeds share
no member; all hold out the clips of the outer seed's split (``split_seed``), so the threshold is fitted on
every held-out clip, not on the few that K different splits happen to share. The saved model is one
folder, the ensemble saved as a model of its own in ``seed_ensemble/`` (format 1 kept every member's
configuration in model.json and every network in weights.pt; it loads).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from asdkit.detectors.base import ClipFeatures, Detector
from asdkit.detectors.ensemble import EnsembleDetector
from asdkit.errors import ModelError

#: The key of the saved state and the sub-folder that holds the ensemble.
STATE = "seed_ensemble"


class SeedEnsembleMixin:
    """Mixed in before a detector's base: with ``n_models > 1`` it fits, scores and saves K seeds."""

    name: str
    n_models: int
    seed: int
    split_seed: int | None

    def _held_out_seed(self) -> int:
        """A seed ensemble's members share its split, so its threshold rests on every held-out clip."""
        return self.seed if self.split_seed is None else self.split_seed

    def _seed_ensemble(self) -> EnsembleDetector:
        params: dict[str, Any] = self.get_params()  # type: ignore[attr-defined]
        k = int(self.n_models)
        members = [
            {
                "model": self.name,
                "params": {
                    **params,
                    "n_models": 1,
                    "seed": params["seed"] * k + i,
                    "split_seed": params["seed"],
                },
            }
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
        self.history_ = [row for m in ensemble.members_ for row in m.training_history()]

    def _score(self, X: ClipFeatures) -> np.ndarray:
        if self.n_models == 1:
            return super()._score(X)  # type: ignore[misc]
        return self.ensemble_.anomaly_score(X)

    def _training_scores(self, X: ClipFeatures) -> np.ndarray:
        if self.n_models == 1:
            return super()._training_scores(X)  # type: ignore[misc]
        return self.ensemble_.held_out_scores_

    def _extra_state(self) -> dict[str, Any]:
        if self.n_models == 1:
            return super()._extra_state()  # type: ignore[misc]
        return {STATE: {"folder": STATE}}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        if self.n_models == 1:
            super()._load_extra_state(state)  # type: ignore[misc]
            return
        # format 1 held the ensemble's state here (its members' weights in weights.pt)
        self._format1_state: dict[str, Any] | None = state[STATE] if "members" in state[STATE] else None

    def _fitted_arrays(self) -> dict[str, np.ndarray]:
        if self.n_models == 1:
            return super()._fitted_arrays()  # type: ignore[misc]
        return {}

    def _set_fitted_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        if self.n_models == 1:
            super()._set_fitted_arrays(arrays)  # type: ignore[misc]
        elif self._format1_state is not None:
            config = {
                "detector": EnsembleDetector.name,
                "params": self._seed_ensemble().get_params(),
                "features": self.feature_config_.to_dict(),  # type: ignore[attr-defined]
                "threshold": self.threshold_,  # type: ignore[attr-defined]
                "state": self._format1_state,
            }
            self.ensemble_ = Detector.from_config(config, None, arrays)

    def _save_parts(self, path: Path) -> None:
        if self.n_models == 1:
            super()._save_parts(path)  # type: ignore[misc]
        else:
            self.ensemble_.save(path / STATE)

    def _load_parts(self, path: Path) -> None:
        if self.n_models == 1:
            super()._load_parts(path)  # type: ignore[misc]
        elif self._format1_state is None:
            self.ensemble_ = Detector.load(path / STATE)
