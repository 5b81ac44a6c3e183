"""Ensembles: the weighted mean of several detectors' normalised scores, as one detector.

Members are detectors trained here (``{"model": "knn", "params": {...}}`` or just ``"knn"``) or trained
models reused as they are (``{"path": "runs/arcface"}`` or just ``"runs/arcface"``: a run directory, whose
model for the machine type being trained is taken, or a model folder). Each member's scores are
normalised with its held-out training scores (z-score or rank, see :mod:`asdkit.scoring.normalise`), so
members on different scales weigh alike; the ensemble's threshold is fitted to their weighted mean. A
reused model's scores of the training clips stand in for held-out ones, so reuse models trained on other
clips (a model trained on these very clips scores them in-sample: list it as a model to be trained here).
The saved ensemble holds every member, each saved as a model of its own in ``members/m<i>/``, and loads
without the original runs (an ensemble saved in format 1, with every member inside model.json and
weights.pt, loads too).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from asdkit.detectors.base import ClipFeatures, Detector, cross_fit_scores
from asdkit.detectors.registry import create_detector, get_detector_class, register
from asdkit.detectors.tags import DetectorTags
from asdkit.errors import ModelError
from asdkit.features.config import FeatureConfig
from asdkit.scoring.normalise import check_normalisation, fit_normaliser, normalise

NORM = "normalisation"
#: The sub-folder of a saved ensemble that holds its members' model folders.
MEMBERS_DIR = "members"
#: The ensemble when no members are given (and asdkit's default detector): a clip-level view (selective
#: Mahalanobis of frame statistics, banks sharing one covariance) and a frame-level one (every frame's
#: distance to a coreset of normal frames, averaged). Chosen on the quality proxies (README).
DEFAULT_MEMBERS: tuple[dict[str, Any], ...] = (
    {"model": "mahalanobis"},
    {"model": "patch_bank", "params": {"aggregate": "mean"}},
)


@register
class EnsembleDetector(Detector):
    """Weighted mean of members' normalised scores (z-score or rank with their training statistics).

    ``members=None`` is :data:`DEFAULT_MEMBERS`.
    """

    name: ClassVar[str] = "ensemble"

    def __init__(
        self,
        members: list[dict[str, Any] | str] | None = None,
        normalise: str = "zscore",
        weights: list[float] | None = None,
        seed: int = 0,
    ) -> None:
        self.members = members
        self.normalise = normalise
        self.weights = weights
        self.seed = seed

    # -- what it reads: what its members read ------------------------------------------------------------
    def _planned_members(self) -> list[Detector]:
        """The fitted members, or before fitting the members its specs describe (saved ones loaded)."""
        if hasattr(self, "members_"):
            return list(self.members_)
        from asdkit.detectors.saved import load_models

        members: list[Detector] = []
        for spec in map(_spec_dict, self._specs()):
            if "model" in spec:
                members.append(create_detector(spec["model"], **dict(spec.get("params") or {})))  # type: ignore[arg-type]
            else:
                members += list(load_models(Path(spec["path"])).values())[:1]
        return members

    def tags(self) -> DetectorTags:
        """Every member's inputs and proxies: the ensemble's bundle is each member's."""
        tags = super().tags()
        for member in self._planned_members():
            tags = tags.merged(member.tags())
        return tags

    def input_configs(self, features: FeatureConfig) -> dict[str, Any]:
        """The members' inputs (members reading one input must read it alike)."""
        configs: dict[str, Any] = {}
        for member in self._planned_members():
            for name, config in member.input_configs(features).items():
                if configs.setdefault(name, config) != config:
                    raise ModelError(
                        f"ensemble: members read input {name!r} with different settings; use one setting"
                    )
        return configs

    def _specs(self) -> list[dict[str, Any] | str]:
        return list(DEFAULT_MEMBERS if self.members is None else self.members)

    # -- fitting ------------------------------------------------------------------------------------------
    def _member_weights(self, n: int) -> np.ndarray:
        w = np.ones(n) if self.weights is None else np.asarray(self.weights, dtype=np.float64)
        if w.shape != (n,) or np.any(w < 0) or w.sum() <= 0:
            raise ModelError(
                f"ensemble: weights must be {n} non-negative numbers (one per member), got {self.weights}"
            )
        return w / w.sum()

    def _member(self, spec: dict[str, Any] | str, X: ClipFeatures) -> tuple[Detector, bool]:
        """The member for ``spec`` and whether it still has to be trained."""
        spec = _spec_dict(spec)
        if "model" in spec:
            params = dict(spec.get("params") or {})
            cls = get_detector_class(spec["model"])
            if "seed" in cls().get_params():
                params.setdefault("seed", self.seed)
            member: Detector = create_detector(spec["model"], **params)  # type: ignore[assignment]
            return member, True
        from asdkit.detectors.saved import load_models

        models = load_models(Path(spec["path"]))
        machine = X.clips[0].machine
        if machine not in models and len(models) != 1:
            raise ModelError(f"ensemble: {spec['path']} has no model for machine type {machine!r}")
        member = models.get(machine) or next(iter(models.values()))
        if member.feature_config_ != X.config:
            raise ModelError(f"ensemble: {spec['path']} was trained on other features than this ensemble's")
        return member, False

    def _fit(self, X: ClipFeatures) -> None:
        check_normalisation(self.normalise)
        specs = self._specs()
        if not specs:
            raise ModelError('ensemble: no members; give members=[{"model": "knn"}, {"path": "runs/x"}, ...]')
        weights = self._member_weights(len(specs))
        self.members_: list[Detector] = []
        stats: dict[str, np.ndarray] = {}
        total = np.zeros(len(X))
        for i, spec in enumerate(specs):
            member, untrained = self._member(spec, X)
            if untrained:
                member.fit(X)
                train_scores = member.held_out_scores_  # NaN where it held no score out
            else:  # a saved member's scores stand in for held-out ones: it was trained on other clips
                train_scores = member.anomaly_score(X)
            for name, a in fit_normaliser(self.normalise, train_scores[np.isfinite(train_scores)]).items():
                stats[f"m{i}__{name}"] = a
            total += weights[i] * normalise(self.normalise, _member_stats(stats, i), train_scores)
            self.members_.append(member)
        self.train_scores_ = total
        self.normalisers_ = stats

    def _training_scores(self, X: ClipFeatures) -> np.ndarray:
        """The members' held-out scores combined (NaN where a member held no score out); cross-fitted
        instead when no clip has every member's."""
        if len(self.train_scores_) == len(X) and np.isfinite(self.train_scores_).any():
            return self.train_scores_
        return cross_fit_scores(self, X)

    def _score(self, X: ClipFeatures) -> np.ndarray:
        weights = self._member_weights(len(self.members_))
        total = np.zeros(len(X))
        for i, member in enumerate(self.members_):
            raw = member.anomaly_score(X)
            total += weights[i] * normalise(self.normalise, _member_stats(self.normalisers_, i), raw)
        return total

    # -- saving: each member a model of its own in members/m<i>/, the normalisers as fitted arrays ----------
    def _extra_state(self) -> dict[str, Any]:
        return {
            "n_members": len(self.members_),
            "train_scores": [v if np.isfinite(v) else None for v in self.train_scores_.tolist()],
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.train_scores_ = np.asarray(
            [np.nan if v is None else v for v in state["train_scores"]], dtype=np.float64
        )
        # format 1 held every member's model.json fields here (and their weights in weights.pt)
        self._format1_members: list[dict[str, Any]] | None = state.get("members")
        self._n_members = len(state["members"]) if "members" in state else int(state["n_members"])

    def _fitted_arrays(self) -> dict[str, np.ndarray]:
        return {f"{NORM}.{k}": a for k, a in self.normalisers_.items()}

    def _set_fitted_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.normalisers_ = {
            k.removeprefix(f"{NORM}."): a for k, a in arrays.items() if k.startswith(f"{NORM}.")
        }
        if self._format1_members is not None:
            self.members_ = [
                Detector.from_config(config, _tensors(arrays, f"m{i}."), None)
                for i, config in enumerate(self._format1_members)
            ]

    def _save_parts(self, path: Path) -> None:
        shutil.rmtree(path / MEMBERS_DIR, ignore_errors=True)  # members of an ensemble saved here before
        for i, member in enumerate(self.members_):
            member.save(path / MEMBERS_DIR / f"m{i}")

    def _load_parts(self, path: Path) -> None:
        if self._format1_members is None:
            self.members_ = [Detector.load(path / MEMBERS_DIR / f"m{i}") for i in range(self._n_members)]


def _spec_dict(spec: dict[str, Any] | str) -> dict[str, Any]:
    """A member spec as ``{"model": ...}`` or ``{"path": ...}``: a plain string is a saved run or model
    folder when such a path exists, else a detector name."""
    if isinstance(spec, str):
        spec = {"path": spec} if Path(spec).exists() else {"model": spec}
    if not isinstance(spec, dict) or ("model" in spec) == ("path" in spec):
        raise ModelError(
            f'ensemble: a member is {{"model": NAME, "params": {{...}}}} or {{"path": DIR}}, got {spec!r}'
        )
    return spec


def _member_stats(arrays: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    prefix = f"m{i}__"
    return {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}


def _tensors(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, torch.Tensor]:
    """The arrays named ``<prefix>...`` as tensors, without the prefix (a format-1 member's weights)."""
    return {k.removeprefix(prefix): torch.from_numpy(a) for k, a in arrays.items() if k.startswith(prefix)}
