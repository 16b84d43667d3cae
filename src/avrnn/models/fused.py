"""The VRNN's teacher-forced pass over all timesteps, fused for speed: the same maths as
VRNN.step (tests/test_reference.py holds them equal in float64, losses and gradients, GRU and LSTM).

Only what needs the recurrence runs inside the time loop (the proposal's h-dependent part,
sampling, phi_z, the cell); phi_x, the prior, the emission and the losses run for all timesteps
at once. Before the loop, the x-dependent parts of the proposal's first layer and of the cell's
input gates are one product over all steps; inside it, weights go through LoopLinear (input
gradients per step, weight gradients in one product after the loop, avrnn.models.loop_linear).

It reads the layers by name (proposal.fc1, phi_z.fc2, ...) and checks their layout first: a
change to an MLP's layers fails here, loudly, instead of being skipped.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Normal
from torch.nn import functional as F

from avrnn.models.layers import MLP, GaussianMLP
from avrnn.models.loop_linear import LoopLinear


def _expect_layout(module: nn.Module, kind: type, where: str) -> None:
    children = [name for name, _ in module.named_children()]
    expected = {MLP: ["fc1", "fc2", "activation"], GaussianMLP: ["fc1", "fc2", "activation", "mean", "raw_std"]}[kind]
    if type(module) is not kind or children != expected:
        raise TypeError(f"the fused VRNN pass reads {where} as {kind.__name__} with layers {expected}, but it is "
                        f"{type(module).__name__} with {children}; update avrnn/models/fused.py to the new layout")


def fused_trajectory(vrnn, x_features: torch.Tensor, post_noise: torch.Tensor, prior_noise: torch.Tensor):
    """(h_{t-1}, posterior, z_post, phi_z(z_post), prior, z_prior), each over all t (batch first);
    h follows the posterior samples and the prior samples share that h. Noise is (T, B, Z)."""
    h_prev, post_mean, post_std, z_post, z_features = _loop(vrnn, x_features, post_noise)
    h_prev = torch.stack(h_prev, 1)
    posterior = Normal(torch.stack(post_mean, 1), torch.stack(post_std, 1), validate_args=False)
    prior = vrnn.prior(h_prev)
    z_prior = prior.loc + prior.scale * prior_noise.transpose(0, 1)
    return h_prev, posterior, torch.stack(z_post, 1), torch.stack(z_features, 1), prior, z_prior


def _loop(vrnn, x_features: torch.Tensor, post_noise: torch.Tensor):
    """The recurrence: per step the proposal's h-dependent part, sampling, phi_z and the cell."""
    proposal, phi_z, cell = vrnn.proposal, vrnn.phi_z, vrnn.f_theta
    _expect_layout(proposal, GaussianMLP, "proposal")
    _expect_layout(phi_z, MLP, "phi_z")
    n_x = x_features.shape[-1]
    post_x = F.linear(x_features, proposal.fc1.weight[:, :n_x], proposal.fc1.bias).unbind(1)
    input_bias = cell.bias_ih if vrnn.rnn == "gru" else cell.bias_ih + cell.bias_hh
    gates_x = F.linear(x_features, cell.weight_ih[:, :n_x], input_bias).unbind(1)
    # h_{t-1} feeds the proposal and the cell's hidden gates: one product for both
    n_post, n_gates = proposal.fc1.weight.shape[0], cell.weight_hh.shape[0]
    from_h = LoopLinear(torch.cat([proposal.fc1.weight[:, n_x:], cell.weight_hh]),
                        torch.cat([torch.zeros_like(proposal.fc1.bias), cell.bias_hh]) if vrnn.rnn == "gru" else None)
    post_fc2 = LoopLinear(proposal.fc2.weight, proposal.fc2.bias)
    head = LoopLinear(torch.cat([proposal.mean.weight, proposal.raw_std.weight]),
                      torch.cat([proposal.mean.bias, proposal.raw_std.bias]))
    z_fc1, z_fc2 = LoopLinear(phi_z.fc1.weight, phi_z.fc1.bias), LoopLinear(phi_z.fc2.weight, phi_z.fc2.bias)
    gates_z = LoopLinear(cell.weight_ih[:, n_x:])
    post_act, z_act = proposal.activation.forward, phi_z.activation.forward  # bound: no module-call overhead per step

    state = vrnn.initial_state(x_features.shape[0], x_features)
    h_prev, post_mean, post_std, z_post, z_features = [], [], [], [], []
    for t in range(len(post_x)):
        first = t == 0
        h = vrnn.hidden(state)
        post_from_h, gates_h = from_h(h, first).split([n_post, n_gates], -1)  # one backward node, not two
        features = post_act(post_fc2(post_act(post_x[t] + post_from_h), first))
        mean, raw_std = head(features, first).chunk(2, -1)
        std = proposal.std(raw_std)
        z_t = mean + std * post_noise[t]
        zf_t = z_act(z_fc2(z_act(z_fc1(z_t, first)), first))
        state = _cell(vrnn, gates_x[t] + gates_z(zf_t, first), gates_h, state)
        h_prev.append(h)
        post_mean.append(mean)
        post_std.append(std)
        z_post.append(z_t)
        z_features.append(zf_t)
    return h_prev, post_mean, post_std, z_post, z_features


def _cell(vrnn, gates_input: torch.Tensor, gates_hidden: torch.Tensor, state):
    """nn.GRUCell / nn.LSTMCell arithmetic on precomputed gate pre-activations (same gate order);
    nn's cells take inputs, not pre-activations, so the fused pass restates them (the reference,
    VRNN.step, uses nn's cells: the equivalence test compares the two)."""
    if vrnn.rnn == "gru":
        sizes = [2 * vrnn.hidden_size, vrnn.hidden_size]
        (input_ru, input_n), (hidden_ru, hidden_n) = gates_input.split(sizes, -1), gates_hidden.split(sizes, -1)
        reset, update = torch.sigmoid(input_ru + hidden_ru).chunk(2, -1)
        candidate = torch.tanh(input_n + reset * hidden_n)
        return candidate + update * (state - candidate)
    h, c = state
    i, f, g, o = (gates_input + gates_hidden).chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c
