"""The VRNN's teacher-forced pass over all timesteps, fused for speed: the same maths as
VRNN.step (tests/test_reference.py holds them equal in float64, losses and gradients, GRU and LSTM).

Only what needs the recurrence runs inside the time loop (the proposal's h-dependent part,
sampling, phi_z, the cell); phi_x, the prior, the emission and the losses run for all timesteps
at once. Before the loop, the x-dependent parts of the proposal's first layer and of the cell's
input gates are one product over all steps; inside it, weights go through LoopLinear (input
gradients per step, weight gradients in one product after the loop, avrnn.models.loop_linear).

It reads the model through an explicit interface: `FusedModel` (what a VRNN exposes) and the blocks'
`layers()` (avrnn.models.layers), never by attribute names of their insides.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch
from torch import nn
from torch.distributions import Normal
from torch.nn import functional as F

from avrnn.models.layers import MLP, GaussianMLP, layer_names
from avrnn.models.loop_linear import LoopLinear


class FusedModel(Protocol):
    """What the fused pass reads of a model (avrnn.models.vrnn.VRNN): the cell f_theta (torch's
    nn.GRUCell or nn.LSTMCell, read through their documented weight_ih/weight_hh/bias_ih/bias_hh),
    the blocks phi_z, PS (proposal) and TR (transition) through their `layers()`, and the prior and
    posterior as distributions of all steps at once."""

    hidden_size: int
    rnn: str  # gru | lstm
    recurrence_input: str  # xz | x
    prior_path: str  # shared | own
    f_theta: nn.GRUCell | nn.LSTMCell
    phi_z: MLP
    proposal: GaussianMLP
    transition: GaussianMLP

    def initial_state(self, batch: int, like: torch.Tensor): ...

    def hidden(self, state) -> torch.Tensor: ...

    def prior(self, h_prev: torch.Tensor) -> Normal: ...

    def posterior(self, x_features: torch.Tensor, h_prev: torch.Tensor) -> Normal: ...


class Trajectory(NamedTuple):
    """One teacher-forced pass, each (B, T, ...): h_{t-1} along the posterior's path, the posterior
    and its samples (and phi_z of them), the prior at that h, and the prior's samples with the
    h_{t-1} they were drawn at (the posterior's h, or their own path; z_prior None if not asked)."""

    h_prev: torch.Tensor
    posterior: Normal
    z_post: torch.Tensor
    z_features: torch.Tensor
    prior: Normal
    z_prior: torch.Tensor | None
    h_prior: torch.Tensor


def _layers(block: MLP | GaussianMLP, kind: type, where: str):
    """The block's `layers()` view, refused where the block is not exactly `kind` (a subclass may
    compute otherwise) or holds layers the view leaves out (a layer added to a block must reach this
    pass, not be skipped)."""
    view = block.layers()
    children = [name for name, _ in block.named_children()]
    expected = layer_names(len(view.linears)) + [name for name in view._fields if name not in ("linears", "std")]
    if type(block) is not kind or children != expected:
        raise TypeError(f"the fused VRNN pass reads {where} as {kind.__name__} with layers {expected}, but it is "
                        f"{type(block).__name__} with {children}; update avrnn/models/fused.py to the new layout")
    return view


def fused_trajectory(vrnn: FusedModel, x_features: torch.Tensor, post_noise: torch.Tensor, prior_noise: torch.Tensor,
                     prior_samples: bool = True) -> Trajectory:
    """The teacher-forced pass over all t (batch first); noise is (T, B, Z). h follows the posterior
    samples (or x alone, recurrence_input=x); prior samples come from vrnn.prior_path (skipped with
    prior_samples=False: the likelihood phases do not read them)."""
    if vrnn.recurrence_input == "x":
        return _x_driven(vrnn, x_features, post_noise, prior_noise, prior_samples)
    h_prev, post_mean, post_std, z_post, z_features = _loop(vrnn, x_features, post_noise, vrnn.proposal, "proposal")
    h_prev = torch.stack(h_prev, 1)
    posterior = Normal(torch.stack(post_mean, 1), torch.stack(post_std, 1), validate_args=False)
    prior = vrnn.prior(h_prev)
    z_prior, h_prior = None, h_prev
    if prior_samples and vrnn.prior_path == "shared":  # along the posterior's h path (the paper's)
        z_prior = prior.loc + prior.scale * prior_noise.transpose(0, 1)
    elif prior_samples:  # own: z_t ~ TR(h_{t-1}) drives its own h path, with the same x
        h_own, _, _, z_own, _ = _loop(vrnn, x_features, prior_noise, vrnn.transition, "transition")
        z_prior, h_prior = torch.stack(z_own, 1), torch.stack(h_own, 1)
    return Trajectory(h_prev, posterior, torch.stack(z_post, 1), torch.stack(z_features, 1), prior, z_prior, h_prior)


def _x_driven(vrnn: FusedModel, x_features, post_noise, prior_noise, prior_samples: bool) -> Trajectory:
    """recurrence_input=x: h_t = f_theta(h_{t-1}, phi_x(x_t)) does not read z, so only the cell
    runs in the loop; the proposal, sampling and phi_z run for all steps at once, and the prior's
    samples share the posterior's h path whatever prior_path says (z never moves h)."""
    state, h_prev = vrnn.initial_state(x_features.shape[0], x_features), []
    for x_t in x_features.unbind(1):
        h_prev.append(vrnn.hidden(state))
        state = vrnn.f_theta(x_t, state)
    h_prev = torch.stack(h_prev, 1)
    posterior = vrnn.posterior(x_features, h_prev)
    z_post = posterior.loc + posterior.scale * post_noise.transpose(0, 1)
    prior = vrnn.prior(h_prev)
    z_prior = prior.loc + prior.scale * prior_noise.transpose(0, 1) if prior_samples else None
    return Trajectory(h_prev, posterior, z_post, vrnn.phi_z(z_post), prior, z_prior, h_prev)


def _loop(vrnn: FusedModel, x_features: torch.Tensor, noise: torch.Tensor, drive_block: GaussianMLP, where: str):
    """The recurrence driven by samples of `drive_block` (the proposal, or the transition for the
    prior's own path): per step its h-dependent part, sampling, phi_z and the cell. The block's
    first linear map (its first layer, or its mean and std read-outs where it has no layers) is
    split by input: its x part runs for all steps before the loop, its h part inside it."""
    drive, phi_z, cell = _layers(drive_block, GaussianMLP, where), _layers(vrnn.phi_z, MLP, "phi_z"), vrnn.f_theta
    head_weight = torch.cat([drive.mean.weight, drive.raw_std.weight])
    head_bias = torch.cat([drive.mean.bias, drive.raw_std.bias])
    first_weight, first_bias = ((drive.linears[0].weight, drive.linears[0].bias) if drive.linears
                                else (head_weight, head_bias))
    n_x = x_features.shape[-1]
    from_x = first_weight.shape[1] - vrnn.hidden_size  # the proposal reads [phi_x(x_t), h]; the transition h only
    pre_x = (F.linear(x_features, first_weight[:, :from_x], first_bias).unbind(1) if from_x
             else [first_bias] * x_features.shape[1])
    input_bias = cell.bias_ih if vrnn.rnn == "gru" else cell.bias_ih + cell.bias_hh
    gates_x = F.linear(x_features, cell.weight_ih[:, :n_x], input_bias).unbind(1)
    # h_{t-1} feeds the sampled distribution and the cell's hidden gates: one product for both
    n_drive, n_gates = first_weight.shape[0], cell.weight_hh.shape[0]
    from_h = LoopLinear(torch.cat([first_weight[:, from_x:], cell.weight_hh]),
                        torch.cat([torch.zeros_like(first_bias), cell.bias_hh]) if vrnn.rnn == "gru" else None)
    hidden_layers = [LoopLinear(linear.weight, linear.bias) for linear in drive.linears[1:]]
    head = LoopLinear(head_weight, head_bias) if drive.linears else None
    z_layers = [LoopLinear(linear.weight, linear.bias) for linear in phi_z.linears]
    gates_z = LoopLinear(cell.weight_ih[:, n_x:])
    act, z_act = drive.activation, phi_z.activation  # bound forward: no module-call overhead per step

    state = vrnn.initial_state(x_features.shape[0], x_features)
    h_prev, means, stds, z, z_features = [], [], [], [], []
    for t in range(len(pre_x)):
        first = t == 0
        h = vrnn.hidden(state)
        drive_from_h, gates_h = from_h(h, first).split([n_drive, n_gates], -1)  # one backward node, not two
        out = pre_x[t] + drive_from_h
        if head is not None:  # the block's layers, then its read-outs
            out = act(out)
            for layer in hidden_layers:
                out = act(layer(out, first))
            out = head(out, first)
        mean, raw_std = out.chunk(2, -1)
        std = drive.std(raw_std)
        z_t = mean + std * noise[t]
        zf_t = z_t
        for layer in z_layers:
            zf_t = z_act(layer(zf_t, first))
        state = _cell(vrnn, gates_x[t] + gates_z(zf_t, first), gates_h, state)
        h_prev.append(h)
        means.append(mean)
        stds.append(std)
        z.append(z_t)
        z_features.append(zf_t)
    return h_prev, means, stds, z, z_features


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
