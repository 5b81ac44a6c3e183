"""MAF: a normalised density, the change-of-variables log-determinant, closed forms, batch-norm statistics."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from asdkit.models.maf import MAF, FlowBatchNorm


def _toy_2d(n: int, seed: int = 0) -> torch.Tensor:
    """A curved 2-D distribution (x2 depends non-linearly on x1)."""
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(n, generator=g)
    return torch.stack([x1, 0.5 * x1**2 - 1.0 + 0.5 * torch.randn(n, generator=g)], dim=1)


def grid_mass(log_prob, c: int | None, lim: float = 9.0, n: int = 361) -> float:
    """Riemann sum of exp(log p) over [-lim, lim]^2 (shifted by the condition's offset)."""
    axis = torch.linspace(-lim, lim, n)
    step = float(axis[1] - axis[0])
    xx, yy = torch.meshgrid(axis, axis, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    cond = None
    if c is not None:
        pts, cond = pts + c, torch.full((len(pts),), c, dtype=torch.int64)
    with torch.no_grad():
        return float(torch.exp(log_prob(pts, cond)).sum()) * step * step


def _train(model: MAF, n_conditions: int, steps: int = 150) -> None:
    torch.manual_seed(0)
    x = _toy_2d(512)
    c = torch.arange(len(x)) % n_conditions if n_conditions else None
    if c is not None:
        x = x + c[:, None].float()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for i in range(steps):
        batch = slice((i % 4) * 128, (i % 4 + 1) * 128)
        optimizer.zero_grad()
        loss = -model.log_prob(x[batch], None if c is None else c[batch]).mean()
        loss.backward()
        optimizer.step()
    model.eval()


@pytest.mark.parametrize(
    ("n_gaussians", "n_conditions", "batch_norm"), [(1, 0, True), (3, 0, True), (1, 3, True), (2, 2, False)]
)
def test_trained_2d_maf_integrates_to_one(n_gaussians, n_conditions, batch_norm):
    torch.manual_seed(1)
    model = MAF(2, 3, (32, 32), n_gaussians, n_conditions, batch_norm=batch_norm)
    _train(model, n_conditions)
    for c in range(n_conditions) if n_conditions else [None]:
        assert grid_mass(model.log_prob, c) == pytest.approx(1.0, abs=0.01)


def test_log_prob_is_base_density_plus_log_abs_det_jacobian():
    torch.manual_seed(2)
    model = MAF(4, 3, (16,), n_conditions=2)
    with torch.no_grad():  # non-trivial batch-norm running statistics and affine parameters
        for norm in model.norms:
            norm.running_mean.normal_()
            norm.running_var.uniform_(0.5, 2.0)
            norm.log_gamma.normal_(0, 0.3)
            norm.beta.normal_()
    model.eval()
    c = torch.tensor([1])
    for _ in range(3):
        x = torch.randn(1, 4, dtype=torch.float32)
        jac = torch.autograd.functional.jacobian(lambda v: model.forward_transform(v, c)[0][0], x)[:, 0, :]
        u, log_det = model.forward_transform(x, c)
        assert log_det.item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-4)
        want = scipy.stats.norm.logpdf(u.detach().numpy()).sum() + torch.linalg.slogdet(jac)[1].item()
        assert model.log_prob(x, c).item() == pytest.approx(want, abs=1e-4)


def test_one_block_with_zero_weights_is_the_closed_form_gaussian():
    model = MAF(3, 1, (8,), batch_norm=False)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        mean, log_scale = torch.tensor([1.0, -0.5, 0.0]), torch.tensor([0.3, -0.2, 0.0])
        model.blocks[0].output.bias.copy_(torch.cat([mean, log_scale]))
    x = torch.randn(10, 3)
    want = scipy.stats.norm.logpdf(x.numpy(), mean.numpy(), np.exp(log_scale.numpy())).sum(axis=1)
    np.testing.assert_allclose(model.eval().log_prob(x).detach().numpy(), want, rtol=1e-5, atol=1e-5)


def test_zero_weight_blocks_with_batch_norm_are_an_affine_gaussian():
    """Blocks with zero weights are identities, so the flow is the batch norm alone: a diagonal Gaussian."""
    model = MAF(3, 2, (8,))
    norm = model.norms[0]
    assert isinstance(norm, FlowBatchNorm)
    m, v, g, b = (
        torch.tensor([0.5, -1.0, 2.0]),
        torch.tensor([2.0, 0.5, 1.0]),
        torch.tensor([0.1, -0.3, 0.0]),
        torch.tensor([0.2, 0.0, -0.4]),
    )
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        norm.running_mean.copy_(m)
        norm.running_var.copy_(v)
        norm.log_gamma.copy_(g)
        norm.beta.copy_(b)
    model.eval()
    # y = (x - m) / s * exp(g) + b ~ N(0, 1)  <=>  x ~ N(m - b s exp(-g), (s exp(-g))^2), s = sqrt(v + eps)
    s = torch.sqrt(v + norm.eps) * torch.exp(-g)
    x = torch.randn(10, 3)
    want = scipy.stats.norm.logpdf(x.numpy(), (m - b * s).numpy(), s.numpy()).sum(axis=1)
    np.testing.assert_allclose(model.log_prob(x).detach().numpy(), want, rtol=1e-5, atol=1e-5)


def test_training_batch_norm_takes_statistics_from_the_first_rows_only():
    norm = FlowBatchNorm(2).train()
    x = torch.randn(16, 2)
    alone, ld_alone = norm(x, stat_rows=16)
    norm.running_mean.zero_()
    norm.running_var.fill_(1.0)
    with_extra, ld_extra = norm(torch.cat([x, 50 + torch.randn(8, 2)]), stat_rows=16)
    torch.testing.assert_close(with_extra[:16], alone)
    torch.testing.assert_close(ld_extra[:16], ld_alone)
    torch.testing.assert_close(norm.running_mean, 0.1 * x.mean(dim=0))
    torch.testing.assert_close(alone.mean(dim=0), torch.zeros(2), atol=1e-5, rtol=0)


def test_reversal_between_blocks_makes_every_input_reach_every_output():
    """One MADE is triangular; two with a reversal between them are not (each output sees other inputs)."""
    torch.manual_seed(4)
    model = MAF(4, 2, (32, 32)).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_()
    x = torch.randn(1, 4)
    jac = torch.autograd.functional.jacobian(lambda v: model.forward_transform(v)[0][0], x)[:, 0, :]
    single = torch.autograd.functional.jacobian(lambda v: model.blocks[0].params(v)[1][0, 0], x)[:, 0, :]
    assert torch.all(torch.triu(single) == 0)  # shift of dim d from x_<d only
    assert int((jac.abs() > 1e-8).sum()) > 4 * 5 // 2  # more than a triangle
