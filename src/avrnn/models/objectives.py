"""Critic objectives: what the critic D_eta is trained to minimise, what TR and PS minimise in the
adversarial phase, which distance the critic's scores estimate, and what runs after a critic step.

Each objective is a small class behind one interface, chosen by `critic.objective._target_`
(conf/critic/*.yaml); a new one is a class here (or in the user's own package) and a YAML file.
Sign convention of Algorithm 2: the critic minimises L_dis = mean D(z_prior) - mean D(z_post).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from avrnn.models import losses

# What the critic reads: a latent sequence z (B, T, Z) and the states h_{t-1} (B, T, H) it was drawn at;
# `score(z, h)` -> one critic score per sequence (B,).
Sample = tuple[torch.Tensor, torch.Tensor]
Scores = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class CriticObjective:
    """The interface; `distance_name` names the estimate in the logs (train/<name>, val/<name>, and
    evaluation's test/<name>), `distance_unit` says what its number is in (evaluation prints it beside it)."""

    distance_name = "wasserstein"
    distance_unit = "in the critic's own scale: compare runs of one critic setting only"

    def critic_loss(self, score: Scores, prior: Sample, post: Sample, mask: torch.Tensor
                    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The critic phase's loss on detached latents, and the terms to log (detached): the loss
        itself, any penalty, and the distance estimated from the scores before this step."""
        d_prior, d_post = score(*prior), score(*post)
        loss = self.loss(d_prior, d_post)
        terms = {"critic_loss": loss.detach()}
        loss = self.add_penalties(loss, terms, score, prior, post, mask)
        terms[self.distance_name] = self.distance(d_prior.detach(), d_post.detach())
        return loss, terms

    def loss(self, d_prior: torch.Tensor, d_post: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def add_penalties(self, loss, terms, score: Scores, prior: Sample, post: Sample, mask) -> torch.Tensor:
        """loss plus any regulariser of the critic; each one also goes into `terms` (detached)."""
        return loss

    def adversarial_loss(self, d_prior: torch.Tensor, d_post: torch.Tensor) -> torch.Tensor:
        """What TR (omega) and PS (tau) minimise in the adversarial phase."""
        raise NotImplementedError

    def distance(self, d_prior: torch.Tensor, d_post: torch.Tensor) -> torch.Tensor:
        """The divergence between the latent laws that the scores estimate."""
        raise NotImplementedError

    def after_critic_step(self, critic: nn.Module) -> None:
        """Runs right after every critic optimizer step (e.g. WGAN weight clipping)."""


class Wasserstein(CriticObjective):
    """WGAN (Arjovsky et al. 2017), the paper's critic: L_dis, and its negative, -L_dis = the
    Wasserstein-1 estimate, for TR and PS. clip_value: weights clamped to [-c, c] after each step
    (None: no clipping; then something else must keep the critic Lipschitz)."""

    def __init__(self, clip_value: float | None = 0.1):
        self.clip_value = clip_value

    def loss(self, d_prior, d_post):
        return losses.wgan_critic_loss(d_prior, d_post)

    def adversarial_loss(self, d_prior, d_post):
        return losses.wgan_adversarial_loss(d_prior, d_post)

    def distance(self, d_prior, d_post):
        return losses.wgan_adversarial_loss(d_prior, d_post)

    @torch.no_grad()
    def after_critic_step(self, critic: nn.Module) -> None:
        if self.clip_value is not None:  # every critic parameter clamped to [-c, c]
            for parameter in critic.parameters():
                parameter.clamp_(-self.clip_value, self.clip_value)


class WassersteinGradientPenalty(Wasserstein):
    """WGAN-GP (Gulrajani et al. 2017): no clipping; gp_weight * (||grad D|| - 1)^2 on interpolates."""

    def __init__(self, gp_weight: float = 10.0):
        super().__init__(clip_value=None)
        self.gp_weight = gp_weight

    def add_penalties(self, loss, terms, score, prior, post, mask):
        penalty = losses.gradient_penalty(score, prior, post, mask)
        terms["gradient_penalty"] = penalty.detach()
        return loss + self.gp_weight * penalty


class JensenShannon(CriticObjective):
    """The original GAN's classifier (as in adversarial autoencoders): D outputs a logit, 1 = prior
    sample; TR and PS take the non-saturating step with flipped labels; the distance is the JS
    divergence implied by the classifier's loss."""

    distance_name = "js_divergence"
    distance_unit = "nats"

    def loss(self, d_prior, d_post):
        return losses.gan_critic_loss(d_prior, d_post)

    def adversarial_loss(self, d_prior, d_post):
        return losses.gan_adversarial_loss(d_prior, d_post)

    def distance(self, d_prior, d_post):
        return losses.gan_js_estimate(losses.gan_critic_loss(d_prior, d_post))
