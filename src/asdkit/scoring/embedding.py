"""Anomaly scores from embeddings (the back ends): k-NN, k-means centres, Mahalanobis, Gaussian mixture.

Each scorer works on any embedding matrix [n_clips, dim] (frame statistics, a classifier's penultimate
layer, an AE's bottleneck). A scorer's learned state is a dict of numpy arrays (``fit`` returns it and
``score`` reads it), so detectors keep it in their weights file and scoring after loading repeats exactly.

:class:`DomainBanks` keeps one scorer state per (section, domain) memory bank and scores a clip by the
minimum over its section's banks: with few target-domain training clips, a target clip is near the
target bank even when the source bank (fitted on many clips) finds it far (the domain-generalisation
trick of the DCASE2023+ winners; for Mahalanobis it is the official baseline's "selective Mahalanobis").
Two more bank options serve the same few-target-clips case: ``KnnScorer(local_density=True)`` divides a
clip's distance by its neighbours' own k-NN distances within the bank (so a sparse target bank and a dense
source bank speak in the same units before the minimum), and ``DomainBanks(oversample=n)`` tops a bank of
fewer than ``n`` clips up with SMOTE-style interpolations between neighbouring members.

Every back end takes any [n_clips, dim] matrix, whatever made it: detectors choose one by parameters
(``scorer``, ``k``, ``metric``, ``local_density``, ``n_centres``, ``oversample``, ``domains``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from asdkit.errors import ModelError

log = logging.getLogger(__name__)

Arrays = dict[str, np.ndarray]
KNN_METRICS = ("cosine", "euclidean")
COVARIANCES = ("ledoit_wolf", "empirical")
GMM_COVARIANCE_TYPES = ("full", "diag", "tied", "spherical")


def _matrix(E: np.ndarray, what: str) -> np.ndarray:
    E = np.asarray(E, dtype=np.float64)
    if E.ndim != 2 or len(E) == 0:
        raise ModelError(f"{what}: expected a non-empty [n_clips, dim] embedding matrix, got shape {E.shape}")
    if not np.all(np.isfinite(E)):
        raise ModelError(f"{what}: embeddings hold NaN or infinite values")
    return E


#: Floor of a neighbourhood's own distance in the local-density ratio (duplicated clips have none).
DENSITY_FLOOR = 1e-12


@dataclass(frozen=True)
class KnnScorer:
    """Mean distance to the ``k`` nearest training embeddings (cosine: 1 - cosine similarity).

    ``local_density``: the distance is divided by the mean of those ``k`` neighbours' own k-NN distances
    within the bank (each member's, leaving itself out), as in the local outlier factor: 1 means "as far
    from the bank as its members are from one another". The state then also holds ``own``.
    """

    kind: ClassVar[str] = "knn"
    k: int = 1
    metric: str = "cosine"
    local_density: bool = False

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ModelError(f"knn: k must be >= 1, got {self.k}")
        if self.metric not in KNN_METRICS:
            raise ModelError(f"knn: metric must be one of {', '.join(KNN_METRICS)}, got {self.metric!r}")

    def fit(self, E: np.ndarray) -> Arrays:
        bank = _matrix(E, "knn memory bank").copy()
        state = {"bank": bank}
        if self.local_density:
            state["own"] = self._neighbours(bank, bank, self.k + 1, 1)[0]  # inf for a lone member
        return state

    def score(self, state: Arrays, E: np.ndarray) -> np.ndarray:
        distances, nearest = self._neighbours(state["bank"], _matrix(E, "knn query"), self.k, 0)
        return self._relative(state, distances, nearest)

    def score_own(self, state: Arrays) -> np.ndarray:
        """Each bank member's score with itself left out (its own distance, 0, would say nothing)."""
        bank = state["bank"]
        if len(bank) == 1:
            return np.full(1, np.inf)
        distances, nearest = self._neighbours(bank, bank, self.k + 1, 1)
        return self._relative(state, distances, nearest)

    def _relative(self, state: Arrays, distances: np.ndarray, nearest: np.ndarray) -> np.ndarray:
        if not self.local_density:
            return distances
        own = state["own"][nearest].mean(axis=1)
        # a neighbourhood of lone members has no own distance (DomainBanks lends them one): unscaled
        return np.where(np.isfinite(own), distances / np.maximum(own, DENSITY_FLOOR), distances)

    def _neighbours(
        self, bank: np.ndarray, E: np.ndarray, k: int, skip: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean distance to the nearest ``k`` bank rows after the first ``skip``, and those rows' indices
        (inf and no rows when the bank has no more than ``skip`` rows)."""
        from sklearn.neighbors import NearestNeighbors

        k = min(k, len(bank))  # a small bank (few target clips) has fewer than k neighbours
        if k <= skip:
            return np.full(len(E), np.inf), np.zeros((len(E), 1), dtype=np.int64)
        nn = NearestNeighbors(n_neighbors=k, metric=self.metric, algorithm="brute").fit(bank)
        distances, indices = nn.kneighbors(E)
        return distances[:, skip:].mean(axis=1), indices[:, skip:]


@dataclass(frozen=True)
class KMeansScorer:
    """Distance to the nearest of ``n_centres`` k-means centres of the bank (cosine: of unit vectors).

    A summary of a large bank (scoring costs ``n_centres`` distances, not one per training clip) that also
    smooths away single odd training clips. A bank of fewer distinct clips has one centre per clip.
    """

    kind: ClassVar[str] = "kmeans"
    n_centres: int = 16
    metric: str = "euclidean"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_centres < 1:
            raise ModelError(f"kmeans: n_centres must be >= 1, got {self.n_centres}")
        if self.metric not in KNN_METRICS:
            raise ModelError(f"kmeans: metric must be one of {', '.join(KNN_METRICS)}, got {self.metric!r}")

    def _space(self, E: np.ndarray) -> np.ndarray:
        if self.metric == "euclidean":
            return E
        return E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), DENSITY_FLOOR)

    def fit(self, E: np.ndarray) -> Arrays:
        from sklearn.cluster import KMeans

        X = self._space(_matrix(E, "kmeans memory bank"))
        distinct = len(np.unique(X, axis=0))
        n = min(self.n_centres, distinct)
        if n == distinct:
            return {"centres": np.unique(X, axis=0)}
        km = KMeans(n_clusters=n, n_init=4, random_state=self.seed).fit(X)
        return {"centres": km.cluster_centers_}

    def score(self, state: Arrays, E: np.ndarray) -> np.ndarray:
        X = self._space(_matrix(E, "kmeans query"))
        C = state["centres"]
        if self.metric == "cosine":
            unit = C / np.maximum(np.linalg.norm(C, axis=1, keepdims=True), DENSITY_FLOOR)
            return 1.0 - (X @ unit.T).max(axis=1)
        squared = (X * X).sum(axis=1)[:, None] + (C * C).sum(axis=1)[None, :] - 2.0 * (X @ C.T)
        return np.sqrt(np.maximum(squared.min(axis=1), 0.0))


def smote(E: np.ndarray, n_total: int, rng: np.random.Generator, k: int = 5) -> np.ndarray:
    """``E`` with rows added until it has ``n_total``: each new row lies at a uniform random point on the
    segment from a random member to one of its ``k`` nearest fellow members (SMOTE, Chawla et al. 2002).

    A bank of one clip, or one already that large, is returned as it is (there is no segment to draw on).
    """
    E = np.asarray(E, dtype=np.float64)
    n = len(E)
    if n < 2 or n >= n_total:
        return E
    squared = ((E[:, None, :] - E[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(squared, np.inf)
    neighbours = np.argsort(squared, axis=1)[:, : min(k, n - 1)]
    base = rng.integers(0, n, size=n_total - n)
    partner = neighbours[base, rng.integers(0, neighbours.shape[1], size=len(base))]
    step = rng.random((len(base), 1))
    return np.concatenate([E, E[base] + step * (E[partner] - E[base])])


@dataclass(frozen=True)
class MahalanobisScorer:
    """Mahalanobis distance to the training mean under a (shrunk) covariance of the training embeddings.

    ``ledoit_wolf`` shrinks the covariance towards a scaled identity, which keeps it invertible with fewer
    clips than dimensions (the target bank); ``empirical`` is the plain maximum-likelihood estimate
    (pseudo-inverted). ``ridge`` adds that fraction of the mean variance to the diagonal in both cases.

    ``shared_covariance``: the banks fitted together (:meth:`fit_banks`) keep their own means but share one
    covariance, estimated from every bank's clips around their bank's mean. A bank of three target clips
    then measures in the same units as the source bank beside it (so the minimum over banks compares like
    with like), and a bank of one clip still has a covariance instead of a near-zero one.
    """

    kind: ClassVar[str] = "mahalanobis"
    covariance: str = "ledoit_wolf"
    ridge: float = 1e-6
    shared_covariance: bool = False

    def __post_init__(self) -> None:
        if self.covariance not in COVARIANCES:
            raise ModelError(
                f"mahalanobis: covariance must be one of {', '.join(COVARIANCES)}, got {self.covariance!r}"
            )

    def fit(self, E: np.ndarray) -> Arrays:
        E = _matrix(E, "mahalanobis training embeddings")
        return {"location": E.mean(axis=0), "precision": self._precision(E - E.mean(axis=0))}

    def fit_banks(self, groups: Sequence[np.ndarray]) -> list[Arrays]:
        """One state per group of embeddings; with ``shared_covariance`` the groups share one precision."""
        if not self.shared_covariance:
            return [self.fit(g) for g in groups]
        groups = [_matrix(g, "mahalanobis training embeddings") for g in groups]
        precision = self._precision(np.concatenate([g - g.mean(axis=0) for g in groups]))
        return [{"location": g.mean(axis=0), "precision": precision} for g in groups]

    def _precision(self, residuals: np.ndarray) -> np.ndarray:
        """The inverse (shrunk) covariance of embeddings already centred on their mean(s)."""
        from sklearn.covariance import EmpiricalCovariance, LedoitWolf

        dim = residuals.shape[1]
        if np.any(residuals):
            kind = LedoitWolf if self.covariance == "ledoit_wolf" else EmpiricalCovariance
            cov = kind(assume_centered=True).fit(residuals).covariance_
        else:  # one clip: no spread to estimate
            cov = np.zeros((dim, dim))
        level = float(np.mean(np.diag(cov))) if np.any(cov) else 1.0
        cov = cov + self.ridge * level * np.eye(dim)
        return np.linalg.pinv(cov, hermitian=True)

    def score(self, state: Arrays, E: np.ndarray) -> np.ndarray:
        d = _matrix(E, "mahalanobis query") - state["location"]
        squared = np.einsum("ij,jk,ik->i", d, state["precision"], d)
        return np.sqrt(np.maximum(squared, 0.0))


@dataclass(frozen=True)
class GmmScorer:
    """Negative log-likelihood under a Gaussian mixture (scikit-learn) fitted to the training embeddings.

    The number of components is capped at the number of training clips (a small target bank). A bank of one
    clip (a lone target clip, or a held-out fold's remainder) is one Gaussian of variance ``reg_covar``
    around it: scikit-learn needs two samples, so the clip is given twice.
    """

    kind: ClassVar[str] = "gmm"
    n_components: int = 2
    covariance_type: str = "diag"
    reg_covar: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_components < 1:
            raise ModelError(f"gmm: n_components must be >= 1, got {self.n_components}")
        if self.covariance_type not in GMM_COVARIANCE_TYPES:
            raise ModelError(
                f"gmm: covariance_type must be one of {', '.join(GMM_COVARIANCE_TYPES)}, "
                f"got {self.covariance_type!r}"
            )

    def _mixture(self, n_components: int) -> object:
        from sklearn.mixture import GaussianMixture

        return GaussianMixture(
            n_components=n_components,
            covariance_type=self.covariance_type,
            reg_covar=self.reg_covar,
            random_state=self.seed,
        )

    def fit(self, E: np.ndarray) -> Arrays:
        E = _matrix(E, "gmm training embeddings")
        gmm = self._mixture(min(self.n_components, len(E)))
        if len(E) == 1:
            E = np.repeat(E, 2, axis=0)
        gmm.fit(E)  # type: ignore[attr-defined]
        return {
            "weights": gmm.weights_,  # type: ignore[attr-defined]
            "means": gmm.means_,  # type: ignore[attr-defined]
            "covariances": gmm.covariances_,  # type: ignore[attr-defined]
            "precisions_cholesky": gmm.precisions_cholesky_,  # type: ignore[attr-defined]
        }

    def score(self, state: Arrays, E: np.ndarray) -> np.ndarray:
        gmm = self._mixture(len(state["weights"]))
        for name in ("weights", "means", "covariances", "precisions_cholesky"):
            setattr(gmm, name + "_", state[name])
        return -gmm.score_samples(_matrix(E, "gmm query"))  # type: ignore[attr-defined]


Scorer = KnnScorer | KMeansScorer | MahalanobisScorer | GmmScorer
SCORERS: dict[str, type[Scorer]] = {
    c.kind: c for c in (KnnScorer, KMeansScorer, MahalanobisScorer, GmmScorer)
}


def make_scorer(kind: str, **options: object) -> Scorer:
    """A scorer by name with the options it knows (others are ignored, so detectors pass all of theirs)."""
    import dataclasses

    if kind not in SCORERS:
        raise ModelError(f"unknown embedding scorer {kind!r}; available: {', '.join(SCORERS)}")
    cls = SCORERS[kind]
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in options.items() if k in known})  # type: ignore[arg-type]


def _fit_banks(scorer: Scorer, groups: Sequence[np.ndarray]) -> list[Arrays]:
    """Every bank's state; banks that share a covariance are fitted together."""
    if isinstance(scorer, MahalanobisScorer):
        return scorer.fit_banks(groups)
    return [scorer.fit(g) for g in groups]


DOMAIN_MODES = ("min", "pooled", "min_scaled")
#: ``domains`` of a scorer other than k-NN: ``min_scaled`` scales by leave-one-out scores, which only k-NN
#: banks give (in-sample Mahalanobis or mixture scores of a bank of a few clips understate its spread)
UNSCALED_DOMAIN_MODES = ("min", "pooled")
#: Folds a Mahalanobis or mixture bank is cross-fitted in for its members' held-out (threshold) scores.
BANK_FOLDS = 10
#: Where ``domains="min_scaled"`` keeps a bank's own score statistics (mean, spread) in its state.
BANK_SCALE = "bank_scale"


_reported_unbanked: set[tuple[tuple[object, ...], str]] = set()


def _first_report(banks: tuple[object, ...], sections: set[str]) -> bool:
    """Whether any of ``sections`` is new for banks of these keys in this process, then remembered (an
    ensemble's members share keys; banks are rebuilt per call, so a service would warn per request)."""
    new = {(banks, s) for s in sections} - _reported_unbanked
    _reported_unbanked.update(new)
    return bool(new)


def domains_problem(domains: str, scorer: str) -> str:
    """Empty when banks laid out by ``domains`` can be scored by the scorer named ``scorer``, else why not."""
    if domains not in UNSCALED_DOMAIN_MODES and not issubclass(SCORERS[scorer], KnnScorer):
        return f"domains={domains} needs the knn scorer (it scales by leave-one-out scores), not {scorer}"
    return ""


class DomainBanks:
    """One scorer state per memory bank: (section, domain), or (section, "all") when ``domains="pooled"``.

    A clip's score is the minimum over its section's banks. A clip whose section has no bank (a file
    scored outside a data tree, where the section is unknown) takes the minimum over every bank.

    ``oversample=n``: a bank of fewer than ``n`` clips (but at least two) is fitted on its clips plus
    SMOTE-style interpolations between them (:func:`smote`, seeded by the bank's place), up to ``n`` rows;
    its members' held-out scores then come from the bank refitted without each of them.

    A k-NN bank with ``local_density`` whose members have no neighbour of their own (a bank of one clip)
    borrows the median own distance of the other banks, so its ratio is in the same units as theirs.

    ``domains="min_scaled"`` (k-NN only) first standardises each bank's scores with the mean and standard
    deviation of its own members' leave-one-out scores. A target bank of a few clips lies sparser than a
    source bank of hundreds, so its raw distances run larger for normal clips too, and the plain minimum
    lets a source-like anomaly score below a normal target clip; scaled, both banks say "how unusual
    for this bank".
    """

    def __init__(self, scorer: Scorer, domains: str = "min", oversample: int = 0) -> None:
        if oversample < 0:
            raise ModelError(f"oversample must be >= 0 (0: off), got {oversample}")
        if domains not in DOMAIN_MODES:
            raise ModelError(f"domains must be one of {', '.join(DOMAIN_MODES)}, got {domains!r}")
        problem = domains_problem(domains, scorer.kind)
        if problem:
            raise ModelError(problem)
        self.scorer = scorer
        self.domains = domains
        self.oversample = oversample
        self.keys: list[tuple[str, str]] = []
        self.states: list[Arrays] = []

    def fit(self, E: np.ndarray, sections: Sequence[str], domains: Sequence[str]) -> DomainBanks:
        E = _matrix(E, "training embeddings")
        if not len(E) == len(sections) == len(domains):
            raise ValueError(f"{len(E)} embeddings for {len(sections)} sections and {len(domains)} domains")
        keys = self._bank_keys(sections, domains)
        self.keys = sorted(set(keys))
        groups = self._groups(E, keys)
        self.states = _fit_banks(self.scorer, self._augmented(groups))
        self._lend_own_distances()
        if self.domains == "min_scaled":
            for key, state, members in zip(self.keys, self.states, groups, strict=True):
                state[BANK_SCALE] = self._own_statistics(state, members, key)
        return self

    def _augmented(self, groups: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The groups, each small one topped up to ``oversample`` rows by SMOTE (seeded by its place)."""
        return [
            smote(g, self.oversample, np.random.default_rng([j, len(g)])) if self.oversample else g
            for j, g in enumerate(groups)
        ]

    def _oversampled(self, n_members: int) -> bool:
        return 2 <= n_members < self.oversample

    def _lend_own_distances(self) -> None:
        """Banks whose members have no own k-NN distance take the median of the other banks' members'."""
        if not (isinstance(self.scorer, KnnScorer) and self.scorer.local_density):
            return
        known = np.concatenate([s["own"][np.isfinite(s["own"])] for s in self.states])
        lent = float(np.median(known)) if len(known) else 1.0
        for state in self.states:
            state["own"] = np.where(np.isfinite(state["own"]), state["own"], lent)

    def _groups(self, E: np.ndarray, keys: Sequence[tuple[str, str]]) -> list[np.ndarray]:
        """Each bank's member embeddings, in ``self.keys`` order."""
        return [E[[i for i, k in enumerate(keys) if k == key]] for key in self.keys]

    def _bank_keys(self, sections: Sequence[str], domains: Sequence[str]) -> list[tuple[str, str]]:
        by_domain = self.domains != "pooled"
        return [(s, d if by_domain else "all") for s, d in zip(sections, domains, strict=True)]

    def _own_statistics(self, state: Arrays, members: np.ndarray, key: tuple[str, str]) -> np.ndarray:
        if self._oversampled(len(members)):  # interpolated rows sit beside each member: refit without it
            own = self._cross_fitted(members, self.keys.index(key))
        else:
            own = self.scorer.score_own(state)  # type: ignore[union-attr]  # knn only (checked in __init__)
        own = own[np.isfinite(own)]
        if len(own) < 2 or own.std() <= 1e-12:
            log.warning(
                "bank %s/%s: too few distinct member scores to scale it (%d clips); left unscaled",
                key[0],
                key[1],
                len(members),
            )
            return np.array([0.0, 1.0])
        return np.array([own.mean(), own.std()])

    def _scaled(self, j: int, values: np.ndarray) -> np.ndarray:
        stats = self.states[j].get(BANK_SCALE)
        return values if stats is None else (values - stats[0]) / stats[1]

    def score_banks(self, E: np.ndarray) -> np.ndarray:
        """Every clip's score under every bank, [n_clips, n_banks] (columns in ``keys`` order)."""
        E = _matrix(E, "embeddings to score")
        return np.stack([self._scaled(j, self.scorer.score(s, E)) for j, s in enumerate(self.states)], axis=1)

    def score_training(self, E: np.ndarray, sections: Sequence[str], domains: Sequence[str]) -> np.ndarray:
        """Scores of the clips the banks were fitted on (same order), each by a bank that does not hold it.

        A k-NN bank leaves each member out of its own search; a Mahalanobis or mixture bank is refitted
        without each of ``BANK_FOLDS`` folds of its members to score that fold (in-sample distances understate
        an unseen clip's by far). A clip alone in its bank scores by the other banks.
        """
        per_bank = self.score_banks(E)
        E = _matrix(E, "training embeddings")
        keys = self._bank_keys(sections, domains)
        groups = self._groups(E, keys)
        for j, key in enumerate(self.keys):
            rows = [i for i, k in enumerate(keys) if k == key]
            if isinstance(self.scorer, KnnScorer) and not self._oversampled(len(rows)):
                if len(rows) != len(self.states[j]["bank"]):
                    raise ModelError(
                        f"bank {key[0]}/{key[1]} holds {len(self.states[j]['bank'])} clips but {len(rows)} "
                        "were given: training scores need the very clips the banks were fitted on"
                    )
                per_bank[rows, j] = self._scaled(j, self.scorer.score_own(self.states[j]))
            elif self._shares_covariance():
                per_bank[rows] = self._cross_fitted_shared(groups, j)
            else:
                per_bank[rows, j] = self._cross_fitted(groups[j], j)
        scores = self._section_min(per_bank, sections)
        if not np.all(np.isfinite(scores)):
            raise ModelError("a training clip has no other clip to be compared with (one clip per section?)")
        return scores

    def _folds(self, n: int, j: int) -> tuple[int, np.ndarray]:
        folds = min(BANK_FOLDS, n)
        return folds, np.random.default_rng(j).permutation(n) % max(folds, 1)

    def _cross_fitted(self, members: np.ndarray, j: int) -> np.ndarray:
        """Bank ``j``'s members scored by the bank refitted on the other folds (inf for a lone member)."""
        out = np.full(len(members), np.inf)
        folds, fold_of = self._folds(len(members), j)
        for k in range(folds if len(members) > 1 else 0):
            held = fold_of == k
            state = self.scorer.fit(self._augmented([members[~held]])[0])
            if isinstance(self.scorer, KnnScorer) and self.scorer.local_density:
                state["own"] = np.where(np.isfinite(state["own"]), state["own"], self._lent_own(j))
            out[held] = self._scaled(j, self.scorer.score(state, members[held]))
        return out

    def _lent_own(self, j: int) -> float:
        """The own distance bank ``j`` was fitted with (lent or its members' median): a fold left with one
        member has none of its own."""
        own = self.states[j]["own"]
        return float(np.median(own[np.isfinite(own)])) if np.isfinite(own).any() else 1.0

    def _shares_covariance(self) -> bool:
        return isinstance(self.scorer, MahalanobisScorer) and self.scorer.shared_covariance

    def _cross_fitted_shared(self, groups: list[np.ndarray], j: int) -> np.ndarray:
        """Bank ``j``'s members under every bank, [members, banks], each fold scored by all banks refitted
        without it (the shared covariance holds every bank's clips, so every bank must leave it out)."""
        members = groups[j]
        out = np.full((len(members), len(groups)), np.inf)
        folds, fold_of = self._folds(len(members), j)
        for k in range(folds):
            held = fold_of == k
            rest = members[~held]
            kept = [b for b in range(len(groups)) if b != j or len(rest)]  # a lone member empties its bank
            states = _fit_banks(self.scorer, self._augmented([rest if b == j else groups[b] for b in kept]))
            for b, state in zip(kept, states, strict=True):
                out[held, b] = self.scorer.score(state, members[held])
        return out

    def score(self, E: np.ndarray, sections: Sequence[str]) -> np.ndarray:
        if not self.states:
            raise ModelError("no memory banks: fit first")
        return self._section_min(self.score_banks(E), sections)

    def _section_min(self, per_bank: np.ndarray, sections: Sequence[str]) -> np.ndarray:
        bank_sections = np.array([s for s, _ in self.keys])
        out = np.empty(len(per_bank))
        # A clip without a section (an upload, a loose file) is expected: it is scored against every bank
        # without a word. A named section without a bank is worth one warning, not one per request.
        unknown = {s for s in sections if s and s not in set(bank_sections.tolist())}
        if _first_report(tuple(self.keys), unknown):
            log.warning(
                "section(s) %s have no memory bank; those clips are scored against every bank",
                ", ".join(sorted(unknown)),
            )
        for i, section in enumerate(sections):
            mine = bank_sections == section
            out[i] = per_bank[i, mine].min() if mine.any() else per_bank[i].min()
        return out

    # -- flat arrays for a state_dict ---------------------------------------------------------------------
    def to_arrays(self) -> Arrays:
        return {f"bank{i}__{name}": a for i, state in enumerate(self.states) for name, a in state.items()}

    def layout(self) -> list[dict[str, object]]:
        """What model.json keeps to rebuild the banks: their keys and their arrays' shapes."""
        return [
            {"section": s, "domain": d, "shapes": {n: list(a.shape) for n, a in state.items()}}
            for (s, d), state in zip(self.keys, self.states, strict=True)
        ]

    @classmethod
    def from_arrays(
        cls,
        scorer: Scorer,
        domains: str,
        layout: list[dict[str, object]],
        arrays: Arrays,
        oversample: int = 0,
    ) -> DomainBanks:
        banks = cls(scorer, domains, oversample)
        banks.keys = [(str(b["section"]), str(b["domain"])) for b in layout]
        banks.states = [
            {name: arrays[f"bank{i}__{name}"] for name in b["shapes"]}  # type: ignore[attr-defined]
            for i, b in enumerate(layout)
        ]
        return banks
