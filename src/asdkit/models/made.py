"""MADE (Germain et al. 2015): an autoregressive density p(x | c) = prod_d p(x_d | x_<d, c) in one pass.

Hidden units get *degrees*; masks let a unit of degree k see only inputs of degree <= k, and output d see only
hidden units of degree < d, so output d depends on the inputs that come before d in the order and on nothing
after. Each conditional is a Gaussian or a mixture of ``n_gaussians`` Gaussians (MADE-MoG, Papamakarios et al.
2017). The condition (a section id) enters every hidden layer and the output layer through an embedding
(the same as a one-hot vector times a weight matrix) that is *not* masked: every conditional may depend on it,
which keeps the model autoregressive in x and lets one network serve all sections of a machine type.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

LOG_2PI = math.log(2.0 * math.pi)
#: Log-scales are clamped to this range: a collapsing variance cannot run off to -inf (any function of
#: x_<d keeps the density normalised, so the clamp costs nothing in correctness).
LOG_SCALE_RANGE = (-7.0, 7.0)

Degrees = Literal["random", "sequential"]


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (a buffer, so it is saved)."""

    mask: torch.Tensor

    def __init__(self, n_in: int, n_out: int, mask: torch.Tensor) -> None:
        super().__init__(n_in, n_out)
        if mask.shape != (n_out, n_in):
            raise ValueError(f"mask shape {tuple(mask.shape)} != ({n_out}, {n_in})")
        self.register_buffer("mask", mask.to(torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def input_degrees(order: Sequence[int]) -> np.ndarray:
    """Degrees 1..D of the inputs from an autoregressive order (``order[0]`` is modelled first)."""
    order = np.asarray(order, dtype=np.int64)
    if sorted(order.tolist()) != list(range(len(order))):
        raise ValueError(f"order must be a permutation of 0..{len(order) - 1}")
    degrees = np.empty(len(order), dtype=np.int64)
    degrees[order] = np.arange(1, len(order) + 1)
    return degrees


def hidden_degrees(
    n_features: int, sizes: Sequence[int], mode: Degrees, rng: np.random.Generator
) -> list[np.ndarray]:
    """Degrees in 1..D-1 of each hidden layer's units; each layer starts at the previous layer's minimum.

    ``random`` samples them (the MADE paper); ``sequential`` cycles through 1..D-1 (the MAF paper's choice).
    """
    out: list[np.ndarray] = []
    low = 1
    for size in sizes:
        if mode == "random":
            degrees = rng.integers(low, n_features, size=size)
        elif mode == "sequential":
            degrees = np.arange(size) % max(n_features - 1, 1) + 1
            degrees = np.maximum(degrees, low)
        else:
            raise ValueError(f"degrees must be 'random' or 'sequential', got {mode!r}")
        out.append(degrees.astype(np.int64))
        low = int(degrees.min())
    return out


class MADE(nn.Module):
    """Masked autoencoder for distribution estimation, optionally conditioned on ``n_conditions`` classes.

    ``params(x, c)`` gives, per dimension d and component k, a mixture log-weight, a mean and a log-scale
    that depend only on x_<d (in ``order``) and c; ``log_prob(x, c)`` is the exact log-density (nats).
    With ``n_gaussians=1`` the same outputs serve as the (shift, log-scale) of a MAF transform.
    """

    def __init__(
        self,
        n_features: int,
        hidden: Sequence[int] = (512, 512),
        n_gaussians: int = 1,
        n_conditions: int = 0,
        order: Sequence[int] | None = None,
        degrees: Degrees = "random",
        mask_seed: int = 0,
    ) -> None:
        super().__init__()
        if n_features < 2:
            raise ValueError(f"MADE needs at least 2 features, got {n_features}")
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden: give at least one positive layer size, got {list(hidden)}")
        if n_gaussians < 1:
            raise ValueError(f"n_gaussians must be >= 1, got {n_gaussians}")
        self.n_features = n_features
        self.n_gaussians = n_gaussians
        self.n_conditions = n_conditions
        order = list(range(n_features)) if order is None else list(order)
        if len(order) != n_features:
            raise ValueError(f"order has {len(order)} entries for {n_features} features")
        d_in = input_degrees(order)
        d_hidden = hidden_degrees(n_features, hidden, degrees, np.random.default_rng(mask_seed))
        self.register_buffer("degrees_in", torch.from_numpy(d_in))

        layers: list[MaskedLinear] = []
        previous, n_prev = d_in, n_features
        for d_h in d_hidden:
            mask = torch.from_numpy((d_h[:, None] >= previous[None, :]).astype(np.float32))
            layers.append(MaskedLinear(n_prev, len(d_h), mask))
            previous, n_prev = d_h, len(d_h)
        self.hidden = nn.ModuleList(layers)
        # outputs: [P, K, D] flattened (P = mean, log-scale (, logit)); a unit of dimension d has d's degree
        n_out = (2 + (n_gaussians > 1)) * n_gaussians * n_features
        d_out = np.tile(d_in, n_out // n_features)
        mask = torch.from_numpy((d_out[:, None] > previous[None, :]).astype(np.float32))
        self.output = MaskedLinear(n_prev, n_out, mask)
        if n_conditions > 0:
            self.cond_hidden = nn.ModuleList(nn.Embedding(n_conditions, len(d)) for d in d_hidden)
            self.cond_output = nn.Embedding(n_conditions, n_out)
            for emb in [*self.cond_hidden, self.cond_output]:
                nn.init.normal_(emb.weight, std=0.01)

    def _check_condition(self, x: torch.Tensor, c: torch.Tensor | None) -> None:
        if self.n_conditions > 0 and c is None:
            raise ValueError("this MADE is conditional: pass the condition ids")
        if c is not None and self.n_conditions == 0:
            raise ValueError("this MADE is unconditional: it takes no condition")
        if c is not None and c.shape != x.shape[:1]:
            raise ValueError(f"one condition per row: got {tuple(c.shape)} for {tuple(x.shape)}")

    def raw(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Unconstrained outputs [B, n_out]: output unit j of dimension d sees only x_<d (and c)."""
        self._check_condition(x, c)
        h = x
        for i, layer in enumerate(self.hidden):
            h = layer(h)
            if c is not None:
                h = h + self.cond_hidden[i](c)
            h = torch.relu(h)
        out = self.output(h)
        if c is not None:
            out = out + self.cond_output(c)
        return out

    def params(
        self, x: torch.Tensor, c: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log mixture weights, means, log-scales), each [B, K, D]; log-weights are 0 when K = 1."""
        batch, k, d = x.shape[0], self.n_gaussians, self.n_features
        out = self.raw(x, c).view(batch, -1, k, d)
        mean, log_scale = out[:, 0], out[:, 1].clamp(*LOG_SCALE_RANGE)
        if k == 1:
            return torch.zeros_like(mean), mean, log_scale
        return F.log_softmax(out[:, 2], dim=1), mean, log_scale

    def log_prob_per_dim(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x_d | x_<d, c) for every d, [B, D]."""
        log_w, mean, log_scale = self.params(x, c)
        z = (x[:, None, :] - mean) * torch.exp(-log_scale)
        log_n = -0.5 * (z**2 + LOG_2PI) - log_scale
        return torch.logsumexp(log_w + log_n, dim=1)

    def log_prob(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x | c) in nats, [B]."""
        return self.log_prob_per_dim(x, c).sum(dim=1)
