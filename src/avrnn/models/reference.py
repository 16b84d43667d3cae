"""A straightforward per-step VRNN ELBO, the way common open-source ports write it: every module
(phi_x, TR, PS, EM, losses) applied inside the time loop, one timestep at a time, by VRNN.step.

It shares the VRNN's noise draws (VRNN.draw_noise), so the same parameters and seed give the same
losses and gradients as the fused pass. The tests hold the fused pass to it; the benchmark
measures the speed-up against it.
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
        step = model.step(state, x[:, t], noise=post_noise[t])
        rec.append(step.emission.log_prob(x[:, t]).sum(-1) * mask[:, t])
        kl.append(gaussian_kl(step.posterior, step.prior).sum(-1) * mask[:, t])
        state = step.state
    return torch.stack(rec, 1), torch.stack(kl, 1)
