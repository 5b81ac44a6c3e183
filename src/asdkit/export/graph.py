"""The scoring path as torch modules written with ops that trace to ONNX (opset 17) with dynamic shapes.

:class:`LogMelGraph` is the front end on ``torch.stft`` (exported as ONNX's ``STFT``); a head per detector
family turns the log-mel [batch, frames, n_mels] and each clip's section index into clip scores [batch]
(float64), repeating what the detector's ``anomaly_score`` computes. :func:`build_head` picks the head, or
raises a one-line error saying why a detector has none. The modules are written to be traced by
:mod:`asdkit.export.onnx`, not run: ``torch.stft`` with ``return_complex=False`` is what the exporter turns
into ``STFT``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import torch
from torch import nn

from asdkit.detectors.banks.clip_stats import (
    DELTA,
    ENVELOPE,
    ENVELOPE_QUANTILES,
    MODULATION_EDGES,
    POOLED,
    POWER_FLOOR,
    TONAL,
    parse_stats,
)
from asdkit.detectors.base import Detector
from asdkit.errors import AsdkitError, ModelError
from asdkit.features.config import FeatureConfig
from asdkit.features.frontends import LOGMEL
from asdkit.features.logmel import mel_filterbank, periodic_hann

#: Why a registered detector has no ONNX graph (every other registered detector has one; the tests check
#: that each registered name is in exactly one of the two).
_EMBEDDING_NET = (
    "its embedding network (log-mel snippets, optionally a clip spectrum) is not built in the graph"
)
_DENSITY_NET = "its section-conditioned density network, z-scored per section, is not built in the graph"
_CLASSIFIER = "its section classifier over log-mel snippets is not built in the graph"
NOT_EXPORTABLE: dict[str, str] = {
    "conv_ae": "its score runs over 2-D patches, with short clips repeated, which the graph does not build",
    "arcface": _EMBEDDING_NET,
    "adacos": _EMBEDDING_NET,
    "density_ae": _DENSITY_NET,
    "made": _DENSITY_NET,
    "maf": _DENSITY_NET,
    "mobilenet_section": _CLASSIFIER,
    "resnet_section": _CLASSIFIER,
    "finetune": "its pretrained encoder (waveform in, transformer layers) is not built in the graph",
    "kmeans": "no head is written for k-means centres yet (knn, mahalanobis and gmm have one)",
}
STACKED_FRAME = ("ae", "vae", "idnn")
#: numbers of the ``envelope`` group: level quantiles, mean, std, std of changes, one per modulation band
ENVELOPE_LENGTH = len(ENVELOPE_QUANTILES) + 3 + len(MODULATION_EDGES) - 1
STATISTICS = ("knn", "mahalanobis", "gmm")
#: Detectors with a graph; ``ensemble`` when each of its members has one.
EXPORTABLE = (*STACKED_FRAME, *STATISTICS, "patch_bank", "ensemble")


class LogMelGraph(nn.Module):
    """Waveforms [B, T] (float32) -> log-mel in dB [B, frames, n_mels] (float32), as
    :class:`asdkit.features.logmel.LogMel`: zero-padded centring, periodic Hann, STFT in ``precision``,
    power and mel projection (the Slaney filterbank as a constant) and dB in float32."""

    window: torch.Tensor
    mel: torch.Tensor

    def __init__(self, config: FeatureConfig, precision: str = "float64") -> None:
        super().__init__()
        if precision not in ("float32", "float64"):
            raise AsdkitError(f"precision must be 'float32' or 'float64', got {precision!r}")
        self.config = config
        dtype = torch.float64 if precision == "float64" else torch.float32
        self.register_buffer("window", periodic_hann(config, dtype))
        self.register_buffer("mel", mel_filterbank(config, torch.float32).T.contiguous())

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        c = self.config
        wave = wave.to(self.window.dtype)
        if c.center:
            wave = nn.functional.pad(wave, (c.n_fft // 2, c.n_fft // 2))
        spec = torch.stft(
            wave,
            c.n_fft,
            c.hop_length,
            window=self.window,
            center=False,
            onesided=True,
            return_complex=False,
        )  # [B, bins, frames, 2]
        # |X|^2 as a sum over the (re, im) axis: indexing the parts exports as two slow Gathers
        power = spec.float().square().sum(dim=-1).transpose(1, 2)  # [B, frames, bins]
        if c.power != 2.0:
            power = power.pow(c.power / 2.0)
        db = 10.0 * torch.log10(torch.clamp(torch.matmul(power, self.mel), min=c.amin))
        if c.top_db is not None:
            db = torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - c.top_db)
        return db


def _stacked(db: torch.Tensor, n_frames: int) -> torch.Tensor:
    """[B, F, M] -> [B, F - n + 1, n * M]: vector t holds frames t .. t+n-1, frame-major (stack_frames)."""
    index = torch.arange(db.shape[1] - n_frames + 1)[:, None] + torch.arange(n_frames)[None, :]
    return db[:, index].flatten(2)


class SectionMin(nn.Module):
    """The minimum over a clip's section's banks; a clip whose section index is -1 or names no bank
    (an unknown section) takes the minimum over every bank, as :class:`DomainBanks` does."""

    bank_sections: torch.Tensor

    def __init__(self, bank_sections: Sequence[int]) -> None:
        super().__init__()
        self.register_buffer("bank_sections", torch.tensor(list(bank_sections), dtype=torch.int64))

    def forward(self, per_bank: torch.Tensor, section: torch.Tensor) -> torch.Tensor:
        """``per_bank`` [B, ..., banks] and ``section`` [B] -> [B, ...]."""
        mine = self.bank_sections == section[:, None]  # [B, banks]
        mine = mine | ~mine.any(dim=1, keepdim=True)
        while mine.dim() < per_bank.dim():
            mine = mine.unsqueeze(1)
        inf = torch.full_like(per_bank, math.inf)
        return torch.where(mine, per_bank, inf).amin(dim=-1)


class StackedFrameHead(nn.Module):
    """ae, vae, idnn: the mean item error over the clip's stacked-frame vectors."""

    def __init__(self, detector: Detector) -> None:
        super().__init__()
        self.detector = detector
        self.network = detector.network_.cpu().eval()  # type: ignore[attr-defined]

    def forward(self, db: torch.Tensor, section: torch.Tensor) -> torch.Tensor:
        items = _stacked(db, self.detector.n_frames)  # type: ignore[attr-defined]
        errors = self.detector._item_errors(self.network, items.flatten(0, 1))  # type: ignore[attr-defined]
        return errors.reshape(db.shape[0], -1).mean(dim=1).double()


def _quantiles(x: torch.Tensor, qs: Sequence[float]) -> list[torch.Tensor]:
    """numpy's default (linear) quantiles of ``x`` [B, F, M] over frames, each [B, M]."""
    ordered = torch.sort(x, dim=1).values
    last = torch.ones_like(x[0, :, 0]).sum() - 1.0  # F - 1, as a traced value
    out = []
    for q in qs:
        position = last * q
        lo = torch.floor(position)
        hi = torch.minimum(lo + 1.0, last)
        frac = (position - lo).to(x.dtype)
        a = ordered.index_select(1, lo.long().reshape(1)).squeeze(1)
        b = ordered.index_select(1, hi.long().reshape(1)).squeeze(1)
        out.append(a + (b - a) * frac)
    return out


def _std_over_frames(x: torch.Tensor) -> torch.Tensor:
    """Population standard deviation of ``x`` [B, N, ...] over dim 1; 0 where N is 0 (a one-frame clip's
    differences), as :func:`asdkit.detectors.banks.clip_stats.delta_std` gives."""
    count = torch.clamp(torch.ones_like(x[0, :]).sum(dim=0), min=1.0)  # N, as a traced value
    mean = x.sum(dim=1) / count
    return (((x - mean[:, None]) ** 2).sum(dim=1) / count).sqrt()


def _envelope(x: torch.Tensor, frame_rate: float) -> torch.Tensor:
    """:func:`asdkit.detectors.banks.clip_stats.envelope_statistics` of the log-mel ``x`` [B, F, M]
    (float64) -> [B, 12]. The modulation spectrum is a DFT of cos/sin matrices over the traced frame count
    (``torch.fft`` does not export), its bins' frequencies computed as ``numpy.fft.rfftfreq`` does, so a bin
    on a band edge falls on the same side."""
    natural = x * (math.log(10.0) / 10.0)
    top = natural.amax(dim=2, keepdim=True)
    env = (top.squeeze(2) + (natural - top).exp().sum(dim=2).log()) * (10.0 / math.log(10.0))  # [B, F]
    levels = [q[:, 0] for q in _quantiles(env[:, :, None], ENVELOPE_QUANTILES)]
    mean = env.mean(dim=1)
    levels += [mean, _std_over_frames(env), _std_over_frames(env[:, 1:] - env[:, :-1])]
    n = env.shape[1]
    count = torch.ones_like(env[0]).sum()  # F, as a traced value
    t = torch.arange(n)
    k = torch.arange(n // 2 + 1)
    angle = (k[:, None] * t[None, :] % n).to(torch.float64) * (2.0 * math.pi) / count  # [K, F]
    centred = env - mean[:, None]
    power = (torch.matmul(centred, angle.cos().T) ** 2 + torch.matmul(centred, angle.sin().T) ** 2) / count
    freqs = k.to(torch.float64) * (1.0 / (count * (1.0 / frame_rate)))  # numpy.fft.rfftfreq's arithmetic
    bands = []
    for low, high in pairwise(MODULATION_EDGES):
        inside = ((freqs >= low) & (freqs < high)).to(torch.float64)  # [K]
        total, bins = (power * inside).sum(dim=1), inside.sum()
        band_mean = torch.where(bins > 0, total / torch.clamp(bins, min=1.0), torch.zeros_like(total))
        bands.append(torch.log10(torch.clamp(band_mean, min=POWER_FLOOR)))
    return torch.stack(levels + bands, dim=1)


def _squared_euclidean(x: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """[..., D] x [N, D] -> [..., N] as ``|x|^2 + |b|^2 - 2 x.b`` (the expansion numpy and sklearn use)."""
    return (x * x).sum(-1, keepdim=True) + (bank * bank).sum(-1) - 2.0 * torch.matmul(x, bank.T)


class StatisticsHead(nn.Module):
    """knn, mahalanobis, gmm: the groups of clip statistics ``stats`` names (per-band mean, standard
    deviation and quantiles of the clip's log-mel; ``delta``; ``envelope``), standardised and weighted per
    group, scored under every (section, domain) bank in float64; minimum over the section's."""

    def __init__(self, detector: Detector, sections: Sequence[str]) -> None:
        super().__init__()
        from asdkit.detectors.banks.clip_stats import group_weights, parse_stats
        from asdkit.detectors.banks.embedding import parse_quantiles
        from asdkit.scoring.embedding import BANK_SCALE

        self.scorer = detector._make_scorer()  # type: ignore[attr-defined]
        banks = detector._banks()  # type: ignore[attr-defined]
        self.qs = parse_quantiles(detector.quantiles)  # type: ignore[attr-defined]
        self.groups = parse_stats(getattr(detector, "stats", POOLED))
        config = detector.feature_config_
        self.frame_rate = config.sample_rate / config.hop_length
        standard = detector.standard_  # type: ignore[attr-defined]
        self.register_buffer("center", torch.from_numpy(np.asarray(standard["center"], np.float64)))
        self.register_buffer("scale", torch.from_numpy(np.asarray(standard["scale"], np.float64)))
        n_mels = detector.n_mels_in_  # type: ignore[attr-defined]
        lengths = {POOLED: n_mels * (2 + len(self.qs)), DELTA: n_mels, ENVELOPE: ENVELOPE_LENGTH}
        weights = group_weights([lengths[g] for g in self.groups])
        self.register_buffer("weights", torch.from_numpy(np.asarray(weights, np.float64)))
        self.section_min = SectionMin([sections.index(s) for s, _ in banks.keys])
        self.n_banks = len(banks.states)
        for j, state in enumerate(banks.states):
            for name, value in self._bank_tensors(state).items():
                self.register_buffer(f"b{j}_{name}", value)
            stats = state.get(BANK_SCALE)
            scale = np.array([0.0, 1.0]) if stats is None else np.asarray(stats, np.float64)
            self.register_buffer(f"b{j}_bank_scale", torch.from_numpy(scale))

    def _bank_tensors(self, state: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))

        kind = self.scorer.kind
        if kind == "knn":
            return {"bank": t(state["bank"])}
        if kind == "mahalanobis":
            return {"location": t(state["location"]), "precision": t(state["precision"])}
        # gmm: every covariance type as one Cholesky factor of the precision per component, [K, D, D]
        chol = np.asarray(state["precisions_cholesky"], np.float64)
        means = np.asarray(state["means"], np.float64)
        k, d = means.shape
        cov_type = self.scorer.covariance_type
        if cov_type == "diag":
            chol = np.stack([np.diag(c) for c in chol])
        elif cov_type == "spherical":
            chol = np.stack([c * np.eye(d) for c in chol])
        elif cov_type == "tied":
            chol = np.broadcast_to(chol, (k, d, d))
        log_det = np.log(np.stack([np.diag(c) for c in chol])).sum(axis=1)
        return {
            "means": t(means),
            "chol": t(chol),
            "offset": t(np.log(state["weights"]) + log_det - 0.5 * d * np.log(2 * np.pi)),
        }

    def embed(self, db: torch.Tensor) -> torch.Tensor:
        x = db.double()  # [B, F, M]
        parts: list[torch.Tensor] = []
        for group in self.groups:
            if group == POOLED:
                mean = x.mean(dim=1)
                parts += [mean, ((x - mean[:, None, :]) ** 2).mean(dim=1).sqrt(), *_quantiles(x, self.qs)]
            elif group == DELTA:
                parts.append(_std_over_frames(x[:, 1:] - x[:, :-1]))
            else:
                parts.append(_envelope(x, self.frame_rate))
        return (torch.cat(parts, dim=1) - self.center) / self.scale * self.weights

    def _bank_score(self, j: int, e: torch.Tensor) -> torch.Tensor:
        kind = self.scorer.kind
        if kind == "knn":
            bank = getattr(self, f"b{j}_bank")
            if self.scorer.metric == "cosine":
                unit = e / e.norm(dim=1, keepdim=True)
                d = 1.0 - torch.matmul(unit, (bank / bank.norm(dim=1, keepdim=True)).T)
            else:
                d = _squared_euclidean(e, bank).clamp(min=0.0).sqrt()
            k = min(self.scorer.k, bank.shape[0])
            return torch.topk(d, k, dim=1, largest=False).values.mean(dim=1)
        if kind == "mahalanobis":
            diff = e - getattr(self, f"b{j}_location")
            squared = (torch.matmul(diff, getattr(self, f"b{j}_precision")) * diff).sum(dim=1)
            return squared.clamp(min=0.0).sqrt()
        diff = e[:, None, :] - getattr(self, f"b{j}_means")  # [B, K, D]
        y = torch.matmul(diff.unsqueeze(2), getattr(self, f"b{j}_chol")).squeeze(2)  # [B, K, D]
        log_prob = getattr(self, f"b{j}_offset") - 0.5 * (y * y).sum(dim=2)
        return -torch.logsumexp(log_prob, dim=1)

    def forward(self, db: torch.Tensor, section: torch.Tensor) -> torch.Tensor:
        e = self.embed(db)
        columns = []
        for j in range(self.n_banks):
            stats = getattr(self, f"b{j}_bank_scale")
            columns.append((self._bank_score(j, e) - stats[0]) / stats[1])
        return self.section_min(torch.stack(columns, dim=1), section)


class PatchBankHead(nn.Module):
    """patch_bank: standardised stacked-frame points, their nearest-neighbour distance (float32, as the
    detector computes it) to every bank, minimum over the section's banks, aggregated per clip."""

    def __init__(self, detector: Detector, sections: Sequence[str]) -> None:
        super().__init__()
        self.n_frames = detector.n_frames  # type: ignore[attr-defined]
        self.aggregate = detector.aggregate  # type: ignore[attr-defined]
        self.fraction = float(detector.fraction)  # type: ignore[attr-defined]
        scaler = detector.scaler_  # type: ignore[attr-defined]
        self.register_buffer("mean", torch.from_numpy(np.asarray(scaler["mean"], np.float64)))
        self.register_buffer("std", torch.from_numpy(np.asarray(scaler["std"], np.float64)))
        banks = detector._banks()  # type: ignore[attr-defined]
        self.section_min = SectionMin([sections.index(s) for s, _ in banks.keys])
        self.n_banks = len(banks.states)
        for j, state in enumerate(banks.states):
            self.register_buffer(f"bank{j}", torch.from_numpy(np.asarray(state["bank"], np.float32)))

    def forward(self, db: torch.Tensor, section: torch.Tensor) -> torch.Tensor:
        points = _stacked((db.double() - self.mean) / self.std, self.n_frames).float()  # [B, P, D]
        columns = []
        for j in range(self.n_banks):
            squared = _squared_euclidean(points, getattr(self, f"bank{j}")).amin(dim=-1)
            columns.append(squared.clamp(min=0.0).sqrt().double())
        frames = self.section_min(torch.stack(columns, dim=-1), section)  # [B, P]
        if self.aggregate == "mean":
            return frames.mean(dim=1)
        if self.aggregate == "max":
            return frames.amax(dim=1)
        count = torch.ones_like(frames[0]).sum()  # P, as a traced value
        if self.aggregate == "top_mean":
            ordered = torch.sort(frames, dim=1, descending=True).values
            top = torch.clamp(torch.ceil(count * self.fraction), min=1.0)
            keep = torch.arange(frames.shape[1], dtype=frames.dtype) < top
            return (ordered * keep).sum(dim=1) / top
        return _quantiles(frames[:, :, None], [1.0 - self.fraction])[0][:, 0]


class EnsembleHead(nn.Module):
    """ensemble: the weighted sum (``combine="mean"``) or the maximum (``"max"``) of its members' scores, each
    normalised with its training statistics."""

    def __init__(self, detector: Detector, sections: Sequence[str]) -> None:
        super().__init__()
        from asdkit.detectors.ensemble import _member_stats

        self.kind = detector.normalise  # type: ignore[attr-defined]
        self.combine = getattr(detector, "combine", "mean")
        members = detector.members_  # type: ignore[attr-defined]
        self.members = nn.ModuleList([build_head(m, sections) for m in members])
        self.weights = [float(w) for w in detector._fitted_weights()]  # type: ignore[attr-defined]
        self.spans: list[tuple[int, float]] = []  # rank: each member's number and range of training scores
        for i in range(len(members)):
            stats = _member_stats(detector.normalisers_, i)  # type: ignore[attr-defined]
            for name, a in stats.items():
                self.register_buffer(f"m{i}_{name}", torch.from_numpy(np.asarray(a, np.float64)))
            ref = stats.get("sorted", np.zeros(1))
            self.spans.append((len(ref), float(ref[-1] - ref[0]) or 1.0))

    def _normalised(self, i: int, raw: torch.Tensor) -> torch.Tensor:
        if self.kind == "zscore":
            return (raw - getattr(self, f"m{i}_mean")) / getattr(self, f"m{i}_std")
        return _rank(raw, getattr(self, f"m{i}_sorted"), *self.spans[i])

    def forward(self, db: torch.Tensor, section: torch.Tensor) -> torch.Tensor:
        if self.combine == "max":
            scores = [self._normalised(i, head(db, section)) for i, head in enumerate(self.members)]
            return torch.stack(scores).amax(dim=0)
        total = torch.zeros_like(db[:, 0, 0], dtype=torch.float64)
        for i, head in enumerate(self.members):
            total = total + self.weights[i] * self._normalised(i, head(db, section))
        return total


def _rank(scores: torch.Tensor, ref: torch.Tensor, n: int, span: float) -> torch.Tensor:
    """:func:`asdkit.scoring.normalise.normalise` with ``rank``: ECDF midpoints, linear beyond the ends
    (``ref``: the ``n`` sorted training scores; ``span``: their range, 1 when they are all equal)."""
    ranks = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    if n == 1:
        inside = torch.full_like(scores, 0.5)
    else:
        j = torch.clamp((scores[:, None] >= ref).sum(dim=1), 1, n - 1)  # ref[j-1] <= s < ref[j]
        x0, x1, y0, y1 = ref[j - 1], ref[j], ranks[j - 1], ranks[j]
        gap = x1 - x0
        slope = torch.where(gap > 0, (y1 - y0) / torch.where(gap > 0, gap, torch.ones_like(gap)), 0.0 * gap)
        inside = y0 + (scores - x0) * slope
    below = 0.5 / n - (ref[0] - scores) / span
    above = 1 - 0.5 / n + (scores - ref[-1]) / span
    return torch.where(scores < ref[0], below, torch.where(scores > ref[-1], above, inside))


def not_exportable_reason(detector: Detector) -> str | None:
    """Why ``detector`` (with its parameters and members) has no graph; None when it has one."""
    name = detector.name
    if name in NOT_EXPORTABLE:
        return NOT_EXPORTABLE[name]
    if name not in EXPORTABLE:
        return "no ONNX graph is written for it"
    chosen_input = getattr(detector, "input", LOGMEL)
    if chosen_input != LOGMEL:
        return f"input={chosen_input}: the graph builds the log-mel front end only"
    if name in STATISTICS and TONAL in parse_stats(getattr(detector, "stats", POOLED)):
        return f"stats={detector.stats}: the graph has no clip spectrum for the tonal group"  # type: ignore[attr-defined]
    if name in STATISTICS and getattr(detector, "pooling", "mean_std") != "mean_std":
        return f"pooling={detector.pooling}: the graph pools by mean and std only"  # type: ignore[attr-defined]
    if name == "ae" and getattr(detector, "score", "mse") != "mse":
        return "score=mse only (the graph has no error covariances)"
    if name == "ensemble":
        for i, member in enumerate(getattr(detector, "members_", [])):
            reason = not_exportable_reason(member)
            if reason is not None:
                return f"member {i} ({member.name}): {reason}"
    return None


def bank_sections(detector: Detector) -> list[str]:
    """The sections of every memory bank of the detector and its members, sorted (the graph's index)."""
    if detector.name == "ensemble":
        found: set[str] = set()
        for member in detector.members_:  # type: ignore[attr-defined]
            found.update(bank_sections(member))
        return sorted(found)
    if detector.name in (*STATISTICS, "patch_bank"):
        return sorted({str(b["section"]) for b in detector.bank_layout_})  # type: ignore[attr-defined]
    return []


def build_head(detector: Detector, sections: Sequence[str]) -> nn.Module:
    """The head of ``detector``: log-mel [B, F, M] and section index [B] -> clip scores [B] (float64)."""
    reason = not_exportable_reason(detector)
    if reason is not None:
        raise ModelError(
            f"{detector.name}: cannot be exported to ONNX: {reason}; exportable: {', '.join(EXPORTABLE)}"
        )
    if detector.name in STACKED_FRAME:
        return StackedFrameHead(detector)
    if detector.name in STATISTICS:
        return StatisticsHead(detector, sections)
    if detector.name == "patch_bank":
        return PatchBankHead(detector, sections)
    return EnsembleHead(detector, sections)
