import math

import pytest
import torch
from torch.distributions import Normal

from avrnn.models import losses


def test_gaussian_kl_matches_torch_distributions_and_monte_carlo():
    torch.manual_seed(0)
    q = Normal(torch.randn(3, 5), torch.rand(3, 5) + 0.2)
    p = Normal(torch.randn(3, 5), torch.rand(3, 5) + 0.2)
    kl = losses.gaussian_kl(q, p)
    # closed form of KL between diagonal Gaussians, written out independently
    closed = torch.log(p.scale / q.scale) + (q.scale**2 + (q.loc - p.loc) ** 2) / (2 * p.scale**2) - 0.5
    torch.testing.assert_close(kl, closed)
    z = q.sample((200_000,))
    monte_carlo = (q.log_prob(z) - p.log_prob(z)).mean(0)
    torch.testing.assert_close(kl, monte_carlo, atol=0.03, rtol=0.02)
    assert (kl >= 0).all()


def test_per_timestep_is_a_ratio_of_sums_that_ignores_padding():
    per_step = torch.tensor([[1.0, 2.0, 3.0], [4.0, 100.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert losses.per_timestep(per_step, mask).item() == pytest.approx((1 + 2 + 3 + 4) / 4)
    # trailing dimensions (e.g. latent dims) are summed before the reduction
    assert losses.per_timestep(per_step[..., None].expand(2, 3, 2), mask).item() == pytest.approx(5.0)


def test_free_bits_raises_small_kl_dimensions_only():
    kl = torch.zeros(2, 3, 4)
    kl[..., 0] = 2.0  # one active dimension, three collapsed ones
    mask = torch.ones(2, 3)
    # floor of 1 nat/timestep spread over 4 dims = 0.25 each: 2.0 + 3 * 0.25
    assert losses.free_bits_kl(kl, mask, free_bits=1.0).item() == pytest.approx(2.75)
    assert losses.free_bits_kl(kl, mask, free_bits=0.0).item() == pytest.approx(2.0)


def test_adversarial_loss_signs_follow_algorithm_2():
    d_prior, d_post = torch.tensor([0.0, 0.0]), torch.tensor([1.0, 1.0])
    # critic minimises mean D(prior) - mean D(post); the adversarial step minimises its negative
    assert losses.wgan_critic_loss(d_prior, d_post).item() == -1.0
    assert losses.wgan_adversarial_loss(d_prior, d_post).item() == 1.0
    # a GAN critic that is right (prior logit high, posterior low) has a small loss and a JS near log 2
    good = losses.gan_critic_loss(torch.tensor([9.0]), torch.tensor([-9.0]))
    bad = losses.gan_critic_loss(torch.tensor([-9.0]), torch.tensor([9.0]))
    assert good < 0.01 < 10 < bad
    assert losses.gan_js_estimate(good).item() == pytest.approx(math.log(2), abs=0.01)
    assert losses.gan_adversarial_loss(torch.tensor([9.0]), torch.tensor([-9.0])) > 10
