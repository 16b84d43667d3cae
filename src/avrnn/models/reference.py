"""A straightforward per-step VRNN ELBO, written the way common open-source ports are: every
module (phi_x, TR, PS, EM, losses) applied inside the time loop, one timestep at a time.

It shares the parameters of avrnn.models.VRNN and its noise draws (VRNN.draw_noise), so the same
parameters and seed give the same losses and gradients. The
tests hold the fast VRNN to it, and the benchmark measures the speed-up against it.
"""

from __future__ import annotations

import torch

from avrnn.models.losses import gaussian_kl
from avrnn.models.vrnn import VRNN


def reference_terms(model: VRNN, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-step (B, T) reconstruction log-likelihood and (B, T) KL, zero at padded steps."""
    batch, steps, _ = x.shape
    state = model.initial_state(batch, x)
    post_noise, _ = model.draw_noise(batch, steps, x)
    rec, kl = [], []
    for t in range(steps):
        h = model.hidden(state)
        x_features = model.phi_x(x[:, t])
        prior = model.prior(h)
        posterior = model.posterior(x_features, h)
        z = posterior.loc + posterior.scale * post_noise[t]  # = posterior.rsample() with the shared noise
        z_features = model.phi_z(z)
        emission = model.emission_distribution(z_features, h)
        rec.append(emission.log_prob(x[:, t]).sum(-1) * mask[:, t])
        kl.append(gaussian_kl(posterior, prior).sum(-1) * mask[:, t])
        state = model.recurrence(x_features, z_features, state)
    return torch.stack(rec, 1), torch.stack(kl, 1)
