"""A frame-level memory bank (PatchCore for sound): short anomalous events are not averaged away.

Clip-level embeddings (frame statistics, a classifier's clip vector) average a click or a hiss of a few
frames into the whole clip. Here every frame context (``n_frames`` stacked log-mel frames, standardised per
band) is a point; the bank keeps a bounded coreset of the normal training frames, per section and domain
(:class:`asdkit.scoring.embedding.DomainBanks`); a test frame scores by its distance to the nearest bank
frame (minimum over its section's banks), and a clip by the mean of its highest frame scores (or a high
quantile), so a short event that no normal clip has lifts the clip's score.

Bounded as training grows: each bank draws a pool of at most ``POOL_FACTOR * bank_size`` frames (an equal
share from each of its clips), reduces it to ``bank_size`` frames by greedy k-center selection (the
coreset), and scoring compares against ``bank_size`` frames per bank whatever the number of training clips.
The decision threshold is fitted on leave-one-clip-out scores of (at most ``THRESHOLD_CLIPS``) training
clips: a clip's frames are compared only with bank frames drawn from other clips.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from asdkit.detectors.banks.input_choice import InputChoice
from asdkit.detectors.base import ClipFeatures, Detector
from asdkit.detectors.registry import register
from asdkit.detectors.tags import DetectorTags
from asdkit.errors import ModelError
from asdkit.features.logmel import stack_frames
from asdkit.scoring.embedding import Arrays, DomainBanks

BANKS, SCALER = "banks", "scaler"
#: A bank's candidate pool holds at most this many times ``bank_size`` frames.
POOL_FACTOR = 8
#: Width of the random projection the coreset selection measures distances in (PatchCore's trick).
PROJECTION_DIM = 64
#: At most this many training clips give the leave-one-clip-out scores the threshold is fitted on.
THRESHOLD_CLIPS = 256
AGGREGATES = ("top_mean", "quantile", "mean", "max")
#: ``min``: a frame takes the nearer of its source and target banks; ``pooled``: one bank per section
PATCH_DOMAINS = ("min", "pooled")


def greedy_coreset(points: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``size`` points chosen by greedy k-center: each next point is the one farthest from
    those chosen so far, so the coreset covers the pool's rare frames as well as its common ones.

    Distances are measured after a seeded Gaussian random projection to ``PROJECTION_DIM`` dimensions
    (when the points are wider), which keeps the cost at ``size * len(points) * PROJECTION_DIM``.
    """
    n = len(points)
    if size >= n:
        return np.arange(n)
    x = np.asarray(points, dtype=np.float32)
    if x.shape[1] > PROJECTION_DIM:
        projection = rng.normal(0.0, 1.0 / np.sqrt(PROJECTION_DIM), size=(x.shape[1], PROJECTION_DIM))
        x = x @ projection.astype(np.float32)
    chosen = np.empty(size, dtype=np.int64)
    chosen[0] = int(rng.integers(n))
    nearest = ((x - x[chosen[0]]) ** 2).sum(axis=1)
    for i in range(1, size):
        chosen[i] = int(np.argmax(nearest))
        nearest = np.minimum(nearest, ((x - x[chosen[i]]) ** 2).sum(axis=1))
    return chosen


def nearest_distances(bank: np.ndarray, queries: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distance of each query row to its nearest bank row; ``exclude`` ([n_queries, n_bank]
    booleans) masks bank rows a query may not use (inf when it may use none)."""
    return nearest(bank, queries, exclude)[0]


def nearest(
    bank: np.ndarray, queries: np.ndarray, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`nearest_distances` and the index of each query's nearest bank row."""
    b = np.asarray(bank, dtype=np.float32)
    q = np.asarray(queries, dtype=np.float32)
    squared = (q * q).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * (q @ b.T)
    if exclude is not None:
        squared = np.where(exclude, np.inf, squared)
    index = squared.argmin(axis=1)
    best = squared[np.arange(len(q)), index]
    return np.sqrt(np.maximum(best, 0.0)).astype(np.float64), index


@dataclass(frozen=True)
class CoresetScorer:
    """A bank of frames reduced to at most ``bank_size`` by greedy k-center; score = nearest distance.

    ``owners`` (the clip each frame came from) travel with the kept frames, so a training clip can be
    scored against the frames of the other clips only.

    ``local_density``: a frame's distance is divided by its nearest bank frame's own distance to the
    nearest bank frame of another clip (the local-density ratio of :class:`asdkit.scoring.embedding.
    KnnScorer` with k=1), so frames in a sparse region of the bank (a target bank, a rare normal state)
    are not taken for anomalies by distance alone.
    """

    kind: ClassVar[str] = "coreset"
    bank_size: int = 1024
    seed: int = 0
    local_density: bool = False

    def fit(self, E: np.ndarray, owners: np.ndarray) -> Arrays:
        rng = np.random.default_rng([self.seed, len(E)])
        keep = greedy_coreset(E, self.bank_size, rng)
        bank, owner = np.asarray(E[keep], dtype=np.float64), np.asarray(owners[keep], np.float64)
        state = {"bank": bank, "owner": owner}
        if self.local_density:
            own = nearest_distances(bank, bank, owner[:, None] == owner[None, :])
            known = np.isfinite(own) & (own > 0)
            # frames of a bank of one clip have no other clip: the bank's typical distance, else 1
            state["own"] = np.where(known, own, np.median(own[known]) if known.any() else 1.0)
        return state

    def _relative(self, state: Arrays, distances: np.ndarray, index: np.ndarray) -> np.ndarray:
        if not self.local_density:
            return distances
        return distances / state["own"][index]

    def score(self, state: Arrays, E: np.ndarray) -> np.ndarray:
        return self._relative(state, *nearest(state["bank"], E))

    def score_excluding(self, state: Arrays, E: np.ndarray, owner: int) -> np.ndarray:
        mask = np.broadcast_to(state["owner"] == owner, (len(E), len(state["owner"])))
        distances, index = nearest(state["bank"], E, mask)
        return np.where(np.isfinite(distances), self._relative(state, distances, index), np.inf)


class FrameBanks(DomainBanks):
    """:class:`DomainBanks` over frames: each frame carries its clip's section, domain and clip index."""

    scorer: CoresetScorer

    def fit_frames(
        self, E: np.ndarray, sections: Sequence[str], domains: Sequence[str], owners: np.ndarray
    ) -> FrameBanks:
        keys = self._bank_keys(sections, domains)
        self.keys = sorted(set(keys))
        self.states = []
        for key in self.keys:
            rows = np.array([i for i, k in enumerate(keys) if k == key])
            self.states.append(self.scorer.fit(E[rows], owners[rows]))
        return self

    def score_left_out(self, E: np.ndarray, section: str, owner: int) -> np.ndarray:
        """Frame scores of training clip ``owner`` against its section's banks without its own frames."""
        columns = [
            self.scorer.score_excluding(state, E, owner)
            for (s, _), state in zip(self.keys, self.states, strict=True)
            if s == section
        ]
        return np.min(np.stack(columns, axis=1), axis=1)


def aggregate(frame_scores: np.ndarray, how: str, fraction: float) -> float:
    """One clip score from its frame scores: the mean of the top ``fraction`` (at least one frame), the
    ``1 - fraction`` quantile, the mean, or the maximum."""
    s = np.asarray(frame_scores, dtype=np.float64)
    if how == "top_mean":
        top = max(1, int(np.ceil(fraction * len(s))))
        return float(np.mean(np.partition(s, len(s) - top)[len(s) - top :]))
    if how == "quantile":
        return float(np.quantile(s, 1.0 - fraction))
    if how == "mean":
        return float(s.mean())
    return float(s.max())


@register
class PatchBankDetector(InputChoice, Detector):
    """Nearest-neighbour distance of each stacked-frame vector to a coreset of normal frames; clip score
    = mean of the clip's highest frame scores (``aggregate``, ``fraction``).

    ``bank_size`` bounds each (section, domain) bank; ``n_frames`` is the context of one point;
    ``domains`` is ``min`` (source and target banks, a frame takes the nearer) or ``pooled``. ``input``
    names the frames (log-mel, or a pretrained encoder's with ``checkpoint`` and ``layers``).
    ``local_density`` divides each frame's distance by its nearest bank frame's own (see CoresetScorer).
    """

    name: ClassVar[str] = "patch_bank"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"aggregate": AGGREGATES, "domains": PATCH_DOMAINS}

    def __init__(
        self,
        n_frames: int = 3,
        bank_size: int = 1024,
        aggregate: str = "top_mean",
        fraction: float = 0.1,
        domains: str = "min",
        seed: int = 0,
        input: str = "logmel",
        checkpoint: str = "",
        layers: str = "all",
        local_density: bool = False,
    ) -> None:
        self.n_frames = n_frames
        self.bank_size = bank_size
        self.aggregate = aggregate
        self.fraction = fraction
        self.domains = domains
        self.seed = seed
        self.local_density = local_density
        self.input = input
        self.checkpoint = checkpoint
        self.layers = layers

    def tags(self) -> DetectorTags:
        return replace(self._with_input(super().tags()), min_frames=max(1, self.n_frames))

    def _check_params(self) -> None:
        if self.n_frames < 1:
            raise ModelError(f"patch_bank: n_frames must be >= 1, got {self.n_frames}")
        if self.bank_size < 1:
            raise ModelError(f"patch_bank: bank_size must be >= 1, got {self.bank_size}")
        if self.aggregate not in AGGREGATES:
            raise ModelError(
                f"patch_bank: aggregate must be one of {', '.join(AGGREGATES)}, got {self.aggregate!r}"
            )
        if not 0 < self.fraction <= 1:
            raise ModelError(f"patch_bank: fraction must be in (0, 1], got {self.fraction}")
        if self.domains not in PATCH_DOMAINS:
            raise ModelError(
                f"patch_bank: domains must be one of {', '.join(PATCH_DOMAINS)}, got {self.domains!r}"
            )

    def _points(self, logmel: np.ndarray) -> np.ndarray:
        """The clip's standardised stacked-frame vectors, [n_points, n_mels * n_frames]."""
        scaler = self.scaler_
        x = (np.asarray(logmel, dtype=np.float64) - scaler["mean"][:, None]) / scaler["std"][:, None]
        if x.shape[1] < self.n_frames:
            raise ModelError(
                f"patch_bank: a clip of {x.shape[1]} frames is shorter than n_frames={self.n_frames}"
            )
        return stack_frames(x, self.n_frames)

    def _fit(self, X: ClipFeatures) -> None:
        self._check_params()
        rng = np.random.default_rng(self.seed)
        keys = [(c.section, c.domain if self.domains == "min" else "all") for c in X.clips]
        per_bank = {k: keys.count(k) for k in set(keys)}
        pool_size = POOL_FACTOR * self.bank_size
        raw, sections, domains, owners = [], [], [], []
        for i, (array, clip, key) in enumerate(zip(self._frames(X), X.clips, keys, strict=True)):
            columns = np.asarray(array, dtype=np.float64)
            share = max(1, -(-pool_size // per_bank[key]))  # an equal share of the pool per clip
            n_points = columns.shape[1] - self.n_frames + 1
            if n_points < 1:
                raise ModelError(
                    f"{clip.path}: {columns.shape[1]} frames, fewer than n_frames={self.n_frames}"
                )
            take = np.sort(rng.choice(n_points, size=min(share, n_points), replace=False))
            raw.append(np.stack([columns[:, t : t + self.n_frames] for t in take]))
            sections += [clip.section] * len(take)
            domains += [clip.domain] * len(take)
            owners += [i] * len(take)
        windows = np.concatenate(raw)  # [n_pool, n_mels, n_frames], raw dB
        mean = windows.mean(axis=(0, 2))
        std = windows.std(axis=(0, 2))
        self.scaler_ = {"mean": mean, "std": np.where(std > 1e-6, std, 1.0)}
        standard = (windows - mean[None, :, None]) / self.scaler_["std"][None, :, None]
        points = standard.transpose(0, 2, 1).reshape(len(windows), -1)  # frame-major, as stack_frames
        banks = FrameBanks(self._scorer(), self.domains)
        banks.fit_frames(points, sections, domains, np.asarray(owners, dtype=np.int64))
        self.bank_layout_ = banks.layout()
        self.bank_arrays_ = banks.to_arrays()

    def _scorer(self) -> CoresetScorer:
        return CoresetScorer(self.bank_size, self.seed, self.local_density)

    def _banks(self) -> FrameBanks:
        banks = FrameBanks.from_arrays(self._scorer(), self.domains, self.bank_layout_, self.bank_arrays_)
        return banks  # type: ignore[return-value]

    def frame_scores(self, logmel: np.ndarray, section: str) -> np.ndarray:
        """Each stacked-frame vector's distance to the nearest normal frame of its section's banks."""
        self._check_fitted()
        points = self._points(logmel)
        return self._banks().score(points, [section] * len(points))

    def _score(self, X: ClipFeatures) -> np.ndarray:
        banks = self._banks()
        out = np.empty(len(X))
        for i, (array, clip) in enumerate(zip(self._frames(X), X.clips, strict=True)):
            points = self._points(array)
            frames = banks.score(points, [clip.section] * len(points))
            out[i] = aggregate(frames, self.aggregate, self.fraction)
        return out

    def _training_scores(self, X: ClipFeatures) -> np.ndarray:
        """Leave-one-clip-out scores of up to ``THRESHOLD_CLIPS`` training clips (for the threshold); the
        other clips get NaN (one entry per clip, as the contract says), which the threshold ignores."""
        banks = self._banks()
        rng = np.random.default_rng([self.seed, 1])
        chosen = np.arange(len(X))
        if len(X) > THRESHOLD_CLIPS:
            chosen = np.sort(rng.choice(len(X), THRESHOLD_CLIPS, replace=False))
        scores = np.full(len(X), np.nan)
        arrays = self._frames(X)
        for i in chosen:
            frames = banks.score_left_out(self._points(arrays[i]), X.clips[i].section, int(i))
            frames = frames[np.isfinite(frames)]
            if len(frames):
                scores[i] = aggregate(frames, self.aggregate, self.fraction)
        if np.isfinite(scores).sum() < 2:
            raise ModelError("patch_bank: too few training clips to fit a threshold on left-out scores")
        return scores

    def _extra_state(self) -> dict[str, Any]:
        return {"banks": self.bank_layout_, "n_mels": len(self.scaler_["mean"])}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.bank_layout_ = state["banks"]
        if self.input == "logmel":  # Detector.load checks the bands against the log-mel features
            self.n_mels_in_ = int(state["n_mels"])

    def _fitted_arrays(self) -> dict[str, np.ndarray]:
        arrays = {f"{SCALER}.{k}": a for k, a in self.scaler_.items()}
        return arrays | {f"{BANKS}.{k}": a for k, a in self.bank_arrays_.items()}

    def _set_fitted_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.scaler_ = {"mean": arrays[f"{SCALER}.mean"], "std": arrays[f"{SCALER}.std"]}
        self.bank_arrays_ = {
            k.removeprefix(f"{BANKS}."): a for k, a in arrays.items() if k.startswith(f"{BANKS}.")
        }
