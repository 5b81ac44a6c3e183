"""Masked autoregressive flow (Papamakarios et al. 2017): a stack of MADE transforms for exact densities.

Each block maps x to u = (x - mu(x_<d, c)) * exp(-alpha(x_<d, c)) in one pass (its Jacobian is triangular,
log|det| = -sum alpha). Between blocks the dimensions are reversed, so every dimension is modelled
conditionally on the others somewhere in the stack, and a batch norm (the flow version: an invertible
affine map with its own log-determinant) keeps the intermediate values in range. The base density is a
standard normal or, with ``n_gaussians > 1``, a conditional MADE-MoG (MAF MoG in the paper).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from asdkit.models.made import LOG_2PI, MADE, Degrees


class FlowBatchNorm(nn.Module):
    """Batch norm as an invertible layer: y = (x - m) / sqrt(v + eps) * exp(log_gamma) + beta.

    Training uses the batch's statistics (of its first ``stat_rows`` rows only, so that proxy samples
    appended to a batch do not shift them); evaluation uses the running averages, which makes the
    density a fixed function and hence normalised.
    """

    running_mean: torch.Tensor
    running_var: torch.Tensor

    def __init__(self, n_features: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.log_gamma = nn.Parameter(torch.zeros(n_features))
        self.beta = nn.Parameter(torch.zeros(n_features))
        self.register_buffer("running_mean", torch.zeros(n_features))
        self.register_buffer("running_var", torch.ones(n_features))

    def forward(self, x: torch.Tensor, stat_rows: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training:
            rows = x if stat_rows is None else x[:stat_rows]
            mean, var = rows.mean(dim=0), rows.var(dim=0, unbiased=False)
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var, self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        y = (x - mean) * torch.rsqrt(var + self.eps) * torch.exp(self.log_gamma) + self.beta
        log_det = (self.log_gamma - 0.5 * torch.log(var + self.eps)).sum()
        return y, log_det.expand(x.shape[0])


class MAF(nn.Module):
    """``n_blocks`` conditional MADE transforms with reversals and batch norms between them.

    ``log_prob(x, c)`` is log p(x | c) = log p_base(u | c) + sum of the layers' log|det|.
    """

    def __init__(
        self,
        n_features: int,
        n_blocks: int = 4,
        hidden: Sequence[int] = (512, 512),
        n_gaussians: int = 1,
        n_conditions: int = 0,
        batch_norm: bool = True,
        degrees: Degrees = "random",
        mask_seed: int = 0,
    ) -> None:
        super().__init__()
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
        self.n_features = n_features
        self.n_conditions = n_conditions
        self.blocks = nn.ModuleList(
            MADE(n_features, hidden, 1, n_conditions, degrees=degrees, mask_seed=mask_seed + i)
            for i in range(n_blocks)
        )
        self.norms = nn.ModuleList(
            FlowBatchNorm(n_features) if batch_norm else nn.Identity() for _ in range(n_blocks - 1)
        )
        self.base: MADE | None = None
        if n_gaussians > 1:
            self.base = MADE(
                n_features, hidden, n_gaussians, n_conditions, degrees=degrees, mask_seed=mask_seed + n_blocks
            )

    def forward_transform(
        self, x: torch.Tensor, c: torch.Tensor | None = None, stat_rows: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x -> (u, sum of log|det|) through every block, [B, D] and [B]."""
        log_det = x.new_zeros(x.shape[0])
        for i, block in enumerate(self.blocks):
            _, shift, log_scale = block.params(x, c)
            x = (x - shift[:, 0]) * torch.exp(-log_scale[:, 0])
            log_det = log_det - log_scale[:, 0].sum(dim=1)
            if i < len(self.norms):
                norm = self.norms[i]
                if isinstance(norm, FlowBatchNorm):
                    x, ld = norm(x, stat_rows)
                    log_det = log_det + ld
                x = x.flip(dims=(1,))
        return x, log_det

    def log_prob(
        self, x: torch.Tensor, c: torch.Tensor | None = None, stat_rows: int | None = None
    ) -> torch.Tensor:
        """log p(x | c) in nats, [B]."""
        u, log_det = self.forward_transform(x, c, stat_rows)
        if self.base is not None:
            return self.base.log_prob(u, c) + log_det
        return -0.5 * (u**2).sum(dim=1) - 0.5 * self.n_features * LOG_2PI + log_det


__all__ = ["MAF", "FlowBatchNorm"]
