"""Ensembles: the weighted mean (or the maximum) of several detectors' normalised scores, as one detector.

Members are detectors trained here (``{"model": "knn", "params": {...}}`` or just ``"knn"``) or trained
models reused as they are (``{"path": "runs/arcface"}`` or just ``"runs/arcface"``: a run directory, whose
model for the machine type being trained is taken, or a model folder). Each member's scores are
normalised with its held-out training scores (z-score or rank, see :mod:`asdkit.scoring.normalise`), so
members on different scales weigh alike; the ensemble's threshold is fitted to their combination. A
reused model's scores of the training clips stand in for held-out ones, so reuse models trained on other
clips (a model trained on these very clips scores them in-sample: list it as a model to be trained here).
The saved ensemble holds every member, each saved as a model of its own in ``members/m<i>/``, and loads
without the original runs (an ensemble saved in format 1, with every member inside model.json and
weights.pt, loads too).

``combine`` says how the normalised scores become one: ``"mean"`` (the default) their weighted mean,
``"max"`` per clip the largest. A mean of a good and a poor member is poor wherever the poor one is noise;
the maximum hedges: a clip is as anomalous as its most alarmed member says, in units of that member's own
spread on held-out normal clips, so a member that sees a fault the others miss is not averaged away (at the
price of more false alarms from whichever member is noisiest). Weights mean nothing to a maximum, so under
``max`` they must be None or equal.

``select="evidence"`` (opt-in: on the proxies it did not beat the fixed mean, README) treats the members as
candidates: per
machine type it judges each on label-free evidence from the training clips (held-out normals against
pseudo-anomalies made from them, :mod:`asdkit.scoring.evidence`), keeps the best one, and records the
evidence (``selection_``, in model.json, the run's config.json and its output). ``select="none"`` (the
default) combines all (without members: :data:`DEFAULT_MEMBERS` weighted by
:data:`DEFAULT_WEIGHTS`); ``select="auto"`` is ``evidence`` without members given and ``none``
with them.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from asdkit.detectors.base import ClipFeatures, Detector, cross_fit_scores
from asdkit.detectors.params import ParamConflict
from asdkit.detectors.registry import create_detector, get_detector_class, register
from asdkit.detectors.tags import DetectorTags
from asdkit.errors import ModelError
from asdkit.features.config import FeatureConfig
from asdkit.scoring.evidence import gather_evidence
from asdkit.scoring.normalise import NORMALISATIONS, check_normalisation, fit_normaliser, normalise

NORM = "normalisation"
#: The sub-folder of a saved ensemble that holds its members' model folders.
MEMBERS_DIR = "members"
#: The default's members (``select="none"`` without members): one, selective Mahalanobis of clip statistics
#: (per-band mean and std, the std of each band's frame-to-frame change, and the loudness envelope's
#: levels and modulation; banks sharing one covariance). Chosen on the quality proxies by a rule stated
#: before their numbers, applied to the fusions of it with ``patch_bank`` too (README, "How the default's
#: members were chosen"); list members to average more detectors.
DEFAULT_MEMBERS: tuple[dict[str, Any], ...] = (
    {"model": "mahalanobis", "params": {"stats": "pooled+delta+envelope"}},
)
#: The default members' weights (normalised to sum to one), in the order of :data:`DEFAULT_MEMBERS`; None:
#: equal weights.
DEFAULT_WEIGHTS: tuple[float, ...] | None = None
#: The candidates ``select="evidence"`` (no members given) chooses among per machine type:
#: clip statistics under three back ends, and the frame bank averaged or by its highest frames. A
#: pretrained encoder's detector joins here when a checkpoint is given (its input then needs an entry in
#: :data:`asdkit.scoring.evidence.INPUT_TRANSFORMS`).
DEFAULT_CANDIDATES: tuple[dict[str, Any], ...] = (
    {"model": "mahalanobis"},
    {"model": "knn"},
    {"model": "knn", "params": {"local_density": True, "k": 3}},
    {"model": "patch_bank", "params": {"aggregate": "mean"}},
    {"model": "patch_bank"},
)
SELECT_MODES = ("auto", "evidence", "none")
COMBINE_MODES = ("mean", "max")
#: why ``select="evidence"`` refuses a saved model among the candidates
EVIDENCE_NEEDS_TRAINING = "select=evidence judges detectors trained here, not saved models"
NO_MEMBERS = 'no members; give members=[{"model": "knn"}, {"path": "runs/x"}, ...]'


def weights_problem(given: list[float] | None, n: int, combine: str, members: str = "") -> str:
    """Empty when ``given`` weights (None: equal) suit ``n`` members combined by ``combine``, else why not."""
    try:
        w = np.ones(n) if given is None else np.asarray(given, dtype=np.float64)
    except (TypeError, ValueError):
        w = np.full(n + 1, np.nan)  # not numbers: no shape that fits
    if w.shape != (n,) or not np.all(w >= 0) or w.sum() <= 0:
        return f"weights must be one non-negative number per member ({members or n})"
    if combine == "max" and not np.all(w == w[0]):
        return "combine=max takes no weights (None or equal ones)"
    return ""


@register
class EnsembleDetector(Detector):
    """Weighted mean (``combine="mean"``) or maximum (``combine="max"``) of members' normalised scores
    (z-score or rank with their training statistics).

    ``select="evidence"``: the members are candidates, and the one with the best label-free evidence is
    kept (module docstring); ``evidence_clips`` bounds the training clips the evidence is gathered on and
    ``evidence_folds`` its folds. ``select="auto"`` is ``evidence`` when ``members`` is None (then
    :data:`DEFAULT_CANDIDATES`) and ``none`` when members are listed. ``members=None`` with ``select="none"``
    (the default) is :data:`DEFAULT_MEMBERS`, weighted by :data:`DEFAULT_WEIGHTS` unless ``weights`` is given.
    """

    name: ClassVar[str] = "ensemble"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {
        "normalise": NORMALISATIONS,
        "select": SELECT_MODES,
        "combine": COMBINE_MODES,
    }
    # models saved before selection, and before combine (they are means)
    saved_defaults: ClassVar[dict[str, Any]] = {"select": "none", "combine": "mean"}

    def __init__(
        self,
        members: list[dict[str, Any] | str] | None = None,
        normalise: str = "zscore",
        weights: list[float] | None = None,
        seed: int = 0,
        select: str = "none",
        evidence_clips: int = 240,
        evidence_folds: int = 3,
        combine: str = "mean",
    ) -> None:
        self.members = members
        self.normalise = normalise
        self.weights = weights
        self.seed = seed
        self.select = select
        self.evidence_clips = evidence_clips
        self.evidence_folds = evidence_folds
        self.combine = combine

    @classmethod
    def nested_params(cls, params: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
        """The listed members' detectors and parameters, so a wrong one is named before any work."""
        members = params.get("members")
        if not isinstance(members, list):
            return []
        specs = [(i, _spec_dict(spec)) for i, spec in enumerate(members)]
        return [(f"members[{i}]", s["model"], dict(s.get("params") or {})) for i, s in specs if "model" in s]

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> None:
        """Weights one per member (equal under ``combine=max``), members at all, saved members that exist
        and are not judged by the evidence: what fit would refuse once per machine type."""
        from asdkit.detectors.saved import models_problem

        planned = cls(**params)
        specs = planned._specs()
        if not specs:
            raise ParamConflict("members", [], NO_MEMBERS)
        default = "candidates" if planned._mode() == "evidence" else "members"
        members = "" if planned.members is not None else f"{len(specs)}, the default {default}"
        problem = weights_problem(planned._given_weights(), len(specs), planned.combine, members)
        if problem:
            raise ParamConflict("weights", params["weights"], problem)
        for i, spec in enumerate(map(_spec_dict, specs)):
            if "path" in spec and planned._mode() == "evidence":
                raise ParamConflict("select", params["select"], f"{EVIDENCE_NEEDS_TRAINING} (members[{i}])")
            if "path" in spec and models_problem(Path(spec["path"])):
                raise ParamConflict(f"members[{i}]", spec, models_problem(Path(spec["path"])))

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
        """Every member's inputs and proxies: the ensemble's bundle is each member's; choosing by evidence
        also reads other machine types' training clips (the ``machine_mix`` pseudo-anomalies)."""
        tags = super().tags()
        for member in self._planned_members():
            tags = tags.merged(member.tags())
        if self._mode() == "evidence" and not hasattr(self, "members_"):
            tags = tags.merged(DetectorTags(proxies=frozenset({"machines"})))
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
        if self.members is not None:
            return list(self.members)
        return list(DEFAULT_CANDIDATES if self._mode() == "evidence" else DEFAULT_MEMBERS)

    def _mode(self) -> str:
        """``select`` with ``auto`` resolved: evidence among the default candidates, a mean of listed ones."""
        if self.select == "auto":
            return "evidence" if self.members is None else "none"
        return self.select

    # -- fitting ------------------------------------------------------------------------------------------
    def _given_weights(self) -> list[float] | None:
        """The weights given, else the default's own when its default members are used (None: equal)."""
        if self.weights is not None:
            return list(self.weights)
        if self.members is None and self._mode() == "none" and DEFAULT_WEIGHTS is not None:
            return list(DEFAULT_WEIGHTS)
        return None

    def _member_weights(self, n: int) -> np.ndarray:
        given = self._given_weights()
        problem = weights_problem(given, n, self.combine)
        if problem:
            raise ModelError(f"ensemble: {problem}, got {given}")
        w = np.ones(n) if given is None else np.asarray(given, dtype=np.float64)
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
        if self.select not in SELECT_MODES:
            modes = ", ".join(SELECT_MODES)
            raise ModelError(f"ensemble: select must be one of {modes}, got {self.select!r}")
        if self.combine not in COMBINE_MODES:
            modes = ", ".join(COMBINE_MODES)
            raise ModelError(f"ensemble: combine must be one of {modes}, got {self.combine!r}")
        specs = self._specs()
        if not specs:
            raise ModelError(f"ensemble: {NO_MEMBERS}")
        weights = self._member_weights(len(specs))
        self.selection_: dict[str, Any] | None = None
        if self._mode() == "evidence":
            specs, weights = self._choose(specs, weights, X)
        self.members_: list[Detector] = []
        stats: dict[str, np.ndarray] = {}
        normalised = []
        for i, spec in enumerate(specs):
            member, untrained = self._member(spec, X)
            if untrained:
                member.fit(X)
                train_scores = member.held_out_scores_  # NaN where it held no score out
            else:  # a saved member's scores stand in for held-out ones: it was trained on other clips
                train_scores = member.anomaly_score(X)
            for name, a in fit_normaliser(self.normalise, train_scores[np.isfinite(train_scores)]).items():
                stats[f"m{i}__{name}"] = a
            normalised.append(normalise(self.normalise, _member_stats(stats, i), train_scores))
            self.members_.append(member)
        self.train_scores_ = self._combined(np.stack(normalised), weights)
        self.normalisers_ = stats
        self.member_weights_ = [float(w) for w in weights]

    def _choose(
        self, specs: list[dict[str, Any] | str], weights: np.ndarray, X: ClipFeatures
    ) -> tuple[list[dict[str, Any] | str], np.ndarray]:
        """The candidates the evidence keeps (with their weights), after recording it in ``selection_``.
        Saved models (``{"path": ...}``) were trained on other clips and cannot be judged here."""
        candidates = []
        for spec in map(_spec_dict, specs):
            if "path" in spec:
                raise ModelError(f"ensemble: {EVIDENCE_NEEDS_TRAINING}")
            params = dict(spec.get("params") or {})
            if "seed" in get_detector_class(spec["model"])().get_params():
                params.setdefault("seed", self.seed)
            candidates.append((_label(spec), _factory(spec["model"], params)))
        evidence = gather_evidence(
            candidates, X, max_clips=self.evidence_clips, folds=self.evidence_folds, seed=self.seed
        )
        self.selection_ = evidence.to_dict()
        kept = np.asarray([weights[i] for i in evidence.chosen])
        return [specs[i] for i in evidence.chosen], kept / kept.sum()  # scored with these very weights

    def selection_note(self) -> str | None:
        """One line for the run's output: which candidate the evidence chose, and on what."""
        record = getattr(self, "selection_", None)
        if not record:
            return None
        scores = ", ".join(
            f"{c['name']} {c['auc']:.3f}+-{c['fold_std']:.3f}" if c["auc"] is not None else f"{c['name']} -"
            for c in record["candidates"]
        )
        chosen = ", ".join(record["chosen"])
        return (
            f"chose {chosen} on label-free evidence ({record['n_clips']} training clips, "
            f"{record['folds']} folds; pseudo-anomaly AUC: {scores})"
        )

    def _training_scores(self, X: ClipFeatures) -> np.ndarray:
        """The members' held-out scores combined (NaN where a member held no score out); cross-fitted
        instead when no clip has every member's."""
        if len(self.train_scores_) == len(X) and np.isfinite(self.train_scores_).any():
            return self.train_scores_
        return cross_fit_scores(self, X)

    def _score(self, X: ClipFeatures) -> np.ndarray:
        normalised = [
            normalise(self.normalise, _member_stats(self.normalisers_, i), member.anomaly_score(X))
            for i, member in enumerate(self.members_)
        ]
        return self._combined(np.stack(normalised), self._fitted_weights())

    def _combined(self, normalised: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """One score per clip from the members' normalised scores [members, clips] (NaN where any is NaN:
        a training clip some member held no score out for)."""
        if self.combine == "max":
            return normalised.max(axis=0)
        total = np.zeros(normalised.shape[1])
        for w, member_scores in zip(weights, normalised, strict=True):
            total += w * member_scores
        return total

    def _fitted_weights(self) -> np.ndarray:
        """The weights of the members kept (the chosen ones under evidence), summing to one."""
        fitted = getattr(self, "member_weights_", None)
        if fitted is None:  # a model saved before the weights were recorded (and before DEFAULT_WEIGHTS)
            w = np.ones(len(self.members_)) if self.weights is None else np.asarray(self.weights, np.float64)
            return w / w.sum()
        w = np.asarray(fitted, dtype=np.float64)
        return w / w.sum()

    # -- saving: each member a model of its own in members/m<i>/, the normalisers as fitted arrays ----------
    def _extra_state(self) -> dict[str, Any]:
        return {
            "n_members": len(self.members_),
            "train_scores": [v if np.isfinite(v) else None for v in self.train_scores_.tolist()],
            "member_weights": self.member_weights_,
            "selection": getattr(self, "selection_", None),
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        if "member_weights" in state:
            self.member_weights_ = list(state["member_weights"])
        self.selection_ = state.get("selection")
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


def _label(spec: dict[str, Any]) -> str:
    """A candidate's name in the evidence: ``patch_bank(aggregate=mean)``."""
    params = spec.get("params") or {}
    inner = ",".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "seed")
    return f"{spec['model']}({inner})" if inner else str(spec["model"])


def _factory(model: str, params: dict[str, Any]) -> Any:
    return lambda: create_detector(model, **params)


def _member_stats(arrays: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    prefix = f"m{i}__"
    return {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}


def _tensors(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, torch.Tensor]:
    """The arrays named ``<prefix>...`` as tensors, without the prefix (a format-1 member's weights)."""
    return {k.removeprefix(prefix): torch.from_numpy(a) for k, a in arrays.items() if k.startswith(prefix)}
