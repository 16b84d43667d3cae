"""Bounds against a model with a closed-form marginal likelihood: a linear-Gaussian VAE
(one step): z ~ N(0, 1), x | z ~ N(a z + b, s^2) per dimension, so p(x) = N(x; b, a^2 + s^2)."""

import math

import torch
from torch.distributions import Normal

from avrnn.models.bounds import elbo_bound, fivo_bound, iwae_bound

A, B_, S = 1.5, 0.3, 0.5


def exact_log_px(x: torch.Tensor) -> torch.Tensor:
    return Normal(B_, math.sqrt(A**2 + S**2)).log_prob(x).sum(-1)


def proposal(x):
    """A deliberately imperfect q(z | x) (the exact posterior would make every bound tight)."""
    return Normal(0.8 * (x - B_) / A, torch.full_like(x, 0.9))


def step(x_t, state):
    q = proposal(x_t)
    z = q.sample()
    log_alpha = Normal(A * z + B_, S).log_prob(x_t) + Normal(0.0, 1.0).log_prob(z) - q.log_prob(z)
    return log_alpha.sum(-1), state


def log_weights(x, n):
    """(n, B) log weights of n independent samples for each row of x."""
    return step(x.expand(n, *x.shape), None)[0]


def iwae_mean_and_se(x, k, samples=64_000):
    """Mean and standard error of the IWAE-k estimator over samples / k independent draws."""
    draws = iwae_bound(log_weights(x, samples).view(k, samples // k, -1))  # (draws, B)
    return draws.mean(0), draws.std(0) / math.sqrt(draws.shape[0])


def test_elbo_below_iwae_below_log_px_and_iwae_rises_with_k():
    torch.manual_seed(0)
    x = torch.tensor([[0.7], [-1.2], [2.5]])
    exact = exact_log_px(x)
    elbo = elbo_bound(log_weights(x, 64_000))
    assert ((exact - elbo) > 0.1).all()  # the proposal is imperfect: the ELBO is visibly loose
    previous, previous_se = elbo, torch.zeros(3)
    for k in (1, 4, 16, 64, 256):
        iwae, se = iwae_mean_and_se(x, k)
        tolerance = 4 * torch.sqrt(se**2 + previous_se**2)
        assert (iwae >= previous - tolerance).all(), k  # E[IWAE-k] rises with k ...
        assert (iwae <= exact + 4 * se).all(), k  # ... and stays below log p(x)
        previous, previous_se = iwae, se
    assert ((exact - previous) < 0.1 * (exact - elbo)).all()  # IWAE-256 closes 90% of the ELBO's gap


def test_fivo_with_one_step_equals_iwae_on_the_same_samples():
    x = torch.tensor([[0.7, 0.1], [-1.2, 2.0]])[:, None, :]  # (B=2, T=1, F=2)
    mask = torch.ones(2, 1)
    k = 16
    torch.manual_seed(3)
    fivo = fivo_bound(step, torch.zeros(2 * k, 1), x, mask, k, resample_threshold=1.0)
    torch.manual_seed(3)
    alpha, _ = step(x[:, 0].repeat_interleave(k, 0), None)
    iwae = iwae_bound(alpha.view(2, k).T)
    torch.testing.assert_close(fivo, iwae)


def test_fivo_is_a_bound_whose_mean_is_the_sum_of_per_step_iwae():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 2)
    mask = torch.ones(3, 5)
    k = 32
    runs = torch.stack([fivo_bound(step, torch.zeros(3 * k, 1), x, mask, k, resample_threshold=1.0)
                        for _ in range(300)])
    # The steps of this model are independent, so log p(x) is a sum over steps and FIVO resampling
    # at every step is a sum of per-step IWAE-k estimates: compare the expectations.
    exact = exact_log_px(x).sum(1)
    per_step = [iwae_mean_and_se(x[:, t], k, samples=k * 300) for t in range(5)]
    expected = sum(mean for mean, _ in per_step)
    se = torch.sqrt(sum(s**2 for _, s in per_step) + runs.var(0) / runs.shape[0])
    assert (runs.mean(0) <= exact).all()
    assert (abs(runs.mean(0) - expected) < 4 * se).all()


def test_fivo_ignores_padding():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 2)
    mask = torch.ones(3, 5)
    k = 32
    padded = torch.cat([x, 100 * torch.randn(3, 4, 2)], 1)
    padded_mask = torch.cat([mask, torch.zeros(3, 4)], 1)
    torch.manual_seed(5)
    short = fivo_bound(step, torch.zeros(3 * k, 1), x, mask, k)
    torch.manual_seed(5)
    long = fivo_bound(step, torch.zeros(3 * k, 1), padded, padded_mask, k)
    torch.testing.assert_close(short, long)


def test_vrnn_bounds_agree_with_each_other_and_with_its_elbo():
    from avrnn.models import VRNN
    from avrnn.models.bounds import sequence_log_weights, vrnn_fivo

    torch.manual_seed(0)
    model = VRNN(input_size=4, z_dim=2, hidden_size=6, x_features=4, z_features=4, mlp_hidden=6).double()
    x, mask = torch.randn(2, 3, 4, dtype=torch.double), torch.ones(2, 3, dtype=torch.double)
    mask[1, 2] = 0
    with torch.no_grad():
        weights = sequence_log_weights(model, x, mask, 4000)
        out = model(x, mask)
        # the ELBO from the log weights matches rec - KL of the forward pass (analytic KL vs its MC estimate)
        analytic = (out.rec_log_lik - out.kl.sum(-1)).sum(1)
        assert torch.allclose(elbo_bound(weights), analytic, atol=0.5)
        # 200 independent IWAE-16 estimates and 2000 FIVO-1 estimates, each drawn in one batched pass
        iwae = iwae_bound(sequence_log_weights(model, x, mask, 16 * 200).reshape(16, 200 * 2)).reshape(200, 2).mean(0)
        fivo_k1 = vrnn_fivo(model, x.repeat(2000, 1, 1), mask.repeat(2000, 1), 1).reshape(2000, 2).mean(0)
    assert (iwae > elbo_bound(weights)).all()
    assert torch.allclose(fivo_k1, elbo_bound(weights), atol=0.3)  # FIVO-1 is the ELBO
