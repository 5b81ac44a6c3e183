"""Embedding detectors: embed each clip as one vector, score it by its distance to normal training clips.

The base class :class:`EmbeddingDetector` holds the memory banks (per section and domain, see
:class:`asdkit.scoring.embedding.DomainBanks`) and the saving; a subclass says how a clip becomes a vector.
Here: frame statistics of log-mel or of a pretrained encoder's frames (``input``; per-feature mean and
standard deviation over the clip, the mean or GeM: ``pooling``; optionally quantiles; more groups of clip
statistics by ``stats``, :mod:`asdkit.detectors.banks.clip_stats`), scored by k-NN
(``knn``), k-means centres (``kmeans``), Mahalanobis distance (``mahalanobis``) or a Gaussian mixture
(``gmm``): the back ends of :mod:`asdkit.scoring.embedding`, whose options (``k``, ``metric``,
``local_density``, ``n_centres``, ``oversample``, ``domains``) a subclass exposes as parameters. The
angular-margin classifiers (``arcface``, ``adacos``) embed with a trained network instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from asdkit.detectors.banks.clip_stats import (
    DELTA,
    ENVELOPE,
    POOLED,
    TONAL,
    TONAL_FFT,
    delta_std,
    envelope_statistics,
    group_weights,
    parse_stats,
    tonal_prominence,
)
from asdkit.detectors.banks.input_choice import InputChoice, pool_frames
from asdkit.detectors.base import (
    HELD_OUT_FRACTION,
    ClipFeatures,
    Detector,
    cross_fit_scores,
    held_out_split,
)
from asdkit.detectors.params import ParamConflict
from asdkit.detectors.registry import register
from asdkit.detectors.tags import DetectorTags
from asdkit.errors import ModelError
from asdkit.models.scaling import band_statistics
from asdkit.scoring.embedding import (
    COVARIANCES,
    DOMAIN_MODES,
    GMM_COVARIANCE_TYPES,
    KNN_METRICS,
    SCORERS,
    UNSCALED_DOMAIN_MODES,
    DomainBanks,
    Scorer,
    domains_problem,
    make_scorer,
)

BANKS, EMBEDDER = "banks", "embedder"


class EmbeddingDetector(Detector):
    """Clip embedding -> minimum distance over its section's source and target memory banks.

    The banks' arrays are saved as fitted arrays named ``banks.bank<i>__<name>``. Subclasses implement
    ``_fit_embedder`` (sets the embedding's state: a network in ``network_``, or arrays), ``embed`` and
    ``_load_embedder`` (rebuilds an untrained embedding of the saved shape, filled on loading).
    """

    #: the scorer of the detector when it has no ``scorer`` parameter
    scorer_kind: ClassVar[str] = "knn"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {
        "scorer": tuple(SCORERS),
        "metric": KNN_METRICS,
        "covariance": COVARIANCES,
        "covariance_type": GMM_COVARIANCE_TYPES,
        "domains": DOMAIN_MODES,
    }
    #: a trained embedding (a network) is trained without the clips its threshold is fitted on
    learns_embedding: ClassVar[bool] = False
    domains: str

    def tags(self) -> DetectorTags:
        return replace(super().tags(), sections="banks")

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> None:
        """``domains=min_scaled`` with a scorer other than k-NN (:func:`domains_problem`, read by the banks
        fit builds too)."""
        scorer = params.get("scorer", cls.scorer_kind)
        problem = domains_problem(params["domains"], scorer)
        if problem:
            raise ParamConflict("scorer", scorer, problem)

    # -- what an embedding provides ---------------------------------------------------------------------
    def _fit_embedder(self, X: ClipFeatures) -> None:
        raise NotImplementedError

    def _load_embedder(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _embedder_state(self) -> dict[str, Any]:
        """JSON state the embedder needs to be rebuilt (shapes); stored in model.json."""
        return {}

    def embed(self, X: ClipFeatures) -> np.ndarray:
        """One embedding per clip, [n_clips, dim], from its features (log-mel arrays, spectra if any)."""
        raise NotImplementedError

    # -- shared machinery -------------------------------------------------------------------------------
    def _held_out_seed(self) -> int:
        """The seed of the clips a learned embedding holds out for the threshold."""
        return int(getattr(self, "seed", 0))

    def _make_scorer(self) -> Scorer:
        kind = getattr(self, "scorer", self.scorer_kind)
        return make_scorer(kind, **self.get_params())

    def _fit(self, X: ClipFeatures) -> None:
        DomainBanks(self._make_scorer(), self.domains, self._oversample())  # bad options fail before training
        fit_idx = list(range(len(X)))
        if self.learns_embedding:
            fit_idx, self._held_out_idx = held_out_split(X.clips, HELD_OUT_FRACTION, self._held_out_seed())
        self._fit_embedder(X.subset(fit_idx))
        self._fit_banks(X)

    def _fit_banks(self, X: ClipFeatures) -> None:
        """The memory banks of every training clip's embedding (held-out clips too: the training scores
        leave each clip out of its own bank)."""
        banks = DomainBanks(self._make_scorer(), self.domains, self._oversample()).fit(
            self.embed(X), [c.section for c in X.clips], [c.domain for c in X.clips]
        )
        self.bank_layout_ = banks.layout()
        self.bank_arrays_ = banks.to_arrays()

    def _oversample(self) -> int:
        return int(getattr(self, "oversample", 0))

    def _banks(self) -> DomainBanks:
        return DomainBanks.from_arrays(
            self._make_scorer(), self.domains, self.bank_layout_, self.bank_arrays_, self._oversample()
        )

    def _score(self, X: ClipFeatures) -> np.ndarray:
        return self._banks().score(self.embed(X), [c.section for c in X.clips])

    def _training_scores(self, X: ClipFeatures) -> np.ndarray:
        """Each clip scored by banks that do not hold it; a learned embedding's clips only where it held
        them out of its training too (else the whole detector is cross-fitted)."""
        held = list(range(len(X)))
        if self.learns_embedding:
            held = getattr(self, "_held_out_idx", [])
            if not held:
                return cross_fit_scores(self, X)
        scores = self._banks().score_training(
            self.embed(X), [c.section for c in X.clips], [c.domain for c in X.clips]
        )
        out = np.full(len(X), np.nan)
        out[held] = scores[held]
        return out

    def _extra_state(self) -> dict[str, Any]:
        return {"banks": self.bank_layout_, EMBEDDER: self._embedder_state()}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.bank_layout_ = state["banks"]
        self._load_embedder(state.get(EMBEDDER, {}))

    def _fitted_arrays(self) -> dict[str, np.ndarray]:
        return _prefixed(BANKS, self.bank_arrays_)

    def _set_fitted_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.bank_arrays_ = _unprefixed(BANKS, arrays)


def _prefixed(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Arrays named ``<prefix>.<name>`` (the names format 1 gave them as buffers of ``network_[prefix]``)."""
    return {f"{prefix}.{name}": a for name, a in arrays.items()}


def _unprefixed(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k.removeprefix(f"{prefix}."): a for k, a in arrays.items() if k.startswith(f"{prefix}.")}


def parse_quantiles(text: str) -> list[float]:
    """``"0.1,0.5,0.9"`` -> [0.1, 0.5, 0.9]; empty text -> no quantiles."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ModelError(
            f"quantiles: expected comma-separated numbers such as 0.1,0.5,0.9, got {text!r}"
        ) from None
    if any(not 0 <= q <= 1 for q in values):
        raise ModelError(f"quantiles: each must be between 0 and 1, got {text!r}")
    return values


def frame_statistics(logmel: np.ndarray, quantiles: Sequence[float] = ()) -> np.ndarray:
    """Per-band mean and standard deviation over the clip's frames, then each per-band quantile."""
    return pool_frames(logmel, "mean_std", quantiles)


class StatisticsDetector(InputChoice, EmbeddingDetector):
    """Embedding = the chosen input's frames (``input``: log-mel, or a pretrained encoder's embeddings)
    pooled over time (``pooling``: mean and standard deviation, mean, or GeM; ``quantiles`` on top), with
    the further groups of clip statistics ``stats`` names, standardised per dimension with the training
    clips' (each group after the first weighted to count as much as the first)."""

    parsers: ClassVar[dict[str, Callable[[str], object]]] = {
        "quantiles": parse_quantiles,
        "stats": parse_stats,
    }

    quantiles: str
    standardise: bool
    pooling: str
    stats: str

    def tags(self) -> DetectorTags:
        tags = self._with_input(super().tags())
        if TONAL in parse_stats(self.stats) and "spectrum" not in tags.inputs:
            tags = replace(tags, inputs=(*tags.inputs, "spectrum"))
        return tags

    def _input_options(self, name: str) -> dict[str, Any]:
        if name == "spectrum" and name != self.input:
            return {"n_fft": TONAL_FFT}
        return super()._input_options(name)

    def _statistics(self, X: ClipFeatures) -> tuple[np.ndarray, np.ndarray]:
        """The groups of :attr:`stats` per clip, one after another, unweighted; and each number's weight."""
        quantiles = parse_quantiles(self.quantiles)
        groups = parse_stats(self.stats)
        frame_rate = X.config.sample_rate / X.config.hop_length
        spectra = X.arrays_of("spectrum") if TONAL in groups else None
        if TONAL in groups and spectra is None:
            raise ModelError(f"{self.name}: stats={self.stats} needs the clip spectrum; the features lack it")
        frames = self._frames(X) if POOLED in groups else X.arrays
        rows = []
        for i, logmel in enumerate(X.arrays):
            parts = []
            for group in groups:
                if group == POOLED:
                    parts.append(pool_frames(frames[i], self.pooling, quantiles))
                elif group == DELTA:
                    parts.append(delta_std(logmel))
                elif group == ENVELOPE:
                    parts.append(envelope_statistics(logmel, frame_rate))
                else:
                    parts.append(tonal_prominence(spectra[i]))  # type: ignore[index]
            rows.append(parts)
        weights = group_weights([len(p) for p in rows[0]]) if rows else np.ones(0)
        return np.stack([np.concatenate(parts) for parts in rows]), weights

    def _fit_embedder(self, X: ClipFeatures) -> None:
        raw, _ = self._statistics(X)
        center, scale = np.zeros(raw.shape[1]), np.ones(raw.shape[1])
        if self.standardise:  # each dimension over the clips, as a band over frames
            center, scale = band_statistics([raw.T], per_band=True, floor=0.0)
        self.standard_ = {"center": center, "scale": np.where(scale > 1e-6, scale, 1.0)}
        self.n_mels_in_ = X.config.n_mels

    def _embedder_state(self) -> dict[str, Any]:
        return {"n_mels_in": self.n_mels_in_}

    def _load_embedder(self, state: dict[str, Any]) -> None:
        # the mel bands the statistics were computed on, which Detector.load checks against the features
        if "n_mels_in" in state:
            self.n_mels_in_ = int(state["n_mels_in"])
        else:  # format 1 kept the statistics' shapes instead
            self.n_mels_in_ = int(state["shapes"]["center"][0]) // (2 + len(parse_quantiles(self.quantiles)))

    def _fitted_arrays(self) -> dict[str, np.ndarray]:
        return {**super()._fitted_arrays(), **_prefixed(EMBEDDER, self.standard_)}

    def _set_fitted_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        super()._set_fitted_arrays(arrays)
        standard = _unprefixed(EMBEDDER, arrays)
        self.standard_ = {"center": standard["center"], "scale": standard["scale"]}

    def embed(self, X: ClipFeatures) -> np.ndarray:
        raw, weights = self._statistics(X)
        return (raw - self.standard_["center"]) / self.standard_["scale"] * weights


@register
class KnnDetector(StatisticsDetector):
    """k-NN distance of frame statistics to the clip's section's source and target banks (min).

    Frames of log-mel, or of a pretrained encoder with ``input=beats``."""

    name: ClassVar[str] = "knn"
    scorer_kind: ClassVar[str] = "knn"

    def __init__(
        self,
        k: int = 1,
        metric: str = "euclidean",
        domains: str = "min",
        quantiles: str = "",
        standardise: bool = True,
        pooling: str = "mean_std",
        stats: str = POOLED,
        input: str = "logmel",
        checkpoint: str = "",
        layers: str = "all",
        local_density: bool = False,
        oversample: int = 0,
    ) -> None:
        self.k = k
        self.metric = metric
        self.domains = domains
        self.quantiles = quantiles
        self.standardise = standardise
        self.pooling = pooling
        self.stats = stats
        self.input = input
        self.checkpoint = checkpoint
        self.layers = layers
        self.local_density = local_density
        self.oversample = oversample


@register
class KMeansDetector(StatisticsDetector):
    """Distance of frame statistics (log-mel or an encoder's, ``input``) to the nearest k-means centre of
    its section's banks (min)."""

    name: ClassVar[str] = "kmeans"
    scorer_kind: ClassVar[str] = "kmeans"
    choices: ClassVar[dict[str, Sequence[str]]] = {"domains": UNSCALED_DOMAIN_MODES}

    def __init__(
        self,
        n_centres: int = 16,
        metric: str = "euclidean",
        domains: str = "min",
        quantiles: str = "",
        standardise: bool = True,
        oversample: int = 0,
        seed: int = 0,
        pooling: str = "mean_std",
        stats: str = POOLED,
        input: str = "logmel",
        checkpoint: str = "",
        layers: str = "all",
    ) -> None:
        self.pooling = pooling
        self.stats = stats
        self.input = input
        self.checkpoint = checkpoint
        self.layers = layers
        self.n_centres = n_centres
        self.metric = metric
        self.domains = domains
        self.quantiles = quantiles
        self.standardise = standardise
        self.oversample = oversample
        self.seed = seed


@register
class MahalanobisDetector(StatisticsDetector):
    """Mahalanobis distance of frame statistics; ``domains="min"`` is selective Mahalanobis.

    Frames of log-mel, or of a pretrained encoder with ``input=beats``."""

    name: ClassVar[str] = "mahalanobis"
    scorer_kind: ClassVar[str] = "mahalanobis"
    choices: ClassVar[dict[str, Sequence[str]]] = {"domains": UNSCALED_DOMAIN_MODES}
    saved_defaults: ClassVar[dict[str, Any]] = {"shared_covariance": False}  # models saved before it existed

    def __init__(
        self,
        covariance: str = "ledoit_wolf",
        domains: str = "min",
        quantiles: str = "",
        standardise: bool = True,
        shared_covariance: bool = True,
        pooling: str = "mean_std",
        stats: str = POOLED,
        input: str = "logmel",
        checkpoint: str = "",
        layers: str = "all",
        oversample: int = 0,
    ) -> None:
        self.covariance = covariance
        self.domains = domains
        self.quantiles = quantiles
        self.standardise = standardise
        self.shared_covariance = shared_covariance
        self.pooling = pooling
        self.stats = stats
        self.input = input
        self.checkpoint = checkpoint
        self.layers = layers
        self.oversample = oversample


@register
class GmmDetector(StatisticsDetector):
    """Gaussian-mixture negative log-likelihood of frame statistics, per section and domain (min).

    Frames of log-mel, or of a pretrained encoder with ``input=beats``."""

    name: ClassVar[str] = "gmm"
    scorer_kind: ClassVar[str] = "gmm"
    choices: ClassVar[dict[str, Sequence[str]]] = {"domains": UNSCALED_DOMAIN_MODES}

    def __init__(
        self,
        n_components: int = 2,
        covariance_type: str = "diag",
        domains: str = "min",
        quantiles: str = "",
        standardise: bool = True,
        seed: int = 0,
        pooling: str = "mean_std",
        stats: str = POOLED,
        input: str = "logmel",
        checkpoint: str = "",
        layers: str = "all",
        oversample: int = 0,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.domains = domains
        self.quantiles = quantiles
        self.standardise = standardise
        self.seed = seed
        self.pooling = pooling
        self.stats = stats
        self.input = input
        self.checkpoint = checkpoint
        self.layers = layers
        self.oversample = oversample
