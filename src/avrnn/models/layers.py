"""Small building blocks shared by the VRNN and the critic, with named layers (fc1, fc2, mean, ...)
so that code reading them (the fused pass, avrnn.models.fused) names what it reads."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.distributions import Bernoulli, Normal
from torch.nn import functional as F


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


class GaussianMLP(MLP):
    """An MLP, then a diagonal Gaussian: mean, and std = softplus(raw_std) + floor, capped at std_max.

    The additive floor keeps log-std bounded below (no NaN in KL/NLL when a std collapses) while
    still passing gradients; the cap bounds it above. head_first: draw the read-out's initial
    weights before the MLP's (the emission's order in earlier versions: a seed keeps its weights).
    """

    def __init__(self, in_features: int, hidden: int, out_features: int, std_floor: float, std_max: float,
                 head_first: bool = False):
        if not 0 < std_floor < std_max:
            raise ValueError(f"need 0 < std_floor < std_max, got {std_floor} and {std_max}")
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


class BernoulliMLP(MLP):
    """An MLP, then independent Bernoulli logits (model.emission=bernoulli)."""

    def __init__(self, in_features: int, hidden: int, out_features: int, head_first: bool = False):
        head = nn.Linear(hidden, out_features) if head_first else None
        super().__init__(in_features, hidden, hidden)
        self.logits = head or nn.Linear(hidden, out_features)

    def forward(self, x: torch.Tensor) -> Bernoulli:
        return Bernoulli(logits=self.logits(self.features(x)), validate_args=False)
