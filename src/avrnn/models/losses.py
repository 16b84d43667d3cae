"""Pure loss and reduction functions. One definition of each quantity for the whole project.

Units: every `*_per_timestep` value is nats per frame, a ratio of sums (total over all unmasked
frames of the batch / number of unmasked frames), as FIVO and SRNN report TIMIT results.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def masked_total(per_step: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of a (B, T[, ...]) per-step term over all unmasked steps (trailing dims summed too)."""
    per_step = per_step.reshape(*mask.shape, -1).sum(-1)
    return (per_step * mask).sum()


def per_timestep(per_step: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Ratio of sums: masked total of a (B, T[, ...]) term divided by the number of unmasked frames."""
    return masked_total(per_step, mask) / mask.sum().clamp(min=1)


def gaussian_kl(posterior: torch.distributions.Normal, prior: torch.distributions.Normal) -> torch.Tensor:
    """Elementwise KL(posterior || prior) of diagonal Gaussians, shape (..., z_dim)."""
    return torch.distributions.kl_divergence(posterior, prior)


def free_bits_kl(kl: torch.Tensor, mask: torch.Tensor, free_bits: float) -> torch.Tensor:
    """KL per timestep with a free-bits floor (Kingma et al. 2016): each latent dimension's
    per-timestep KL is raised to at least free_bits / z_dim nats, so the optimiser stops
    pushing dimensions that are already nearly unused down to zero (posterior collapse)."""
    z_dim = kl.shape[-1]
    per_dim = (kl * mask.unsqueeze(-1)).sum((0, 1)) / mask.sum().clamp(min=1)
    return per_dim.clamp(min=free_bits / z_dim).sum()


# --- adversarial objectives --------------------------------------------------------------
# Sign convention of Algorithm 2: the critic D_eta is trained to MINIMISE
#     L_dis = mean D(z_prior) - mean D(z_post),
# so -L_dis = mean D(z_post) - mean D(z_prior) is its Wasserstein-1 estimate W(P, Q), and the
# adversarial step minimises that estimate w.r.t. omega (TR) and tau (PS).


def wgan_critic_loss(d_prior: torch.Tensor, d_post: torch.Tensor) -> torch.Tensor:
    """L_dis of Algorithm 2 (mean over the batch instead of the sum)."""
    return d_prior.mean() - d_post.mean()


def wgan_adversarial_loss(d_prior: torch.Tensor, d_post: torch.Tensor) -> torch.Tensor:
    """-L_dis of Algorithm 2: the critic's Wasserstein estimate, minimised by TR and PS."""
    return d_post.mean() - d_prior.mean()


def gan_critic_loss(d_prior: torch.Tensor, d_post: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon critic of eq. (12): D outputs a logit, 1 = prior sample, 0 = posterior."""
    return F.binary_cross_entropy_with_logits(d_prior, torch.ones_like(d_prior)) + \
        F.binary_cross_entropy_with_logits(d_post, torch.zeros_like(d_post))


def gan_adversarial_loss(d_prior: torch.Tensor, d_post: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss with flipped labels: both TR and PS move to fool D."""
    return F.binary_cross_entropy_with_logits(d_post, torch.ones_like(d_post)) + \
        F.binary_cross_entropy_with_logits(d_prior, torch.zeros_like(d_prior))


def gan_js_estimate(critic_loss: torch.Tensor) -> torch.Tensor:
    """JS(P, Q) implied by the GAN critic's loss: at the optimum loss = 2 log 2 - 2 JS."""
    return math.log(2.0) - critic_loss / 2


def gradient_penalty(score, prior: tuple[torch.Tensor, torch.Tensor], post: tuple[torch.Tensor, torch.Tensor],
                     mask: torch.Tensor) -> torch.Tensor:
    """WGAN-GP term (Gulrajani et al. 2017): (||grad_z D(z_hat, h_hat)|| - 1)^2 on random interpolates
    of (z, h) samples; `score(z, h)` gives one critic score per sequence. The states are interpolated
    alike (left as they are where both samples share them) and carry no gradient: the critic is held
    Lipschitz in z.

    The gradient norm is taken over the whole unmasked sequence; padded steps carry no gradient.
    """
    (z_prior, h_prior), (z_post, h_post) = prior, post
    alpha = torch.rand(z_prior.shape[0], 1, 1, device=z_prior.device, dtype=z_prior.dtype)
    z_hat = (alpha * z_prior + (1 - alpha) * z_post).detach().requires_grad_(True)
    h_hat = h_post if h_prior is h_post else (alpha * h_prior + (1 - alpha) * h_post).detach()
    # cuDNN RNNs have no double backward; the math kernels do (no effect on CPU).
    with torch.backends.cudnn.flags(enabled=False):
        scores = score(z_hat, h_hat)
        (grad,) = torch.autograd.grad(scores.sum(), z_hat, create_graph=True)
    grad = grad * mask.unsqueeze(-1)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
