"""Seed ensembles of one detector (``n_models=K``): the same configuration trained K times, as one model.

Learned embeddings on a few clips swing between seeds (an AdaCos run on 12 fan clips went from 0.61 to
0.88). Averaging K networks of different seeds narrows that spread. The K members are trained by
:class:`asdkit.detectors.ensemble.EnsembleDetector` (each member's scores z-normalised with its own
training scores, then averaged), with seeds ``seed * K + i``, so ensembles of different outer seeds share
no member; all hold out the clips of the outer seed's split (``split_seed``), so the threshold is fitted on
every held-out clip, not on the few that K different splits happen to share. The saved model is one
folder, the ensemble saved as a model of its own in ``seed_ensemble/`` (format 1 kept every member's
configuration in model.json and every network in weights.pt; it loads).

``ensemble_mode="embeddings"`` (on the detectors that take it) ensembles before the back end instead: the K
members' clip embeddings, each L2-normalised and scaled by ``1/sqrt(K)``, side by side, in one set of
memory banks. Concatenated, not averaged: seeds place their classes in unrelated directions, so a mean of
coordinates mixes unrelated axes, while the cosine similarity of two joint embeddings is the mean of the
members' cosine similarities (no alignment needed) and a clip's neighbours are the clips all seeds agree
are near. The members are saved as models of their own in ``seed_members/m<i>/``, the joint banks as the
detector's arrays. ``scores`` (the default) is the z-normalised mean of the members' scores above.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from asdkit.detectors.base import ClipFeatures, Detector
from asdkit.detectors.ensemble import EnsembleDetector
from asdkit.errors import ModelError

#: The key of the saved state and the sub-folder that holds the ensemble.
STATE = "seed_ensemble"
#: The key of the saved state and the sub-folder that hold an embedding ensemble's members.
MEMBERS = "seed_members"
#: How K seeds are combined: the mean of their normalised scores, or one back end on their embeddings.
ENSEMBLE_MODES = ("scores", "embeddings")


class SeedEnsembleMixin:
    """Mixed in before a detector's base: with ``n_models > 1`` it fits, scores and saves K seeds."""

    name: str
    n_models: int
    seed: int
    split_seed: int | None
    #: a detector without an ``ensemble_mode`` parameter ensembles scores
    ensemble_mode: str = "scores"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"ensemble_mode": ENSEMBLE_MODES}

    def _held_out_seed(self) -> int:
        """A seed ensemble's members share its split, so its threshold rests on every held-out clip."""
        return self.seed if self.split_seed is None else self.split_seed

    def _member_params(self) -> list[dict[str, Any]]:
        """Each seed's parameters: one model of seed ``seed * K + i``, holding out the outer seed's clips."""
        params: dict[str, Any] = self.get_params()  # type: ignore[attr-defined]
        k = int(self.n_models)
        return [
            {**params, "n_models": 1, "seed": params["seed"] * k + i, "split_seed": params["seed"]}
            for i in range(k)
        ]

    def _seed_ensemble(self) -> EnsembleDetector:
        members = [{"model": self.name, "params": p} for p in self._member_params()]
        return EnsembleDetector(members=members, normalise="zscore", seed=self.seed)

    def _embedding_ensemble(self) -> bool:
        return self.n_models > 1 and self.ensemble_mode == "embeddings"

    def _fit(self, X: ClipFeatures) -> None:
        if not isinstance(self.n_models, int) or self.n_models < 1:
            raise ModelError(f"{self.name}: n_models must be a positive integer, got {self.n_models!r}")
        if self.ensemble_mode not in ENSEMBLE_MODES:
            raise ModelError(
                f"{self.name}: ensemble_mode must be one of {', '.join(ENSEMBLE_MODES)}, "
                f"got {self.ensemble_mode!r}"
            )
        if self.n_models == 1:
            super()._fit(X)  # type: ignore[misc]
            return
        if self._embedding_ensemble():
            self._make_scorer()  # type: ignore[attr-defined]  # bad scorer options fail before any training
            # each member holds out the outer seed's clips (split_seed), so they are held out of all K
            self.seed_members_ = [type(self)(**p).fit(X) for p in self._member_params()]
            self._held_out_idx = list(getattr(self.seed_members_[0], "_held_out_idx", []))
            self.history_ = [row for m in self.seed_members_ for row in m.training_history()]
            self._fit_banks(X)  # type: ignore[attr-defined]  # on joint_embedding (the detector's embed)
            return
        ensemble = self._seed_ensemble()
        ensemble.fit(X)  # X carries the proxy clips the members' tags ask for
        self.ensemble_ = ensemble
        self.history_ = [row for m in ensemble.members_ for row in m.training_history()]

    def joint_embedding(self, X: ClipFeatures) -> np.ndarray:
        """The members' L2-normalised clip embeddings side by side, scaled to unit norm: [n_clips, K*dim]."""
        parts = [m.embed(X) for m in self.seed_members_]
        unit = [e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12) for e in parts]
        return np.concatenate(unit, axis=1) / np.sqrt(len(unit))

    def _score(self, X: ClipFeatures) -> np.ndarray:
        if self.n_models == 1 or self._embedding_ensemble():
            return super()._score(X)  # type: ignore[misc]
        return self.ensemble_.anomaly_score(X)

    def _training_scores(self, X: ClipFeatures) -> np.ndarray:
        if self.n_models == 1 or self._embedding_ensemble():
            return super()._training_scores(X)  # type: ignore[misc]
        return self.ensemble_.held_out_scores_

    def _extra_state(self) -> dict[str, Any]:
        if self.n_models == 1:
            return super()._extra_state()  # type: ignore[misc]
        if self._embedding_ensemble():
            return {"banks": self.bank_layout_, MEMBERS: {"folder": MEMBERS}}  # type: ignore[attr-defined]
        return {STATE: {"folder": STATE}}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        if self.n_models == 1:
            super()._load_extra_state(state)  # type: ignore[misc]
            return
        if self._embedding_ensemble():
            self.bank_layout_ = state["banks"]  # the members' networks come in _load_parts
            return
        # format 1 held the ensemble's state here (its members' weights in weights.pt)
        self._format1_state: dict[str, Any] | None = state[STATE] if "members" in state[STATE] else None

    def _fitted_arrays(self) -> dict[str, np.ndarray]:
        if self.n_models == 1 or self._embedding_ensemble():
            return super()._fitted_arrays()  # type: ignore[misc]
        return {}

    def _set_fitted_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        if self.n_models == 1 or self._embedding_ensemble():
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
        elif self._embedding_ensemble():
            shutil.rmtree(path / MEMBERS, ignore_errors=True)  # members of a model saved here before
            for i, member in enumerate(self.seed_members_):
                member.save(path / MEMBERS / f"m{i}")
        else:
            self.ensemble_.save(path / STATE)

    def _load_parts(self, path: Path) -> None:
        if self.n_models == 1:
            super()._load_parts(path)  # type: ignore[misc]
        elif self._embedding_ensemble():
            self.seed_members_ = [Detector.load(path / MEMBERS / f"m{i}") for i in range(self.n_models)]
        elif self._format1_state is None:
            self.ensemble_ = Detector.load(path / STATE)
