"""MADE: a normalised density, autoregressive masks, closed-form Gaussians with zero weights, conditioning."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from scipy.special import logsumexp

from asdkit.models.made import MADE, hidden_degrees, input_degrees


def _toy_2d(n: int, seed: int = 0) -> torch.Tensor:
    """A curved 2-D distribution (x2 depends non-linearly on x1), so the model has something to learn."""
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(n, generator=g)
    x2 = 0.5 * x1**2 - 1.0 + 0.5 * torch.randn(n, generator=g)
    return torch.stack([x1, x2], dim=1)


def _train(model: torch.nn.Module, n_conditions: int, steps: int = 150) -> None:
    torch.manual_seed(0)
    x = _toy_2d(512)
    c = torch.arange(len(x)) % n_conditions if n_conditions else None
    if c is not None:
        x = x + c[:, None].float()  # each condition its own shifted copy
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = -model.log_prob(x, c).mean()
        loss.backward()
        optimizer.step()
    model.eval()


def grid_mass(log_prob, c: int | None, lim: float = 9.0, n: int = 361) -> float:
    """Riemann sum of exp(log p) over [-lim, lim]^2 (shifted by the condition's offset)."""
    axis = torch.linspace(-lim, lim, n, dtype=torch.float32)
    step = float(axis[1] - axis[0])
    xx, yy = torch.meshgrid(axis, axis, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    cond = None
    if c is not None:
        pts = pts + c
        cond = torch.full((len(pts),), c, dtype=torch.int64)
    with torch.no_grad():
        return float(torch.exp(log_prob(pts, cond)).sum()) * step * step


@pytest.mark.parametrize(("n_gaussians", "n_conditions"), [(1, 0), (3, 0), (1, 3), (4, 2)])
def test_trained_2d_made_integrates_to_one(n_gaussians, n_conditions):
    torch.manual_seed(1)
    model = MADE(2, (32, 32), n_gaussians=n_gaussians, n_conditions=n_conditions)
    _train(model, n_conditions)
    for c in range(n_conditions) if n_conditions else [None]:
        assert grid_mass(model.log_prob, c) == pytest.approx(1.0, abs=0.01)


def test_untrained_made_integrates_to_one():
    torch.manual_seed(3)
    model = MADE(2, (16,), n_gaussians=2, n_conditions=2).eval()
    for c in (0, 1):
        assert grid_mass(model.log_prob, c) == pytest.approx(1.0, abs=0.01)


def _zero_weights(model: MADE) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()


def test_zero_weights_give_the_closed_form_gaussian():
    model = MADE(3, (8, 8), n_gaussians=1, n_conditions=2)
    _zero_weights(model)
    mean, log_scale = np.array([0.5, -1.0, 2.0]), np.array([0.0, 0.7, -0.4])
    with torch.no_grad():
        model.output.bias.copy_(torch.tensor(np.concatenate([mean, log_scale]), dtype=torch.float32))
    x = torch.randn(20, 3)
    got = model.log_prob(x, torch.zeros(20, dtype=torch.int64)).detach().numpy()
    want = scipy.stats.norm.logpdf(x.numpy(), mean, np.exp(log_scale)).sum(axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_zero_weights_give_the_closed_form_mixture():
    k, d = 3, 2
    model = MADE(d, (8,), n_gaussians=k)
    _zero_weights(model)
    rng = np.random.default_rng(0)
    mean, log_scale, logits = (
        rng.normal(size=(k, d)),
        rng.normal(0, 0.3, size=(k, d)),
        rng.normal(size=(k, d)),
    )
    with torch.no_grad():
        model.output.bias.copy_(torch.tensor(np.concatenate([mean, log_scale, logits]).reshape(-1)))
    x = torch.randn(15, d, dtype=torch.float32)
    got = model.log_prob(x).detach().numpy()
    log_w = logits - logsumexp(logits, axis=0, keepdims=True)
    per = log_w[None] + scipy.stats.norm.logpdf(x.numpy()[:, None, :], mean[None], np.exp(log_scale)[None])
    want = logsumexp(per, axis=1).sum(axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_condition_embeddings_shift_the_closed_form_mean():
    """With zero weights, condition c adds its output embedding to the means: the condition is not masked."""
    model = MADE(2, (4,), n_conditions=2)
    _zero_weights(model)
    with torch.no_grad():
        model.cond_output.weight[1, :2] = torch.tensor([1.0, -2.0])  # means of dims 0 and 1 under c=1
    x = torch.tensor([[1.0, -2.0]])
    at_mode = model.log_prob(x, torch.tensor([1])).item()
    assert at_mode == pytest.approx(2 * scipy.stats.norm.logpdf(0.0), abs=1e-6)
    assert model.log_prob(x, torch.tensor([0])).item() < at_mode


@pytest.mark.parametrize(
    ("n_features", "hidden", "degrees", "order_kind", "seed"),
    [
        (5, (7,), "random", "natural", 0),
        (6, (13, 9), "random", "random", 1),
        (6, (4, 4, 4), "random", "reverse", 2),
        (8, (20, 16), "sequential", "random", 3),
        (4, (3,), "sequential", "natural", 4),
        (7, (32, 32), "random", "random", 5),
    ],
)
def test_output_d_never_depends_on_inputs_at_or_after_d(n_features, hidden, degrees, order_kind, seed):
    rng = np.random.default_rng(seed)
    order = {
        "natural": np.arange(n_features),
        "reverse": np.arange(n_features)[::-1],
        "random": rng.permutation(n_features),
    }[order_kind]
    for k, n_cond in ((1, 0), (3, 2)):
        torch.manual_seed(seed)
        model = MADE(n_features, hidden, k, n_cond, order=order.tolist(), degrees=degrees, mask_seed=seed)
        with torch.no_grad():  # larger weights so that every unmasked path is clearly non-zero
            for p in model.parameters():
                p.normal_()
        x = torch.randn(1, n_features, dtype=torch.float32)
        c = torch.tensor([1]) if n_cond else None
        jac = torch.autograd.functional.jacobian(lambda v, m=model, c=c: m.raw(v, c)[0], x)[:, 0, :]
        deg = input_degrees(order)
        out_deg = np.tile(deg, jac.shape[0] // n_features)
        forbidden = out_deg[:, None] <= deg[None, :]
        assert torch.all(jac[torch.from_numpy(forbidden)] == 0)
        assert torch.any(jac != 0)


def test_gradient_of_the_log_density_respects_the_order():
    """d log p(x_d | x_<d) / d x_j = 0 for j after d in the order (the per-dimension conditionals)."""
    order = [2, 0, 3, 1]
    model = MADE(4, (16, 16), n_gaussians=2, order=order, mask_seed=7)
    x = torch.randn(1, 4)
    jac = torch.autograd.functional.jacobian(lambda v: model.log_prob_per_dim(v)[0], x)[:, 0, :]
    deg = input_degrees(order)
    later = deg[None, :] > deg[:, None]
    assert torch.all(jac[torch.from_numpy(later)] == 0)


def test_degrees_and_orders_are_validated():
    assert input_degrees([2, 0, 1]).tolist() == [2, 3, 1]
    with pytest.raises(ValueError, match="permutation"):
        input_degrees([0, 0, 1])
    layers = hidden_degrees(6, (10, 10), "random", np.random.default_rng(0))
    assert all(d.min() >= 1 and d.max() <= 5 for d in layers)
    assert layers[1].min() >= layers[0].min()
    with pytest.raises(ValueError, match="at least 2"):
        MADE(1)
    with pytest.raises(ValueError, match="conditional"):
        MADE(3, (4,), n_conditions=2).log_prob(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="unconditional"):
        MADE(3, (4,)).log_prob(torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64))
