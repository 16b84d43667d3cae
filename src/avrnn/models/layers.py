"""Small building blocks shared by the VRNN and the critic. Code that reads their weights instead of
calling them (the fused pass, avrnn.models.fused) reads them through `layers()`, the one place that
knows each block's layout."""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import nn
from torch.distributions import Bernoulli, Normal
from torch.nn import functional as F


class MLPLayers(NamedTuple):
    """An MLP's layers: activation(fc2(activation(fc1(x))))."""

    fc1: nn.Linear
    fc2: nn.Linear
    activation: Callable[[torch.Tensor], torch.Tensor]


class GaussianLayers(NamedTuple):
    """A GaussianMLP's layers: features = MLP(x); mean = mean(features); std = std(raw_std(features))."""

    fc1: nn.Linear
    fc2: nn.Linear
    activation: Callable[[torch.Tensor], torch.Tensor]
    mean: nn.Linear
    raw_std: nn.Linear
    std: Callable[[torch.Tensor], torch.Tensor]


class MLP(nn.Module):
    """Two linear layers, each followed by `activation` (the paper's phi and FNET blocks)."""

    def __init__(self, in_features: int, hidden: int, out_features: int,
                 activation: Callable[[], nn.Module] = nn.ReLU):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)
        self.activation = activation()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.fc2(self.activation(self.fc1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def layers(self) -> MLPLayers:
        """The layers `features` applies, in order (the activation as a bound function)."""
        return MLPLayers(self.fc1, self.fc2, self.activation.forward)


class GaussianMLP(MLP):
    """An MLP, then a diagonal Gaussian: mean, and std = softplus(raw_std) + floor, capped at std_max.

    The additive floor keeps log-std bounded below (no NaN in KL/NLL when a std collapses) while
    still passing gradients; the cap bounds it above (0 < std_floor < std_max: VRNNConfig.check).
    head_first: draw the read-out's initial weights before the MLP's (the emission's order in earlier
    versions: a seed keeps its weights).
    """

    def __init__(self, in_features: int, hidden: int, out_features: int, std_floor: float, std_max: float,
                 head_first: bool = False):
        head = [] if not head_first else [nn.Linear(hidden, out_features), nn.Linear(hidden, out_features)]
        super().__init__(in_features, hidden, hidden)
        self.mean, self.raw_std = head or [nn.Linear(hidden, out_features), nn.Linear(hidden, out_features)]
        self.std_floor, self.std_max = std_floor, std_max

    def std(self, raw_std: torch.Tensor) -> torch.Tensor:
        return (F.softplus(raw_std) + self.std_floor).clamp(max=self.std_max)

    def forward(self, x: torch.Tensor) -> Normal:
        features = self.features(x)
        # no argument validation: a NaN must reach the loss, where the training step detects and skips it
        return Normal(self.mean(features), self.std(self.raw_std(features)), validate_args=False)

    def layers(self) -> GaussianLayers:
        """The layers `forward` applies, in order."""
        return GaussianLayers(self.fc1, self.fc2, self.activation.forward, self.mean, self.raw_std, self.std)


class BernoulliMLP(MLP):
    """An MLP, then independent Bernoulli logits (model.emission=bernoulli)."""

    def __init__(self, in_features: int, hidden: int, out_features: int, head_first: bool = False):
        head = nn.Linear(hidden, out_features) if head_first else None
        super().__init__(in_features, hidden, hidden)
        self.logits = head or nn.Linear(hidden, out_features)

    def forward(self, x: torch.Tensor) -> Bernoulli:
        return Bernoulli(logits=self.logits(self.features(x)), validate_args=False)
