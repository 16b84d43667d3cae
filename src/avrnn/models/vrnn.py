"""The variational RNN (Chung et al. 2015) in the notation of the A-VRNN paper (Section IV).

    phi_x, phi_z   data and latent encoders (MLPs)
    f_theta        RNN cell:   h_t = f_theta(h_{t-1}, phi_x(x_t), phi_z(z_t))
    TR_omega       transition: prior      p(z_t | h_{t-1})            (diagonal Gaussian)
    PS_tau         proposal:   posterior  q(z_t | x_t, h_{t-1})       (diagonal Gaussian)
    EM_phi         emission:   p(x_t | z_t, h_{t-1})                  (Gaussian or Bernoulli)

Only what needs the recurrence runs inside the time loop (proposal, sampling, phi_z, f_theta);
phi_x, the prior, the emission and all losses are computed for all timesteps at once, and the
loop's weight gradients are one product over all steps (avrnn.models.loop_linear).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import Bernoulli, Normal
from torch.nn import functional as F

from avrnn.models.layers import GaussianHead, mlp
from avrnn.models.loop_linear import LoopLinear
from avrnn.models.losses import gaussian_kl

RNN_CELLS = {"gru": nn.GRUCell, "lstm": nn.LSTMCell}
EMISSIONS = ("gaussian", "bernoulli")


@dataclass
class VRNNOutput:
    """Per-step terms of one teacher-forced pass; every per-step term is zero at padded steps."""

    rec_log_lik: torch.Tensor  # (B, T)    log p(x_t | z_t, h_{t-1}), summed over the frame
    kl: torch.Tensor  # (B, T, Z) KL(q(z_t | x_t, h_{t-1}) || p(z_t | h_{t-1})) per latent dim
    z_post: torch.Tensor  # (B, T, Z) z_t ~ q, the samples that drive the recurrence
    z_prior: torch.Tensor  # (B, T, Z) z_t ~ p(z_t | h_{t-1}) along the same h trajectory
    posterior: Normal
    prior: Normal
    emission: torch.distributions.Distribution  # p(x_t | z_t, h_{t-1}) for all t
    mask: torch.Tensor  # (B, T), 1 for real frames


class VRNN(nn.Module):
    """VRNN over framed sequences x of shape (B, T, frame_size) with a (B, T) mask."""

    def __init__(
        self,
        frame_size: int,
        z_dim: int = 32,
        hidden_size: int = 256,
        x_features: int = 128,
        z_features: int = 128,
        mlp_hidden: int = 256,
        rnn: str = "gru",
        emission: str = "gaussian",
        std_floor: float = 1e-3,
        std_max: float = 100.0,
    ):
        super().__init__()
        if rnn not in RNN_CELLS:
            raise ValueError(f"model.rnn must be one of {sorted(RNN_CELLS)}, got {rnn!r}")
        if emission not in EMISSIONS:
            raise ValueError(f"model.emission must be one of {list(EMISSIONS)}, got {emission!r}")
        self.z_dim, self.hidden_size, self.rnn, self.emission_kind = z_dim, hidden_size, rnn, emission
        self.phi_x = mlp(frame_size, mlp_hidden, x_features)
        self.phi_z = mlp(z_dim, mlp_hidden, z_features)
        self.f_theta = RNN_CELLS[rnn](x_features + z_features, hidden_size)
        self.transition = nn.Sequential(
            mlp(hidden_size, mlp_hidden, mlp_hidden), GaussianHead(mlp_hidden, z_dim, std_floor, std_max)
        )
        self.proposal = nn.Sequential(
            mlp(x_features + hidden_size, mlp_hidden, mlp_hidden),
            GaussianHead(mlp_hidden, z_dim, std_floor, std_max),
        )
        emission_head = (
            GaussianHead(mlp_hidden, frame_size, std_floor, std_max)
            if emission == "gaussian"
            else nn.Linear(mlp_hidden, frame_size)
        )
        self.emission = nn.Sequential(mlp(z_features + hidden_size, mlp_hidden, mlp_hidden), emission_head)

    # --- parameter groups, named as in Algorithms 1 and 2 -----------------------------------
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """theta: RNN cell, phi: emission, tau: proposal, omega: transition, encoders: phi_x, phi_z."""
        return {
            "theta": list(self.f_theta.parameters()),
            "phi": list(self.emission.parameters()),
            "tau": list(self.proposal.parameters()),
            "omega": list(self.transition.parameters()),
            "encoders": list(self.phi_x.parameters()) + list(self.phi_z.parameters()),
        }

    # --- the factorised pieces ---------------------------------------------------------------
    def initial_state(self, batch: int, like: torch.Tensor):
        h = like.new_zeros(batch, self.hidden_size)
        return (h, torch.zeros_like(h)) if self.rnn == "lstm" else h

    def hidden(self, state) -> torch.Tensor:
        return state[0] if self.rnn == "lstm" else state

    def recurrence(self, x_features: torch.Tensor, z_features: torch.Tensor, state):
        """f_theta: h_t from h_{t-1}, phi_x(x_t) and phi_z(z_t)."""
        return self.f_theta(torch.cat([x_features, z_features], -1), state)

    def prior(self, h_prev: torch.Tensor) -> Normal:
        """TR_omega(h_{t-1})."""
        return self.transition(h_prev)

    def posterior(self, x_features: torch.Tensor, h_prev: torch.Tensor) -> Normal:
        """PS_tau(phi_x(x_t), h_{t-1})."""
        return self.proposal(torch.cat([x_features, h_prev], -1))

    def emission_distribution(self, z_features: torch.Tensor, h_prev: torch.Tensor):
        """EM_phi(phi_z(z_t), h_{t-1})."""
        out = self.emission(torch.cat([z_features, h_prev], -1))
        return out if self.emission_kind == "gaussian" else Bernoulli(logits=out, validate_args=False)

    # --- passes --------------------------------------------------------------------------------
    def draw_noise(self, batch: int, steps: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standard normal noise for the posterior and the prior samples, (T, B, Z) each, drawn
        before the loop (the reference port uses the same draws). One draw per step: padding a
        batch with more steps then leaves the noise of the real steps unchanged (one big draw
        would not: torch's CPU sampler fills blocks of 16, so a longer draw changes the prefix)."""
        noise = torch.stack([torch.randn(2, batch, self.z_dim, dtype=like.dtype, device=like.device)
                             for _ in range(steps)])
        return noise[:, 0], noise[:, 1]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> VRNNOutput:
        """Teacher-forced pass: h follows posterior samples; prior samples share that h."""
        mask = mask.to(x.dtype)
        h_prev, posterior, z_post, z_features, prior, z_prior = self._trajectory(x)
        emission = self.emission_distribution(z_features, h_prev)
        return VRNNOutput(
            rec_log_lik=emission.log_prob(x).sum(-1) * mask,
            kl=gaussian_kl(posterior, prior) * mask.unsqueeze(-1),
            z_post=z_post,
            z_prior=z_prior,
            posterior=posterior,
            prior=prior,
            emission=emission,
            mask=mask,
        )

    def latents(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_post, z_prior), each (B, T, Z): the posterior and prior latent sequences along one
        h trajectory, as in forward (same noise) but without the emission, which the critic and
        adversarial phases do not use."""
        _, _, z_post, _, _, z_prior = self._trajectory(x)
        return z_post, z_prior

    def _trajectory(self, x: torch.Tensor):
        batch, steps, _ = x.shape
        post_noise, prior_noise = self.draw_noise(batch, steps, x)
        h_prev, post_mean, post_std, z_post, z_features = self._loop(self.phi_x(x), post_noise)
        h_prev = torch.stack(h_prev, 1)
        posterior = Normal(torch.stack(post_mean, 1), torch.stack(post_std, 1), validate_args=False)
        prior = self.prior(h_prev)
        z_prior = prior.loc + prior.scale * prior_noise.transpose(0, 1)
        return h_prev, posterior, torch.stack(z_post, 1), torch.stack(z_features, 1), prior, z_prior

    def _loop(self, x_features: torch.Tensor, post_noise: torch.Tensor):
        """The recurrence: per step only the proposal's h-dependent part, sampling, phi_z and the
        cell. The x-dependent parts of the proposal's first layer and of the cell's input gates are
        one product over all steps before the loop; weights used inside it go through LoopLinear
        (input gradients per step, weight gradients in one product after the loop)."""
        n_x = x_features.shape[-1]
        post_layer, post_head = self.proposal[0][0], self.proposal[1]
        cell = self.f_theta
        post_x = F.linear(x_features, post_layer.weight[:, :n_x], post_layer.bias).unbind(1)
        input_bias = cell.bias_ih if self.rnn == "gru" else cell.bias_ih + cell.bias_hh
        gates_x = F.linear(x_features, cell.weight_ih[:, :n_x], input_bias).unbind(1)
        # h_{t-1} feeds the proposal and the cell's hidden gates: one product for both
        n_post, n_gates = post_layer.weight.shape[0], cell.weight_hh.shape[0]
        from_h = LoopLinear(torch.cat([post_layer.weight[:, n_x:], cell.weight_hh]),
                            torch.cat([torch.zeros_like(post_layer.bias), cell.bias_hh]) if self.rnn == "gru" else None)
        post_hidden = LoopLinear(self.proposal[0][2].weight, self.proposal[0][2].bias)
        head = LoopLinear(torch.cat([post_head.mean.weight, post_head.raw_std.weight]),
                          torch.cat([post_head.mean.bias, post_head.raw_std.bias]))
        phi_z = [LoopLinear(self.phi_z[i].weight, self.phi_z[i].bias) for i in (0, 2)]
        gates_z = LoopLinear(cell.weight_ih[:, n_x:])

        state = self.initial_state(x_features.shape[0], x_features)
        h_prev, post_mean, post_std, z_post, z_features = [], [], [], [], []
        for t in range(len(post_x)):
            first = t == 0
            h = self.hidden(state)
            post_from_h, gates_h = from_h(h, first).split([n_post, n_gates], -1)  # one backward node, not two
            a = F.relu(post_hidden(F.relu(post_x[t] + post_from_h), first))
            mean, raw_std = head(a, first).chunk(2, -1)
            std = post_head.std(raw_std)
            z_t = mean + std * post_noise[t]
            zf_t = F.relu(phi_z[1](F.relu(phi_z[0](z_t, first)), first))
            state = self._cell(gates_x[t] + gates_z(zf_t, first), gates_h, state)
            h_prev.append(h)
            post_mean.append(mean)
            post_std.append(std)
            z_post.append(z_t)
            z_features.append(zf_t)
        return h_prev, post_mean, post_std, z_post, z_features

    def _cell(self, gates_input: torch.Tensor, gates_hidden: torch.Tensor, state):
        """nn.GRUCell / nn.LSTMCell arithmetic on precomputed gate pre-activations (same gate order)."""
        if self.rnn == "gru":
            sizes = [2 * self.hidden_size, self.hidden_size]
            (input_ru, input_n), (hidden_ru, hidden_n) = gates_input.split(sizes, -1), gates_hidden.split(sizes, -1)
            reset, update = torch.sigmoid(input_ru + hidden_ru).chunk(2, -1)
            candidate = torch.tanh(input_n + reset * hidden_n)
            return candidate + update * (state - candidate)
        h, c = state
        i, f, g, o = (gates_input + gates_hidden).chunk(4, -1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def particle_step(self, x_t: torch.Tensor, state):
        """One filtering step for FIVO: z_t ~ q(z_t | x_t, h_{t-1}), the incremental log weight
        log p(x_t | z_t, h) + log p(z_t | h) - log q(z_t | x_t, h) (summed over dims), new state."""
        h = self.hidden(state)
        x_features = self.phi_x(x_t)
        prior, posterior = self.prior(h), self.posterior(x_features, h)
        z = posterior.sample()
        z_features = self.phi_z(z)
        log_alpha = (self.emission_distribution(z_features, h).log_prob(x_t).sum(-1)
                     + prior.log_prob(z).sum(-1) - posterior.log_prob(z).sum(-1))
        return log_alpha, self.recurrence(x_features, z_features, state)

    def expected_frames(self, emission) -> torch.Tensor:
        """The emission's mean: what the model 'says' for each frame (probabilities if Bernoulli)."""
        return emission.mean if self.emission_kind == "gaussian" else emission.probs

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Teacher-forced reconstruction: the emission mean given posterior samples, (B, T, F)."""
        return self.expected_frames(self(x, mask).emission)

    @torch.no_grad()
    def sample(self, batch: int, steps: int, device=None) -> torch.Tensor:
        """Free-running generation: z_t ~ TR(h_{t-1}), x_t = mean of EM(z_t, h_{t-1}), and the
        recurrence is fed its own outputs (no teacher forcing). Returns (batch, steps, frame)."""
        like = next(self.parameters()) if device is None else torch.empty(0, device=device)
        state = self.initial_state(batch, like)
        frames = []
        for _ in range(steps):
            h = self.hidden(state)
            prior = self.prior(h)
            z_features = self.phi_z(prior.loc + prior.scale * torch.randn_like(prior.loc))  # NaN-tolerant draw
            emission = self.emission_distribution(z_features, h)
            x_t = self.expected_frames(emission)
            state = self.recurrence(self.phi_x(x_t), z_features, state)
            frames.append(x_t)
        return torch.stack(frames, 1)
