"""Log-likelihood bounds of sequential latent-variable models: ELBO, IWAE-k and FIVO-k.

All return one value per sequence, in nats (sum over its unmasked steps). Per timestep figures
are a ratio of sums: total over a split / number of unmasked frames (see losses.per_timestep).

A model enters through a `step(x_t, state) -> (log_alpha_t, new_state)` function over a batch
of particles, where log_alpha_t = log p(x_t | z_t, h) + log p(z_t | h) - log q(z_t | x_t, h) for a
fresh z_t ~ q, and `state` is a tensor or a tuple of tensors with the particles on dim 0.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

Step = Callable[[torch.Tensor, object], tuple[torch.Tensor, object]]


def log_mean_exp(values: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.logsumexp(values, dim) - math.log(values.shape[dim])


def elbo_bound(log_weights: torch.Tensor) -> torch.Tensor:
    """(k, B) log importance weights of whole sequences -> (B,) ELBO averaged over the k samples."""
    return log_weights.mean(0)


def iwae_bound(log_weights: torch.Tensor) -> torch.Tensor:
    """(k, B) log importance weights of whole sequences -> (B,) IWAE-k = log mean_k w (Burda et al.)."""
    return log_mean_exp(log_weights, 0)


def _gather_state(state, index: torch.Tensor):
    if isinstance(state, tuple):
        return tuple(s[index] for s in state)
    return state[index]


def fivo_bound(step: Step, state, x: torch.Tensor, mask: torch.Tensor, particles: int,
               resample_threshold: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """FIVO-k (Maddison et al. 2017): a particle filter over x (B, T, F) with `particles` particles
    per sequence, resampling a sequence's particles when their effective sample size falls below
    resample_threshold * k (1.0: every step; 0: never, which gives IWAE-k). `state` holds
    B * k particles, sequence-major (particle j of sequence b at row b * k + j). Returns (B,)."""
    batch, steps, _ = x.shape
    k = particles
    log_w = x.new_zeros(batch, k)
    bound = x.new_zeros(batch)
    rows = torch.arange(batch, device=x.device)[:, None] * k
    for t in range(steps):
        m_t = mask[:, t]
        log_alpha, state = step(x[:, t].repeat_interleave(k, 0), state)
        new_log_w = log_w + log_alpha.view(batch, k) * m_t[:, None]
        bound = bound + (torch.logsumexp(new_log_w, 1) - torch.logsumexp(log_w, 1)) * m_t
        log_w = new_log_w
        ess = torch.exp(2 * torch.logsumexp(log_w, 1) - torch.logsumexp(2 * log_w, 1))
        resample = (ess < resample_threshold * k) & (m_t > 0)
        if t < steps - 1 and resample.any():
            ancestors = torch.multinomial(torch.softmax(log_w, 1), k, replacement=True, generator=generator)
            keep = torch.arange(k, device=x.device).expand(batch, k)
            ancestors = torch.where(resample[:, None], ancestors, keep)
            state = _gather_state(state, (rows + ancestors).reshape(-1))
            log_w = torch.where(resample[:, None], torch.zeros_like(log_w), log_w)
    return bound


def sequence_log_weights(model, x: torch.Tensor, mask: torch.Tensor, samples: int) -> torch.Tensor:
    """(samples, B) log importance weights log p(x, z) - log q(z | x) of whole sequences for a VRNN,
    from its fast teacher-forced pass on the batch repeated `samples` times."""
    batch = x.shape[0]
    out = model(x.repeat(samples, 1, 1), mask.repeat(samples, 1), prior_samples=False)
    log_prior = out.prior.log_prob(out.z_post).sum(-1)
    log_posterior = out.posterior.log_prob(out.z_post).sum(-1)
    per_step = out.rec_log_lik + (log_prior - log_posterior) * out.mask
    return per_step.sum(1).view(samples, batch)


def vrnn_fivo(model, x: torch.Tensor, mask: torch.Tensor, particles: int, **kwargs) -> torch.Tensor:
    """FIVO-k of a VRNN, (B,)."""
    return fivo_bound(model.particle_step, model.initial_state(x.shape[0] * particles, x), x, mask, particles,
                      **kwargs)
