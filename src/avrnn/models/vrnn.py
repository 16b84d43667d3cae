"""The variational RNN (Chung et al. 2015) in the notation of the A-VRNN paper (Section IV).

    phi_x, phi_z   data and latent encoders (MLPs)
    f_theta        RNN cell:   h_t = f_theta(h_{t-1}, phi_x(x_t), phi_z(z_t))
    TR_omega       transition: prior      p(z_t | h_{t-1})            (diagonal Gaussian)
    PS_tau         proposal:   posterior  q(z_t | x_t, h_{t-1})       (diagonal Gaussian)
    EM_phi         emission:   p(x_t | z_t, h_{t-1})                  (avrnn.models.emissions)

`step` is one timestep in the paper's order (Algorithm 1); sampling, the particle filter (FIVO)
and the tests' reference use it. Training runs the same maths as one fused pass over all
timesteps (avrnn.models.fused), held equal to `step` by a float64 test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, List, Mapping, NamedTuple, Optional

import torch
from torch import nn
from torch.distributions import Normal

from avrnn.models.fused import fused_trajectory
from avrnn.models.emissions import EMISSIONS
from avrnn.models.layers import ACTIVATIONS, MLP, GaussianMLP
from avrnn.models.losses import gaussian_kl

RNN_CELLS = {"gru": nn.GRUCell, "lstm": nn.LSTMCell}
PRIOR_PATHS = ("shared", "own")  # prior samples along the posterior's h path, or driving their own
RECURRENCE_INPUTS = ("xz", "x")  # f_theta reads phi_x(x_t) and phi_z(z_t) (Sections II, VI), or x only (Alg. 1-2)
CHOICES = {"rnn": tuple(RNN_CELLS), "emission": tuple(EMISSIONS), "prior_path": PRIOR_PATHS,
           "recurrence_input": RECURRENCE_INPUTS, "activation": tuple(ACTIVATIONS)}
# model.<block>_widths: each MLP's layer widths; null = the two-layer default below, [] = the identity
BLOCKS = ("phi_x", "phi_z", "tr", "ps", "em")
SIZES = ("input_size", "z_dim", "hidden_size", "x_features", "z_features", "mlp_hidden", "std_floor", "variance_floor")


class ModelConfigError(ValueError):
    """A model value that cannot work; the message names the key (model.<key>) and what to use."""


@dataclass
class VRNNConfig:
    """The VRNN's architecture: the `model` keys that shape it (avrnn.config.ModelConfig adds the
    training keys to the same node). Checkpoints store it as plain data (their `model` dict);
    `check` is the one place that checks these values, reached by avrnn.config.validate at start-up."""

    input_size: int  # features per timestep (the `model` node takes the data representation's feature size)
    z_dim: int = 32
    hidden_size: int = 256
    x_features: int = 128
    z_features: int = 128
    mlp_hidden: int = 256
    rnn: str = "gru"  # gru | lstm
    prior_path: str = "shared"  # shared (prior samples along the posterior's h path, the paper's) | own
    recurrence_input: str = "xz"  # xz: h_t = f(h_{t-1}, phi_x(x_t), phi_z(z_t)) | x: phi_x(x_t) only (Alg. 1-2)
    emission: str = "gaussian"  # gaussian | bernoulli | itakura_saito (avrnn.models.emissions)
    std_floor: float = 1e-3  # Gaussian stds are softplus(.) + std_floor, capped at std_max
    std_max: float = 100.0
    variance_floor: float = 1e-6  # itakura_saito: each bin's predicted power is exp(.) + variance_floor
    activation: str = "relu"  # after every layer of the MLPs below: relu | tanh | elu | gelu
    # Layer widths of each MLP (phi_x, phi_z, TR, PS, EM before their read-outs); [] = the identity; null =
    # two layers: [mlp_hidden, x_features] (phi_x), [mlp_hidden, z_features] (phi_z), [mlp_hidden, mlp_hidden]
    # (tr, ps, em). A list replaces those keys for its block: phi_x's last width (input_size if []) is what the
    # cell and PS read of x_t, phi_z's (z_dim if []) what the cell and EM read of z_t. Training warns where a key
    # set away from its default has no effect (sizes_without_effect).
    phi_x_widths: Optional[List[int]] = None
    phi_z_widths: Optional[List[int]] = None
    tr_widths: Optional[List[int]] = None
    ps_widths: Optional[List[int]] = None
    em_widths: Optional[List[int]] = None

    @classmethod
    def from_dict(cls, model: Mapping[str, Any]) -> VRNNConfig:
        """The architecture keys of a `model` node or of a checkpoint's (other keys, the optimizers',
        are not the model's; keys an earlier version lacks take their defaults)."""
        model = dict(model)
        if "frame_size" in model and "input_size" not in model:  # earlier versions: waveform samples per frame
            model["input_size"] = model.pop("frame_size")
        return cls(**{f.name: model[f.name] for f in fields(cls) if f.name in model})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def widths(self, block: str) -> list[int]:
        """The layer widths of one MLP (BLOCKS: phi_x, phi_z, tr, ps, em): <block>_widths, or the default."""
        given = getattr(self, f"{block}_widths")
        if given is not None:
            return [int(width) for width in given]
        last = {"phi_x": self.x_features, "phi_z": self.z_features}.get(block, self.mlp_hidden)
        return [self.mlp_hidden, last]

    def check(self) -> VRNNConfig:
        """Raises ModelConfigError naming the key and the allowed values."""
        return self.check_choices().check_sizes().check_widths()

    def check_widths(self) -> VRNNConfig:
        """Each <block>_widths: null, or a list of positive integers."""
        for block in BLOCKS:
            given = getattr(self, f"{block}_widths")
            if given is not None and (isinstance(given, (str, bytes)) or not all(
                    isinstance(width, int) and not isinstance(width, bool) and width > 0 for width in given)):
                raise ModelConfigError(f"model.{block}_widths={given!r} must be a list of positive layer widths "
                                       f"([] = the identity, null = the default two layers)")
        return self

    def sizes_without_effect(self) -> list[str]:
        """x_features, z_features and mlp_hidden shape only the blocks whose <block>_widths is null. One set
        away from its default where the widths replace it changes nothing: a line for each (training logs
        them as warnings; the run goes on, since the value is harmless)."""
        defaults, idle = {f.name: f.default for f in fields(self)}, []
        for key, block in (("x_features", "phi_x"), ("z_features", "phi_z")):
            given, value = getattr(self, f"{block}_widths"), getattr(self, key)
            used = (given[-1] if given else self.input_size if block == "phi_x" else self.z_dim) if given is not None \
                else value
            if value != defaults[key] and value != used:
                how = (f"sets {block}'s layers, whose output ({used}) is what the model reads; change the last of "
                       f"model.{block}_widths" if given else
                       f"makes {block} the identity: the model reads {'x_t' if block == 'phi_x' else 'z_t'} itself "
                       f"({used} features)")
                idle.append(f"model.{key}={value} has no effect: model.{block}_widths={list(given)} {how}, or set "
                            f"model.{block}_widths=null to use model.{key}")
        if self.mlp_hidden != defaults["mlp_hidden"] and all(getattr(self, f"{b}_widths") is not None for b in BLOCKS):
            idle.append(f"model.mlp_hidden={self.mlp_hidden} has no effect: every model.<block>_widths is set; change "
                        f"the widths, or set one of them to null to use model.mlp_hidden")
        return idle

    def check_choices(self) -> VRNNConfig:
        """The names that pick a component (rnn, emission, prior_path, recurrence_input)."""
        for key, allowed in CHOICES.items():
            if getattr(self, key) not in allowed:
                raise ModelConfigError(f"model.{key}={getattr(self, key)!r} is not allowed; choose one of "
                                       f"{', '.join(allowed)}")
        return self

    def check_sizes(self) -> VRNNConfig:
        """Sizes and the std bounds: positive, std_floor < std_max."""
        for key in SIZES:
            if getattr(self, key) is None or getattr(self, key) <= 0:
                raise ModelConfigError(f"model.{key} must be positive, got {getattr(self, key)}")
        if not self.std_floor < self.std_max:
            raise ModelConfigError(f"need 0 < std_floor < std_max, got {self.std_floor} and {self.std_max}")
        return self


@dataclass
class VRNNOutput:
    """Per-step terms of one teacher-forced pass; every per-step term is zero at padded steps."""

    rec_log_lik: torch.Tensor  # (B, T)    log p(x_t | z_t, h_{t-1}), summed over the frame
    kl: torch.Tensor  # (B, T, Z) KL(q(z_t | x_t, h_{t-1}) || p(z_t | h_{t-1})) per latent dim
    z_post: torch.Tensor  # (B, T, Z) z_t ~ q, the samples that drive the recurrence
    z_prior: torch.Tensor | None  # (B, T, Z) z_t ~ p(z_t | h_{t-1}) (model.prior_path; None if not asked)
    h: torch.Tensor  # (B, T, H) h_{t-1} along the posterior's path (where q and p are evaluated)
    h_prior: torch.Tensor  # (B, T, H) h_{t-1} the prior samples were drawn at (h itself on the shared path)
    posterior: Normal
    prior: Normal
    emission: torch.distributions.Distribution  # p(x_t | z_t, h_{t-1}) for all t
    mask: torch.Tensor  # (B, T), 1 for real frames


class Latents(NamedTuple):
    """What the critic reads: posterior and prior latent sequences (B, T, Z) and the h_{t-1} each
    was drawn at (B, T, H; the same tensor on the shared path)."""

    z_post: torch.Tensor
    z_prior: torch.Tensor
    h: torch.Tensor
    h_prior: torch.Tensor


@dataclass
class Step:
    """One timestep: the distributions at h_{t-1}, the sample z_t, and the state holding h_t."""

    prior: Normal
    posterior: Normal | None  # None when generating (z_t drawn from the prior)
    z: torch.Tensor
    emission: torch.distributions.Distribution
    x: torch.Tensor  # the frame the recurrence read: the data, or the emission's mean when generating
    state: torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class VRNN(nn.Module):
    """VRNN over sequences of features x of shape (B, T, input_size) with a (B, T) mask; its architecture
    is one VRNNConfig (self.config)."""

    def __init__(self, config: VRNNConfig | None = None, **keys):
        """VRNN(VRNNConfig(...)), or the same keys as keyword arguments: VRNN(input_size=200, z_dim=32).
        Raises ModelConfigError for a value VRNNConfig.check refuses."""
        super().__init__()
        if config is None:
            config = VRNNConfig(**keys)
        elif not isinstance(config, VRNNConfig) or keys:
            raise TypeError("VRNN takes a VRNNConfig or keyword arguments (VRNN(input_size=200, ...)), not both")
        self.config = config.check()  # the one copy of the architecture: the properties below read it
        input_size, z_dim, hidden_size = config.input_size, config.z_dim, config.hidden_size
        std_floor, std_max, activation = config.std_floor, config.std_max, ACTIVATIONS[config.activation]
        self.phi_x = MLP(input_size, config.widths("phi_x"), activation)
        self.phi_z = MLP(z_dim, config.widths("phi_z"), activation)
        x_features, z_features = self.phi_x.out_features, self.phi_z.out_features
        self.f_theta = RNN_CELLS[config.rnn](x_features + (z_features if config.recurrence_input == "xz" else 0),
                                             hidden_size)
        self.transition = GaussianMLP(hidden_size, config.widths("tr"), z_dim, std_floor, std_max, activation)
        self.proposal = GaussianMLP(x_features + hidden_size, config.widths("ps"), z_dim, std_floor, std_max,
                                    activation)
        # head_first: the emission's initial weights drawn in the order of earlier versions (same seed, same model)
        build_emission, _ = EMISSIONS[config.emission]
        self.emission = build_emission(z_features + hidden_size, config.widths("em"), input_size, config)

    z_dim = property(lambda self: self.config.z_dim)
    hidden_size = property(lambda self: self.config.hidden_size)
    rnn = property(lambda self: self.config.rnn)
    emission_kind = property(lambda self: self.config.emission)
    prior_path = property(lambda self: self.config.prior_path)
    recurrence_input = property(lambda self: self.config.recurrence_input)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """As in Algorithms 1 and 2: theta (RNN cell), phi (emission), tau (proposal), omega
        (transition), and the encoders phi_x, phi_z."""
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

    def prior(self, h_prev: torch.Tensor) -> Normal:
        """TR_omega(h_{t-1})."""
        return self.transition(h_prev)

    def posterior(self, x_features: torch.Tensor, h_prev: torch.Tensor) -> Normal:
        """PS_tau(phi_x(x_t), h_{t-1})."""
        return self.proposal(torch.cat([x_features, h_prev], -1))

    def emission_distribution(self, z_features: torch.Tensor, h_prev: torch.Tensor):
        """EM_phi(phi_z(z_t), h_{t-1})."""
        return self.emission(torch.cat([z_features, h_prev], -1))

    def recurrence(self, x_features: torch.Tensor, z_features: torch.Tensor, state):
        """f_theta: h_t from h_{t-1}, phi_x(x_t) and phi_z(z_t) (or phi_x(x_t) only, recurrence_input=x)."""
        inputs = torch.cat([x_features, z_features], -1) if self.recurrence_input == "xz" else x_features
        return self.f_theta(inputs, state)

    def expected_frames(self, emission) -> torch.Tensor:
        """The emission's mean: what the model 'says' for each frame (probabilities if Bernoulli, powers
        if Itakura-Saito)."""
        return emission.mean

    def step(self, state, x_t: torch.Tensor | None = None, noise: torch.Tensor | None = None) -> Step:
        """One timestep of Algorithm 1: TR -> PS -> sample -> phi_z -> EM -> f_theta. With x_t
        (teacher forcing) z_t is drawn from the posterior; without, from the prior, and the
        recurrence reads the emission's mean (generation). noise: the standard normal draw of z_t
        (default: a fresh one)."""
        h = self.hidden(state)
        prior = self.prior(h)
        x_features = None if x_t is None else self.phi_x(x_t)
        posterior = None if x_t is None else self.posterior(x_features, h)
        source = prior if posterior is None else posterior
        z = source.loc + source.scale * (torch.randn_like(source.loc) if noise is None else noise)
        z_features = self.phi_z(z)
        emission = self.emission_distribution(z_features, h)
        if x_t is None:
            x_t = self.expected_frames(emission)
            x_features = self.phi_x(x_t)
        return Step(prior, posterior, z, emission, x_t, self.recurrence(x_features, z_features, state))

    # --- passes --------------------------------------------------------------------------------
    def draw_noise(self, batch: int, steps: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standard normal noise for the posterior and the prior samples, (T, B, Z) each, drawn
        before the loop (the reference uses the same draws). One draw per step: padding a batch
        with more steps then leaves the noise of the real steps unchanged (one big draw would not:
        torch's CPU sampler fills blocks of 16, so a longer draw changes the prefix)."""
        noise = torch.stack([torch.randn(2, batch, self.z_dim, dtype=like.dtype, device=like.device)
                             for _ in range(steps)])
        return noise[:, 0], noise[:, 1]

    def forward(self, x: torch.Tensor, mask: torch.Tensor, prior_samples: bool = True) -> VRNNOutput:
        """Teacher-forced pass: h follows posterior samples; prior samples (model.prior_path) share
        that h or drive their own path (skipped with prior_samples=False: the likelihood phases)."""
        mask = mask.to(x.dtype)
        path = self._trajectory(x, prior_samples)
        emission = self.emission_distribution(path.z_features, path.h_prev)
        return VRNNOutput(
            rec_log_lik=emission.log_prob(x).sum(-1) * mask,
            kl=gaussian_kl(path.posterior, path.prior) * mask.unsqueeze(-1),
            z_post=path.z_post, z_prior=path.z_prior, h=path.h_prev, h_prior=path.h_prior,
            posterior=path.posterior, prior=path.prior, emission=emission, mask=mask,
        )

    def latents(self, x: torch.Tensor) -> Latents:
        """The latent sequences of forward (same noise) without the emission, which the critic and
        adversarial phases do not use."""
        path = self._trajectory(x)
        return Latents(path.z_post, path.z_prior, path.h_prev, path.h_prior)

    def _trajectory(self, x: torch.Tensor, prior_samples: bool = True):
        """The fused pass over all t (avrnn.models.fused.Trajectory)."""
        post_noise, prior_noise = self.draw_noise(x.shape[0], x.shape[1], x)
        return fused_trajectory(self, self.phi_x(x), post_noise, prior_noise, prior_samples)

    def particle_step(self, x_t: torch.Tensor, state):
        """One filtering step for FIVO: z_t ~ q(z_t | x_t, h_{t-1}), the incremental log weight
        log p(x_t | z_t, h) + log p(z_t | h) - log q(z_t | x_t, h) (summed over dims), new state."""
        step = self.step(state, x_t)
        log_alpha = (step.emission.log_prob(x_t).sum(-1) + step.prior.log_prob(step.z).sum(-1)
                     - step.posterior.log_prob(step.z).sum(-1))
        return log_alpha, step.state

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Teacher-forced reconstruction: the emission mean given posterior samples, (B, T, F)."""
        return self.expected_frames(self(x, mask, prior_samples=False).emission)

    @torch.no_grad()
    def sample(self, batch: int, steps: int, device=None) -> torch.Tensor:
        """Free-running generation: z_t ~ TR(h_{t-1}), x_t = mean of EM(z_t, h_{t-1}), and the
        recurrence is fed its own outputs (no teacher forcing). Returns (batch, steps, frame)."""
        like = next(self.parameters()) if device is None else torch.empty(0, device=device)
        state, frames = self.initial_state(batch, like), []
        for _ in range(steps):
            step = self.step(state)
            state = step.state
            frames.append(step.x)
        return torch.stack(frames, 1)
