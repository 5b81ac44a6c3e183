"""The detector contract (scikit-learn's rules, pyod's sign) and the model file format.

``__init__`` only stores typed keyword arguments; ``fit`` learns from normal clips and returns self; learned
state ends in ``_``; ``anomaly_score`` gives one float per clip, higher = more anomalous; ``predict`` gives
0/1 from ``threshold_``. A saved model is a folder with ``model.json`` (detector name, parameters, feature
configuration, threshold, versions), ``weights.pt`` (the state_dict of ``network_`` if the detector has one,
loaded with ``weights_only=True``), ``arrays.npz`` (fitted numpy arrays such as memory banks, from
``_fitted_arrays``, loaded with ``allow_pickle=False``) and sub-models in sub-folders (an ensemble's
members, ``_save_parts``). Format 1 kept the fitted arrays as buffers in weights.pt; it still loads.
"""

from __future__ import annotations

import inspect
import io
import json
import logging
import math
import platform
import time
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch

from asdkit import __version__
from asdkit.data.manifest import Clip
from asdkit.detectors.model_file import (
    check_model_config,
    load_failure,
    model_threshold,
    sha256_of,
    verified_bytes,
)
from asdkit.detectors.tags import DetectorTags
from asdkit.errors import DataError, ModelError
from asdkit.features.config import FeatureConfig
from asdkit.features.frontends import LOGMEL, get_front_end
from asdkit.rundir import ARRAYS_FILE, MODEL_FILE, WEIGHTS_FILE
from asdkit.scoring.threshold import gamma_threshold
from asdkit.utils.io import atomic_open, atomic_write_text

log = logging.getLogger(__name__)

MODEL_FORMAT = "asdkit-model"
#: 2: fitted arrays in arrays.npz beside the network's weights.pt (1: both in weights.pt)
MODEL_FORMAT_VERSION = 2
CONFIG_NAME = MODEL_FILE
WEIGHTS_NAME = WEIGHTS_FILE
ARRAYS_NAME = ARRAYS_FILE


@dataclass(frozen=True)
class InputArrays:
    """One front end's arrays of the clips of a :class:`ClipFeatures`, with the config that computed them."""

    config: Any
    arrays: Sequence[np.ndarray]


@dataclass
class ClipFeatures:
    """The fit/score bundle: log-mel arrays ([n_mels, frames], usually memmaps from the cache) of clips,
    with their metadata, the arrays of every other input the detector declares, and (for fitting) proxy
    clips. Built by :mod:`asdkit.detectors.inputs` from the detector's tags.

    ``inputs``: other front ends' arrays by front-end name (e.g. ``"spectrum"``), aligned with ``clips``.
    ``proxy``: other machine types' normal training clips with the same inputs, for detectors whose tags
    ask for them (``proxies`` holds ``"machines"``); None otherwise and when scoring.
    """

    arrays: Sequence[np.ndarray]
    clips: Sequence[Clip]
    config: FeatureConfig = field(default_factory=FeatureConfig)
    inputs: Mapping[str, InputArrays] = field(default_factory=dict)
    proxy: ClipFeatures | None = None

    def __post_init__(self) -> None:
        if len(self.arrays) != len(self.clips):
            raise ValueError(f"{len(self.arrays)} feature arrays for {len(self.clips)} clips")
        for name, given in self.inputs.items():
            if len(given.arrays) != len(self.clips):
                raise ValueError(f"input {name!r}: {len(given.arrays)} arrays for {len(self.clips)} clips")
        if self.proxy is not None and (
            self.proxy.config != self.config or self.proxy.input_configs() != self.input_configs()
        ):
            raise ValueError("proxy clips must have the features and inputs of the clips they go with")

    def __len__(self) -> int:
        return len(self.arrays)

    def input_configs(self) -> dict[str, Any]:
        """The config of each input beside the log-mel, by front-end name."""
        return {name: given.config for name, given in self.inputs.items()}

    def arrays_of(self, name: str) -> Sequence[np.ndarray] | None:
        """The arrays of input ``name`` (``"logmel"`` is ``arrays``); None when the bundle lacks it."""
        if name == LOGMEL:
            return self.arrays
        given = self.inputs.get(name)
        return None if given is None else given.arrays

    def subset(self, indices: Sequence[int]) -> ClipFeatures:
        """These clips (and their inputs); the proxy clips stay as they are."""
        return ClipFeatures(
            [self.arrays[i] for i in indices],
            [self.clips[i] for i in indices],
            self.config,
            {n: InputArrays(g.config, [g.arrays[i] for i in indices]) for n, g in self.inputs.items()},
            self.proxy,
        )


class Detector:
    """Base class: subclasses implement ``_fit`` and ``_score``; a torch network lives in ``network_``
    (saved as weights.pt), fitted arrays are handed over by ``_fitted_arrays`` (saved as arrays.npz)."""

    name: ClassVar[str] = ""
    #: parameters whose default changed, with the value a model file saved without them was fitted with
    saved_defaults: ClassVar[dict[str, Any]] = {}
    #: the words a text parameter may take (``{"aggregate": ("top_mean", "mean")}``, or the
    #: ``RegistryWords`` of an open registry), so that a wrong one is named before any work instead of once
    #: per machine type at fit time; a class declares its own, bases and mixins theirs
    #: (:meth:`parameter_choices` merges them)
    choices: ClassVar[Mapping[str, Sequence[str]]] = {}
    #: text parameters with a grammar (``stats="pooled+delta"``, ``layers="4,8,12"``): the parser fit reads
    #: them with, run on a given value before any work (its ValueError says what is wrong); merged as
    #: ``choices`` are (:meth:`parameter_parsers`)
    parsers: ClassVar[Mapping[str, Callable[[str], object]]] = {}

    threshold_: float
    feature_config_: FeatureConfig
    #: per-epoch rows (epoch, train_loss, val_loss, lr) of an iteratively trained detector; kept in model.json
    history_: list[dict[str, float]]

    @classmethod
    def parameters(cls) -> dict[str, inspect.Parameter]:
        """The detector's parameters: the named keyword arguments of ``__init__`` (scikit-learn's rule).

        An ``__init__`` that passes ``**kwargs`` on to its base's adds that base's parameters (the first
        default seen, the subclass's, wins); a bare subclass's ``*args, **kwargs`` name none. Annotations
        are resolved types (``validate_params`` checks values against them).
        """
        found: dict[str, inspect.Parameter] = {}
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            if klass is object:
                break
            hints = typing.get_type_hints(init)
            signature = inspect.signature(init)
            for name, p in signature.parameters.items():
                if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                    found.setdefault(name, p.replace(annotation=hints.get(name, p.annotation)))
            if not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
                break
        return found

    @classmethod
    def parameter_choices(cls) -> dict[str, Sequence[str]]:
        """Every ``choices`` declaration along the class's bases and mixins (the subclass's wins)."""
        merged: dict[str, Sequence[str]] = {}
        for klass in reversed(cls.__mro__):
            merged.update(klass.__dict__.get("choices", {}))
        return merged

    @classmethod
    def parameter_parsers(cls) -> dict[str, Callable[[str], object]]:
        """Every ``parsers`` declaration along the class's bases and mixins (the subclass's wins)."""
        merged: dict[str, Callable[[str], object]] = {}
        for klass in reversed(cls.__mro__):
            merged.update(klass.__dict__.get("parsers", {}))
        return merged

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> None:
        """This class's own rules that join parameters, or read a file one names, so that a conflict is
        named before any data is read instead of at fit time: raise ``ParamConflict`` (one line).
        ``params``: every parameter (defaults where not given), each valid on its own. Fit reads the same
        helpers; a class declares only its own rules (:meth:`parameter_checks` runs its bases' too)."""

    @classmethod
    def parameter_checks(cls) -> list[Callable[[Mapping[str, Any]], None]]:
        """Every ``check_params`` along the class's bases and mixins, the bases' first."""
        own = [klass.__dict__.get("check_params") for klass in reversed(cls.__mro__)]
        return [check.__get__(None, cls) for check in own if isinstance(check, classmethod)]

    @classmethod
    def nested_params(cls, params: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
        """(where, detector, its parameters) of each detector that ``params`` describe inside this one (an
        ensemble's members), which ``validate_params`` checks as it checks this one's."""
        return []

    @classmethod
    def debug_params(cls) -> dict[str, Any]:
        """Parameters of a ``--debug`` run (few epochs, a small network); none for one-shot fits."""
        return {}

    def get_params(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in self.parameters()}

    def set_params(self, **params: Any) -> Self:
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(
                    f"{self.name}: unknown parameter {key!r} (known: {', '.join(sorted(valid))})"
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- the contract -------------------------------------------------------------------------------------
    def fit(self, X: ClipFeatures, y: np.ndarray | None = None) -> Self:
        """Learn normal behaviour from ``X`` (normal clips only; ``y`` is ignored, as in scikit-learn)."""
        if len(X) == 0:
            raise ValueError(f"{self.name}: no training clips")
        if len(X) < MIN_TRAINING_CLIPS:
            raise ModelError(
                f"{self.name}: {len(X)} training clip(s) of {X.clips[0].machine!r}; at least "
                f"{MIN_TRAINING_CLIPS} are needed (the threshold is fitted on clips the model did not fit)"
            )
        self._check_inputs(X)
        self.feature_config_ = X.config
        self._fit(X)
        # kept (not saved) so that an ensemble combines its members' held-out scores without refitting
        self.held_out_scores_ = check_held_out_scores(self.name, self._training_scores(X), len(X))
        self.threshold_ = self._fit_threshold(X)
        return self

    def _fit_threshold(self, X: ClipFeatures) -> float:
        """The gamma threshold of the held-out scores. Fitted on fewer than ``MIN_DECISION_CLIPS`` clips (a
        bank of 2-4: each held-out clip is scored by a model of one to three clips, unlike the saved one)
        or on a single held-out score, a threshold cannot be told from chance (a bank of 2 flagged 20 of
        20 normal clips), so the detector refuses to decide: ``threshold_`` is +inf (no clip flagged) and
        ``threshold_refused_`` says why (kept in model.json, shown by the run)."""
        n = int(np.isfinite(self.held_out_scores_).sum())
        if len(X) >= MIN_DECISION_CLIPS and n >= 2:
            return gamma_threshold(self.held_out_scores_)
        self.threshold_refused_ = (
            f"{self.name} on {X.clips[0].machine!r}: {len(X)} training clips and {n} held-out score(s), "
            f"fewer than the {MIN_DECISION_CLIPS} clips a decision threshold needs; no clip is flagged "
            "(scores still rank clips); train on more normal clips to get decisions"
        )
        log.warning("%s", self.threshold_refused_)
        return math.inf

    def anomaly_score(self, X: ClipFeatures) -> np.ndarray:
        self._check_fitted()
        if X.config != self.feature_config_:
            raise ValueError(f"{self.name}: features were computed with another configuration than training")
        if len(X) == 0:
            return np.zeros(0, dtype=np.float64)
        self._check_inputs(X)
        return np.asarray(self._score(X), dtype=np.float64)

    def predict(self, X: ClipFeatures) -> np.ndarray:
        return (self.anomaly_score(X) > self.threshold_).astype(np.int64)

    # -- what the detector reads (its tags) ----------------------------------------------------------------
    def tags(self) -> DetectorTags:
        """Its inputs, proxies and use of sections (scikit-learn's ``__sklearn_tags__``); subclasses
        override it from their parameters, starting from ``super().tags()``."""
        return DetectorTags()

    def input_configs(self, features: FeatureConfig) -> dict[str, Any]:
        """The config of every declared input beside the log-mel ``features``, by front-end name: the
        front end's defaults, the audio read as the log-mel reads it, and :meth:`_input_options`. It follows
        from the parameters, so a loaded model asks for the inputs it was trained on."""
        configs = {}
        for name in self.tags().inputs:
            if name != LOGMEL:
                try:
                    front = get_front_end(name).from_features(features, **self._input_options(name))
                except (TypeError, ValueError) as exc:
                    raise ModelError(f"{self.name}: input {name!r}: {exc}") from None
                configs[name] = front.config
        self._check_recorded_weights(configs)
        return configs

    def _check_recorded_weights(self, configs: dict[str, Any]) -> None:
        """A loaded model's inputs come from the weights it was fitted with (model.json's fingerprints)."""
        for name, config in configs.items():
            recorded = getattr(self, "recorded_inputs_", {}).get(name, {}).get("config", {})
            wanted, got = recorded.get("weights_sha256"), getattr(config, "weights_sha256", None)
            if wanted and got != wanted:
                file = getattr(config, "checkpoint", "?")
                raise ModelError(
                    f"{self.name}: input {name!r}: {file} is not the checkpoint this model was fitted with "
                    f"(sha256 {str(got)[:12] or 'none'}..., the model's {wanted[:12]}...)"
                )

    def recorded_inputs(self) -> dict[str, dict[str, Any]]:
        """Every input's front end and config (a pretrained encoder's with the sha256 of its weights), as
        model.json records them."""
        configs = {LOGMEL: self.feature_config_, **self.input_configs(self.feature_config_)}
        recorded = {name: {"front_end": name, "config": asdict(c)} for name, c in configs.items()}
        variant = self.feature_config_.to_dict().get("front_end")  # a log-mel variant (noise_aware) says so
        if variant is not None:
            recorded[LOGMEL]["front_end"] = variant
        return recorded

    def _input_options(self, name: str) -> dict[str, Any]:
        """Settings of input ``name``'s config that come from this detector's parameters."""
        return {}

    def _check_inputs(self, X: ClipFeatures) -> None:
        for name, wanted in self.input_configs(X.config).items():
            given = X.inputs.get(name)
            if given is None or given.config != wanted:
                raise ModelError(
                    f"{self.name}: this model reads input {name!r} beside the log-mel and the features "
                    f"{'lack it' if given is None else 'hold another configuration of it'}; build them "
                    "from its tags (asdkit.detectors.inputs.load_bundle)"
                )

    # -- what subclasses provide --------------------------------------------------------------------------
    def _fit(self, X: ClipFeatures) -> None:
        raise NotImplementedError

    def _score(self, X: ClipFeatures) -> np.ndarray:
        raise NotImplementedError

    def _training_scores(self, X: ClipFeatures) -> np.ndarray:
        """Held-out scores of the training clips ``X`` (one per clip; NaN for a clip no model held out).

        The threshold (and an ensemble's normaliser) are fitted to them: a model scores the clips it was
        fitted on lower than unseen normal ones, so in-sample scores give a threshold that flags most unseen
        normals. Default: the scores of the clips that ``_fit`` held out of training (``_held_out_idx``, a
        network's validation clips) when there are enough, else cross-fitting (:func:`cross_fit_scores`);
        memory banks override it (leave-one-out or per-fold banks).
        """
        return self._held_out_or_cross_fit(X, getattr(self, "_held_out_idx", []))

    def _held_out_or_cross_fit(self, X: ClipFeatures, held: Sequence[int]) -> np.ndarray:
        """Scores of the clips ``held`` out of training (NaN for the others); every clip's cross-fitted
        score when none was held out (e.g. ``validation_fraction=0``).

        A network's own held-out clips come first: fold networks trained for a few epochs on part of the
        clips score unlike the saved one (better or worse by chance), so their scores misplace its threshold.
        """
        if not len(held):
            return cross_fit_scores(self, X)
        scores = np.full(len(X), np.nan)
        scores[list(held)] = self._score(X.subset(list(held)))
        return scores

    def _extra_state(self) -> dict[str, Any]:
        """Learned non-tensor state to keep in model.json (JSON types only)."""
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        """Rebuild learned state (and the network's shape) before the weights are loaded."""

    def _fitted_arrays(self) -> dict[str, np.ndarray]:
        """Learned numpy arrays by name (memory banks, statistics), saved in arrays.npz."""
        return {}

    def _set_fitted_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Take back the arrays of :meth:`_fitted_arrays` (after ``_load_extra_state``) on loading."""

    def _save_parts(self, path: Path) -> None:
        """Write sub-models (e.g. an ensemble's members) into sub-folders of the model folder ``path``."""

    def _load_parts(self, path: Path) -> None:
        """Load the sub-models :meth:`_save_parts` wrote (through ``Detector.load``)."""

    def training_history(self) -> list[dict[str, float]]:
        """The per-epoch training curve (plots and experiment tracking read it); [] for one-shot fits."""
        return list(getattr(self, "history_", []))

    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise ModelError(f"{self.name}: not fitted yet; call fit() or load a trained model")

    # -- persistence --------------------------------------------------------------------------------------
    def save(self, path: Path | str, metadata: dict[str, Any] | None = None) -> Path:
        """Write the model folder; model.json is written last, so a folder without it is incomplete."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        network = getattr(self, "network_", None)
        if network is not None:
            with atomic_open(path / WEIGHTS_NAME, "wb") as f:
                torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, f)
        else:
            (path / WEIGHTS_NAME).unlink(missing_ok=True)  # a model saved here before
        arrays = self._fitted_arrays()
        if arrays:
            with atomic_open(path / ARRAYS_NAME, "wb") as f:
                np.savez(f, **{name: _plain_array(name, a) for name, a in arrays.items()})
        else:
            (path / ARRAYS_NAME).unlink(missing_ok=True)
        self._save_parts(path)
        written = [f for f in (path / WEIGHTS_NAME, path / ARRAYS_NAME) if f.is_file()]
        config = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "detector": self.name,
            "params": self.get_params(),
            "features": self.feature_config_.to_dict(),
            "inputs": self.recorded_inputs(),
            "sample_rate": self.feature_config_.sample_rate,  # what clips at other rates are resampled to
            # a refused threshold (+inf) is null: strict JSON parsers reject ``Infinity``
            "threshold": None if math.isinf(self.threshold_) else self.threshold_,
            "threshold_refused": getattr(self, "threshold_refused_", None),
            "state": self._extra_state(),
            "arrays": sorted(arrays),  # what arrays.npz must hold
            "checksums": {f.name: sha256_of(f) for f in written},  # verified on load
            "history": self.training_history(),
            "metadata": metadata or {},
            "versions": environment_versions(),
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write_text(path / CONFIG_NAME, json.dumps(config, indent=2, default=_json_default) + "\n")
        return path

    @classmethod
    def load(cls, path: Path | str) -> Detector:
        """The model saved in folder ``path`` (format 1 or 2)."""
        path = Path(path)
        config = read_model_config(path)
        weights, arrays = _read_weights(path, config), _read_arrays(path, config)
        detector = cls.from_config(config, weights, arrays, path)
        try:
            detector._load_parts(path)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as exc:
            raise load_failure(path / CONFIG_NAME, "its sub-models", exc) from None
        return detector

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        weights: Mapping[str, torch.Tensor] | None,
        arrays: Mapping[str, np.ndarray] | None,
        path: Path = Path("."),
    ) -> Detector:
        """A detector from a parsed model.json, the network's tensors and the fitted arrays.

        ``arrays`` None is format 1: the tensors that are not the network's are the fitted arrays. ``path``
        (the model folder) only names the files in errors.
        """
        from asdkit.detectors.registry import get_detector_class

        config_path = path / CONFIG_NAME
        detector_cls = get_detector_class(config["detector"])
        if cls is not Detector and not issubclass(detector_cls, cls):
            raise ModelError(f"{path}: holds a {config['detector']!r} model, not {cls.name!r}")
        try:
            detector = detector_cls(**{**detector_cls.saved_defaults, **config["params"]})
        except TypeError as exc:
            raise ModelError(
                f"{path}: parameters do not fit detector {config['detector']!r} ({exc})"
            ) from None
        try:
            detector.feature_config_ = FeatureConfig.from_dict(config["features"])
        except (TypeError, ValueError) as exc:
            raise load_failure(config_path, "field 'features'", exc) from None
        if (
            config.get("sample_rate", detector.feature_config_.sample_rate)
            != detector.feature_config_.sample_rate
        ):
            raise ModelError(
                f"{config_path}: field 'sample_rate' ({config['sample_rate']}) differs from "
                f"'features.sample_rate' ({detector.feature_config_.sample_rate})"
            )
        detector.threshold_ = model_threshold(config)
        if config.get("threshold_refused"):
            detector.threshold_refused_ = str(config["threshold_refused"])
        detector.metadata_ = config.get("metadata", {})
        detector.recorded_inputs_ = config.get("inputs", {})
        detector.history_ = list(config.get("history", []))
        try:
            detector._load_extra_state(config.get("state", {}))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as exc:
            raise load_failure(config_path, "field 'state'", exc) from None
        n_mels_in = getattr(detector, "n_mels_in_", None)
        if n_mels_in is not None and n_mels_in != detector.feature_config_.n_mels:
            raise ModelError(
                f"{config_path}: field 'features.n_mels' is {detector.feature_config_.n_mels} but the "
                f"network was trained on {n_mels_in} mel bands"
            )
        rest = dict(weights or {})
        network = getattr(detector, "network_", None)
        if network is not None:
            if weights is None:
                raise ModelError(f"{path / WEIGHTS_NAME}: missing (the model folder is incomplete)")
            own = set(network.state_dict())
            try:
                network.load_state_dict({k: v for k, v in rest.items() if k in own})
            except RuntimeError as exc:  # shapes: e.g. features.n_mels edited after training
                raise load_failure(
                    config_path, f"{WEIGHTS_NAME} (check 'features' and 'params')", exc
                ) from None
            network.eval()
            rest = {k: v for k, v in rest.items() if k not in own}
        no_arrays_file = arrays is None
        if arrays is None:  # format 1: memory banks and statistics were buffers in weights.pt
            arrays = {k: v.numpy() for k, v in rest.items()}
        missing = [name for name in config.get("arrays", []) if name not in arrays]
        if missing and no_arrays_file:
            raise ModelError(f"{path / ARRAYS_NAME}: missing (the model folder is incomplete)")
        if missing:
            raise load_failure(config_path, ARRAYS_NAME, KeyError(missing[0]))
        try:
            detector._set_fitted_arrays(dict(arrays))
        except KeyError as exc:
            if no_arrays_file and not arrays:
                raise ModelError(f"{path / ARRAYS_NAME}: missing (the model folder is incomplete)") from None
            raise load_failure(config_path, ARRAYS_NAME, exc) from None
        except (TypeError, ValueError, IndexError, AttributeError, RuntimeError) as exc:
            raise load_failure(config_path, ARRAYS_NAME, exc) from None
        return detector


def _read_weights(path: Path, config: dict[str, Any]) -> dict[str, torch.Tensor] | None:
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        return None
    data = verified_bytes(weights, config, path / CONFIG_NAME)
    try:
        return dict(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))
    except Exception as exc:
        raise ModelError(f"{weights}: cannot be loaded ({exc})") from None


def _read_arrays(path: Path, config: dict[str, Any]) -> dict[str, np.ndarray] | None:
    file = path / ARRAYS_NAME
    if not file.is_file():
        return None
    verified = verified_bytes(file, config, path / CONFIG_NAME)
    try:
        with np.load(io.BytesIO(verified), allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except Exception as exc:
        raise ModelError(f"{file}: cannot be loaded ({exc})") from None


def _plain_array(name: str, value: np.ndarray) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"fitted array {name!r}: numbers only (got dtype {array.dtype})")
    return array


#: Training clips a detector needs at least: one to fit on and one held out to fit the threshold on.
MIN_TRAINING_CLIPS = 2
#: Training clips a decision threshold is fitted from at least (fewer: the detector refuses to decide).
MIN_DECISION_CLIPS = 5
#: Held-out clips a network keeps out of training at least (up to a quarter of its clips), so that its
#: threshold's 90th percentile rests on a few dozen scores of the very model that is saved.
MIN_HELD_OUT = 30
#: Share of the training clips a network without a validation split holds out to fit its threshold on.
HELD_OUT_FRACTION = 0.1
#: Folds of the generic cross-fitting: each fold's clips are scored by a detector fitted on the others.
CROSS_FIT_FOLDS = 3


def cross_fit_scores(detector: Detector, X: ClipFeatures, folds: int = CROSS_FIT_FOLDS) -> np.ndarray:
    """Each clip's score by a fresh detector of the same parameters fitted on the other folds (K-fold).

    Folds are stratified by (section, domain), so every fold's detector knows every section with two or more
    clips; each fold's bundle keeps ``X``'s inputs and proxy clips. Fold trainings write no TensorBoard
    logs. A clip whose fold could not be fitted (a section with one clip) gets NaN, which the threshold
    ignores.
    """
    fold_of = stratified_folds(X.clips, folds, int(getattr(detector, "seed", 0) or 0))
    scores = np.full(len(X), np.nan)
    for k in range(folds):
        held, rest = np.flatnonzero(fold_of == k).tolist(), np.flatnonzero(fold_of != k).tolist()
        if not held or not rest:
            continue
        clone = type(detector)(**detector.get_params())
        clone.feature_config_ = X.config
        try:
            clone._fit(X.subset(rest))
            scores[held] = clone._score(X.subset(held))
        except (ModelError, DataError) as exc:
            log.warning("%s: cross-fitting fold %d/%d left unscored (%s)", detector.name, k + 1, folds, exc)
    if not np.any(np.isfinite(scores)):
        raise ModelError(f"{detector.name}: too few training clips to score any of them held out")
    return scores


def check_held_out_scores(name: str, scores: np.ndarray, n_clips: int) -> np.ndarray:
    """``scores`` as the contract of ``_training_scores`` wants them: one float per training clip, in the
    clips' order (NaN where no model held the clip out), at least one of them finite.

    An ensemble adds its members' held-out scores clip by clip and a threshold is fitted to them, so a
    detector that scores only some clips must say which (NaN elsewhere), not return a shorter array.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (n_clips,):
        raise ModelError(
            f"{name}: held-out training scores have shape {scores.shape}, expected one per training clip "
            f"({n_clips},); a detector marks a clip it did not hold out with NaN"
        )
    if not np.isfinite(scores).any():
        raise ModelError(f"{name}: no finite held-out training score to fit a threshold on")
    return scores


def held_out_count(n: int, fraction: float) -> int:
    """How many of ``n`` training clips a network holds out: ``fraction`` of them, at least
    ``MIN_HELD_OUT`` but at most a quarter; none when ``fraction`` is 0."""
    return max(round(n * fraction), min(MIN_HELD_OUT, n // 4)) if fraction > 0 else 0


def held_out_split(clips: Sequence[Clip], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Clips to train on and clips held out to fit the threshold on (:func:`held_out_count`), drawn in
    proportion from each (section, domain) group, each group keeping a clip to train on."""
    rng = np.random.default_rng(seed)
    groups = _groups(clips)
    share = held_out_count(len(clips), fraction) / max(len(clips), 1)
    held: list[int] = []
    for key in sorted(groups):
        n_held = min(round(len(groups[key]) * share), len(groups[key]) - 1)
        held += rng.permutation(groups[key])[:n_held].tolist()
    chosen = set(held)
    return [i for i in range(len(clips)) if i not in chosen], sorted(held)


def _groups(clips: Sequence[Clip]) -> dict[tuple[str, str], list[int]]:
    groups: dict[tuple[str, str], list[int]] = {}
    for i, c in enumerate(clips):
        groups.setdefault((c.section, c.domain), []).append(i)
    return groups


def stratified_folds(clips: Sequence[Clip], folds: int, seed: int) -> np.ndarray:
    """A fold index per clip, dealt round robin within each (section, domain) group in a seeded order."""
    rng = np.random.default_rng(seed)
    groups = _groups(clips)
    fold_of = np.zeros(len(clips), dtype=np.int64)
    start = 0
    for key in sorted(groups):
        members = rng.permutation(groups[key])
        fold_of[members] = (start + np.arange(len(members))) % folds
        start += len(members)
    return fold_of


def read_model_config(path: Path) -> dict[str, Any]:
    config_path = path / CONFIG_NAME
    if not config_path.is_file():
        raise ModelError(f"{path}: not a model folder (no {CONFIG_NAME})")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{config_path}: unreadable ({exc})") from None
    if not isinstance(config, dict):
        check_model_config(config, config_path)  # names what the file holds instead of an object
    if config.get("format") != MODEL_FORMAT:
        raise ModelError(f"{config_path}: not an asdkit model file")
    if not isinstance(config.get("format_version", 0), int):
        raise ModelError(f"{config_path}: field 'format_version' must be a whole number")
    if config.get("format_version", 0) > MODEL_FORMAT_VERSION:
        raise ModelError(f"{config_path}: written by a newer asdkit (format {config['format_version']})")
    return check_model_config(config, config_path)


def environment_versions() -> dict[str, str]:
    return {
        "asdkit": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
