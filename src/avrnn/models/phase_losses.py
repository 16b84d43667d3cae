"""The losses of the training phases, as pure functions of the model, the critic and one batch: the
one definition of each, used by the LightningModule (avrnn.training), the benchmark and the tests.

Every function takes speech features x (B, T, input_size) with its (B, T) mask and returns
(loss, terms): a scalar to minimise and a dict of scalars in nats per timestep (avrnn.models.losses:
ratios of sums over the unmasked frames).

    elbo_loss            the KL-only VRNN: -ELBO (KL weighted for warm-up, optionally free bits)
    reconstruction_loss  Algorithm 1: -sum_t log p(x_t | z_t, h_{t-1}) (+ kl_weight x KL: the hybrid)
    critic_loss          Algorithm 2 (1): the objective's critic loss on detached latent sequences
    adversarial_loss     Algorithm 2 (2): the critic's estimate, minimised by TR and PS
"""

from __future__ import annotations

import torch

from avrnn.models import losses
from avrnn.models.vrnn import VRNN, VRNNOutput

Terms = dict[str, torch.Tensor]


def bound_terms(out: VRNNOutput) -> Terms:
    """Reconstruction (negative log-likelihood), KL and ELBO in nats per timestep of a pass."""
    return bound_terms_of(out.rec_log_lik, out.kl, out.mask)


def bound_terms_of(rec_log_lik: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor) -> Terms:
    """The same from per-step terms: log p(x_t | z_t, h_{t-1}) (B, T) and the KL (B, T[, Z])."""
    rec = -losses.per_timestep(rec_log_lik, mask)
    kl = losses.per_timestep(kl, mask)
    return {"rec_per_timestep": rec, "kl_per_timestep": kl, "elbo_per_timestep": -(rec + kl)}


def negative_elbo(rec_log_lik: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor,
                  kl_weight: float | torch.Tensor = 1.0, free_bits: float = 0.0) -> tuple[torch.Tensor, Terms]:
    """-ELBO per timestep from per-step terms (as bound_terms_of): reconstruction + kl_weight x KL,
    the KL floored per latent dimension at free_bits / z_dim nats where free_bits > 0 (free bits,
    Kingma et al. 2016; needs the KL per dimension, (B, T, Z)). kl_weight may be a tensor (a CUDA
    graph then reads its current value)."""
    terms = bound_terms_of(rec_log_lik, kl, mask)
    kl_term = losses.free_bits_kl(kl, mask, free_bits) if free_bits > 0 else terms["kl_per_timestep"]
    return terms["rec_per_timestep"] + kl_weight * kl_term, terms


def elbo_loss(vrnn: VRNN, x: torch.Tensor, mask: torch.Tensor, kl_weight: float | torch.Tensor = 1.0,
              free_bits: float = 0.0) -> tuple[torch.Tensor, Terms]:
    """The KL-only VRNN baseline's loss (model=vrnn), by the fused pass."""
    out = vrnn(x, mask, prior_samples=False)
    return negative_elbo(out.rec_log_lik, out.kl, out.mask, kl_weight, free_bits)


def reconstruction_loss(vrnn: VRNN, x: torch.Tensor, mask: torch.Tensor, kl_weight: float = 0.0,
                        warmup: float | torch.Tensor = 1.0, free_bits: float = 0.0) -> tuple[torch.Tensor, Terms]:
    """Algorithm 1: -sum_t log p(x_t | z_t, h_{t-1}) per timestep, plus kl_weight x warmup x KL where
    kl_weight > 0 (ablation=hybrid; its gradient then reaches TR), the KL under free bits as in
    negative_elbo. warmup: the KL warm-up factor of this iteration in [0, 1] (a tensor for a CUDA graph);
    kl_weight = 0 (the paper's A-VRNN) adds no KL term whatever the warm-up."""
    out = vrnn(x, mask, prior_samples=False)
    if not kl_weight:
        terms = bound_terms(out)
        return terms["rec_per_timestep"], terms
    return negative_elbo(out.rec_log_lik, out.kl, out.mask, kl_weight * warmup, free_bits)


def sequence_score(critic: torch.nn.Module, mask: torch.Tensor):
    """D_eta on latents z (B, T, Z) drawn at states h (B, T, H) -> one score per sequence."""
    return lambda z, h: critic(z, mask, h)


def critic_loss(vrnn: VRNN, critic: torch.nn.Module, objective, x: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, Terms]:
    """Algorithm 2 (1): the objective's critic loss (e.g. WGAN: D(prior) - D(posterior)) on latent
    sequences drawn without gradients to the VRNN."""
    with torch.no_grad():
        latents = vrnn.latents(x)
    return objective.critic_loss(sequence_score(critic, mask), (latents.z_prior, latents.h_prior),
                                 (latents.z_post, latents.h), mask)


def adversarial_loss(vrnn: VRNN, critic: torch.nn.Module, objective, x: torch.Tensor, mask: torch.Tensor,
                     trains_prior: bool = True) -> tuple[torch.Tensor, Terms]:
    """Algorithm 2 (2): the critic's estimate, minimised by TR and PS (omega, tau); the prior's
    latents are detached where the adversarial step does not train it (trains_prior=False:
    ablation=posterior_only)."""
    z_post, z_prior, h, h_prior = vrnn.latents(x)
    z_prior = z_prior if trains_prior else z_prior.detach()
    score = sequence_score(critic, mask)
    loss = objective.adversarial_loss(score(z_prior, h_prior), score(z_post, h))
    return loss, {"adversarial_loss": loss.detach()}


def critic_distance(out: VRNNOutput, critic: torch.nn.Module, objective) -> tuple[str, torch.Tensor]:
    """The divergence the critic estimates between the prior's and the posterior's latents of a pass
    run with prior samples: (the objective's name for it, the estimate)."""
    score = sequence_score(critic, out.mask)
    return objective.distance_name, objective.distance(score(out.z_prior, out.h_prior), score(out.z_post, out.h))
