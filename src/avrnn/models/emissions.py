"""The emission EM_phi(z_t, h_{t-1}): p(x_t | z_t, h_{t-1}) over each timestep's features, one pluggable
choice (`model.emission`, EMISSIONS). Each kind is a read-out on the emission's MLP and states the
values its density is defined on (`support`), which the representation's features must lie in.

  gaussian       N(mean, std^2) per feature: real-valued features (z-scored waveform frames)
  bernoulli      Bernoulli(logits) per feature: a likelihood only for features in [0, 1]
  itakura_saito  the power P_f >= 0 of each STFT bin, exponential with a predicted variance v_f (the
                 density of |X_f|^2 where X_f is circular complex Gaussian with variance v_f; Fevotte et
                 al. 2009, the likelihood of the DVAE benchmark, Girin et al. 2021):
                     -log p(P_f) = log v_f + P_f / v_f = d_IS(P_f | v_f) + log P_f + 1,
                 the Itakura-Saito divergence plus terms the model does not change. v_f = variance_floor
                 + exp(raw), raw softly bounded (tanh) so v_f stays finite; the floor keeps the bound finite (as v_f -> 0
                 at P_f = 0, -log p -> -inf) and is stored with the model.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn
from torch.distributions import Distribution, constraints

from avrnn.models.layers import ACTIVATIONS, MLP, BernoulliMLP, GaussianMLP

MAX_LOG_VARIANCE = 80.0  # exp(80) ~ 5.5e34: far above any power, below float32's 3.4e38


class ItakuraSaito(Distribution):
    """Independent exponential densities of powers P >= 0 with mean (variance of X) `variance`, (..., F):
    log_prob(P) = -log v - P / v per bin (no validation: a NaN must reach the loss, where the training step
    skips it). mean = v; sample = v * Exp(1)."""

    arg_constraints = {"expected_power": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, variance: torch.Tensor, validate_args: bool | None = False):
        self.expected_power = variance  # v: the variance of X, the mean of P = |X|^2
        super().__init__(batch_shape=variance.shape, validate_args=validate_args)

    @property
    def mean(self) -> torch.Tensor:
        return self.expected_power

    @property
    def variance(self) -> torch.Tensor:  # of P: an exponential's variance is its mean squared
        return self.expected_power.pow(2)

    def log_prob(self, power: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(power)
        return -(self.expected_power.log() + power / self.expected_power)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        v = self.expected_power
        return v * torch.empty(shape, dtype=v.dtype, device=v.device).exponential_()

    def divergence(self, power: torch.Tensor) -> torch.Tensor:
        """d_IS(P | v) = P/v - log(P/v) - 1 per bin (>= 0, 0 at v = P): -log_prob(P) - log P - 1."""
        ratio = power / self.expected_power
        return ratio - ratio.log() - 1


def itakura_saito_floor(power: torch.Tensor, variance_floor: float) -> torch.Tensor:
    """The least -log p(P) any variance v >= variance_floor can give each bin: log P + 1 where P >= the
    floor (at v = P), else log floor + P / floor (at v = floor)."""
    floor = torch.as_tensor(variance_floor, dtype=power.dtype)
    return torch.where(power >= floor, power.clamp(min=variance_floor).log() + 1, floor.log() + power / floor)


class ItakuraSaitoMLP(MLP):
    """An MLP, then a per-bin variance: v = variance_floor + exp(M tanh(raw / M)), M = MAX_LOG_VARIANCE: about
    exp(raw) over the log-powers speech has (|raw| << M), smoothly bounded by exp(+-M) (unlike a clamp, a bin
    pushed beyond the bound still has a gradient back)."""

    def __init__(self, in_features: int, widths: Sequence[int], out_features: int, variance_floor: float,
                 activation: Callable[[], nn.Module] = nn.ReLU, head_first: bool = False):
        head = nn.Linear(widths[-1] if widths else in_features, out_features) if head_first else None
        super().__init__(in_features, widths, activation)
        self.raw_variance = head or nn.Linear(self.out_features, out_features)
        self.variance_floor = variance_floor

    def forward(self, x: torch.Tensor) -> ItakuraSaito:
        raw = self.raw_variance(self.features(x))
        return ItakuraSaito((MAX_LOG_VARIANCE * torch.tanh(raw / MAX_LOG_VARIANCE)).exp() + self.variance_floor)


class Support:
    """The values an emission's density is defined on, per feature: [low, high]."""

    def __init__(self, low: float, high: float, words: str):
        self.low, self.high, self.words = low, high, words

    def holds(self, low: float, high: float) -> bool:
        return self.low <= low and high <= self.high


REAL = Support(-math.inf, math.inf, "real values")
UNIT = Support(0.0, 1.0, "values in [0, 1]")
NONNEGATIVE = Support(0.0, math.inf, "non-negative values (powers)")


def gaussian(in_features: int, widths: Sequence[int], out_features: int, config) -> GaussianMLP:
    return GaussianMLP(in_features, widths, out_features, config.std_floor, config.std_max,
                       ACTIVATIONS[config.activation], head_first=True)


def bernoulli(in_features: int, widths: Sequence[int], out_features: int, config) -> BernoulliMLP:
    return BernoulliMLP(in_features, widths, out_features, ACTIVATIONS[config.activation], head_first=True)


def itakura_saito(in_features: int, widths: Sequence[int], out_features: int, config) -> ItakuraSaitoMLP:
    return ItakuraSaitoMLP(in_features, widths, out_features, config.variance_floor, ACTIVATIONS[config.activation],
                           head_first=True)


# model.emission -> (the read-out's builder, the support of its density). head_first: the read-out's
# initial weights drawn before the MLP's, the order of earlier versions (a seed keeps its weights).
EMISSIONS = {"gaussian": (gaussian, REAL), "bernoulli": (bernoulli, UNIT), "itakura_saito": (itakura_saito, NONNEGATIVE)}
