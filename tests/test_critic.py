"""The project's sequence critic estimates known distances between Gaussians (T = 1); the
estimates are statistical checks of 600 critic steps each (`make test-slow`).

Prior N(0, I) and posterior N(shift * e_1, I) in 2-D: W1 = shift. (In 1-D a gradient-penalty
critic initialised with the wrong slope sign sits in a local minimum: flipping the sign of a
scalar gradient must pass through |grad| = 0, where the penalty is 10. In 2-D it can rotate.)
"""

import pytest
import torch

from avrnn.models import SequenceCritic
from avrnn.models.critic import ConditionalCritic
from avrnn.models.objectives import Wasserstein, WassersteinGradientPenalty


def train_critic(shift: float, kind: str, steps: int = 600, batch: int = 512, z_dim: int = 2) -> float:
    """Train a critic to separate prior from posterior; return its estimate on fresh samples."""
    torch.manual_seed(0)
    offset = torch.zeros(1, 1, z_dim)
    offset[..., 0] = shift
    critic = SequenceCritic(z_dim=z_dim, lstm_size=16, fc_size=16)
    mask = torch.ones(batch, 1)
    if kind == "wgan":
        objective = Wasserstein(clip_value=0.01)
        optimizer = torch.optim.RMSprop(critic.parameters(), lr=5e-4)
    else:
        objective = WassersteinGradientPenalty(gp_weight=10.0)
        optimizer = torch.optim.Adam(critic.parameters(), lr=1e-3, betas=(0.5, 0.9))
    for _ in range(steps):
        z_prior, z_post = torch.randn(batch, 1, z_dim), torch.randn(batch, 1, z_dim) + offset
        no_h = torch.zeros(batch, 1, 0)  # the sequence critic reads z only
        loss, _ = objective.critic_loss(lambda z, h: critic(z, mask, h), (z_prior, no_h), (z_post, no_h), mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        objective.after_critic_step(critic)
    with torch.no_grad():
        z_prior, z_post = torch.randn(20_000, 1, z_dim), torch.randn(20_000, 1, z_dim) + offset
        mask = torch.ones(20_000, 1)
        return objective.distance(critic(z_prior, mask), critic(z_post, mask)).item()


@pytest.mark.slow
def test_gradient_penalty_critic_estimates_the_wasserstein_distance():
    for shift in (0.5, 1.0, 2.0):
        assert train_critic(shift, "wgan_gp") == pytest.approx(shift, rel=0.25)


@pytest.mark.slow
def test_clipped_critic_estimate_grows_with_the_distance():
    # A clipped critic is K-Lipschitz for an unknown K: only ordering is meaningful.
    estimates = [train_critic(shift, "wgan") for shift in (0.0, 0.5, 1.0, 2.0)]
    assert abs(estimates[0]) < 0.2 * estimates[1]
    assert estimates[0] < estimates[1] < estimates[2] < estimates[3]


@pytest.mark.parametrize("critic", [SequenceCritic(z_dim=3), ConditionalCritic(z_dim=3, h_dim=4)])
def test_clip_weights_bounds_every_parameter(critic):
    """The WGAN objective's step hook clamps every critic parameter, whatever the network."""
    with torch.no_grad():
        for parameter in critic.parameters():
            parameter.normal_(0, 1)
    Wasserstein(clip_value=0.05).after_critic_step(critic)
    assert all(p.abs().max() <= 0.05 for p in critic.parameters())
    assert any((p.abs() == 0.05).any() for p in critic.parameters())
