"""Where does a critic's zero sit? Tools to put q = p into a model and read a strong critic there.

With the proposal set equal to the transition (PS_tau(x, h) := TR_omega(h)), posterior and prior
latents have the same law step by step, so a critic input whose zero sits at q = p must read zero;
a critic that reads clearly above zero measures the bias of its input (the issue's finding 3: the
paper's sequence critic on the shared h path). Used by tests/test_critic_inputs.py (a constructed
model) and tools/study/critic_zero_bias.py (a trained checkpoint); `latent_scales` reads prior and
posterior scales (tools/study/latent_scales.py).
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

import torch

from avrnn.models import VRNN
from avrnn.models.objectives import WassersteinGradientPenalty

Batches = Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]  # -> (x, mask) batches, fresh each call


def set_proposal_to_transition(model: VRNN, shift: float = 0.0) -> None:
    """PS_tau(x, h) := TR_omega(h) (+ shift on the mean): the proposal ignores x, reads h as TR does.
    Needs PS and TR of the same layer widths (model.ps_widths, model.tr_widths)."""
    proposal, transition = model.proposal.layers(), model.transition.layers()
    if [linear.out_features for linear in proposal.linears] != [linear.out_features for linear in transition.linears]:
        raise ValueError("set_proposal_to_transition needs model.ps_widths equal to model.tr_widths")
    # the first linear map reads [phi_x(x_t), h] in PS and h in TR: its x columns become zero
    firsts = ([(proposal.linears[0], transition.linears[0])] if proposal.linears
              else [(proposal.mean, transition.mean), (proposal.raw_std, transition.raw_std)])
    with torch.no_grad():
        for ps, tr in firsts:
            n_x = ps.in_features - model.hidden_size
            ps.weight.zero_()
            ps.weight[:, n_x:] = tr.weight
            ps.bias.copy_(tr.bias)
        later = list(zip(proposal.linears[1:], transition.linears[1:]))
        if proposal.linears:
            later += [(proposal.mean, transition.mean), (proposal.raw_std, transition.raw_std)]
        for ps, tr in later:
            ps.load_state_dict(tr.state_dict())
        proposal.mean.bias += shift


def held_out_critic_distance(model: VRNN, critic: torch.nn.Module, train_batches: Batches, held_out_batches: Batches,
                             steps: int = 500, lr: float = 1e-3, gp_weight: float = 10.0) -> tuple[float, float]:
    """A WGAN-GP critic (the project's objective, Adam) trained for `steps` batches of fresh prior
    and posterior latents, then its Wasserstein estimate on held-out ones with its standard error:
    (mean, standard error) of the per-sequence differences D(posterior) - D(prior), independent
    across sequences (the two samples of one sequence share its x and, on the shared path, its h)."""
    objective = WassersteinGradientPenalty(gp_weight=gp_weight)
    optimizer = torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.5, 0.9))
    done = 0
    while done < steps:
        for x, mask in train_batches():
            with torch.no_grad():
                z_post, z_prior, h, h_prior = model.latents(x)
            loss, _ = objective.critic_loss(lambda z, h_: critic(z, mask, h_), (z_prior, h_prior), (z_post, h), mask)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if done == steps:
                break
    differences = []
    with torch.no_grad():
        for x, mask in held_out_batches():
            z_post, z_prior, h, h_prior = model.latents(x)
            differences.append(critic(z_post, mask, h) - critic(z_prior, mask, h_prior))
    differences = torch.cat(differences)
    return differences.mean().item(), (differences.std() / len(differences) ** 0.5).item()


@torch.no_grad()
def latent_scales(model: VRNN, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """Where KL(q || p) comes from: over all unmasked frames and latent dimensions of `batches`, the
    median (and 1st percentile) std of the prior p(z_t | h_{t-1}) and the fraction of it below 0.01,
    the posterior's median std, the root mean square of the prior mean, the posterior mean and their
    difference, and the KL in nats per timestep. A KL of 1e8 says little by itself: this tells a
    prior std collapsed to its floor (suspected in the issue's finding 3) from a blown-up posterior."""
    prior_std, post_std, squares, kl, frames = [], [], torch.zeros(3, dtype=torch.float64), 0.0, 0
    for x, mask in batches:
        out = model(x, mask, prior_samples=False)
        real = mask.bool()
        prior_mean, post_mean = out.prior.mean[real], out.posterior.mean[real]
        prior_std.append(out.prior.stddev[real].flatten())
        post_std.append(out.posterior.stddev[real].flatten())
        means = (prior_mean, post_mean, prior_mean - post_mean)
        squares += torch.tensor([m.double().pow(2).mean(-1).sum().item() for m in means], dtype=torch.float64)
        kl += out.kl.sum().item()
        frames += int(real.sum())
    prior_std, rms = torch.cat(prior_std), (squares / frames).sqrt().tolist()
    return {"prior std (median)": prior_std.median().item(),
            "prior std (1st percentile)": prior_std.quantile(0.01).item(),
            "prior std < 0.01 (fraction)": (prior_std < 0.01).double().mean().item(),
            "posterior std (median)": torch.cat(post_std).median().item(), "prior mean (RMS)": rms[0],
            "posterior mean (RMS)": rms[1], "mean difference (RMS)": rms[2], "KL (nats/timestep)": kl / frames}
