"""Small building blocks shared by the VRNN and the critic."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def mlp(in_features: int, hidden: int, out_features: int, layers: int = 2,
        activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """`layers` Linear layers, each followed by `activation` (the paper's phi and FNET blocks)."""
    if layers < 1:
        raise ValueError(f"an MLP needs at least one layer, got layers={layers}")
    modules: list[nn.Module] = []
    width = in_features
    for i in range(layers):
        modules += [nn.Linear(width, out_features if i == layers - 1 else hidden), activation()]
        width = hidden
    return nn.Sequential(*modules)


class GaussianHead(nn.Module):
    """Maps features to a diagonal Gaussian: mean and std = softplus(raw) + floor, capped at std_max.

    The additive floor keeps log-std bounded below (no NaN in KL/NLL when a std collapses) while
    still passing gradients; the cap bounds it above.
    """

    def __init__(self, in_features: int, out_features: int, std_floor: float, std_max: float):
        super().__init__()
        if not 0 < std_floor < std_max:
            raise ValueError(f"need 0 < std_floor < std_max, got {std_floor} and {std_max}")
        self.mean = nn.Linear(in_features, out_features)
        self.raw_std = nn.Linear(in_features, out_features)
        self.std_floor = std_floor
        self.std_max = std_max

    def std(self, raw_std: torch.Tensor) -> torch.Tensor:
        return (F.softplus(raw_std) + self.std_floor).clamp(max=self.std_max)

    def forward(self, features: torch.Tensor) -> torch.distributions.Normal:
        # no argument validation: a NaN must reach the loss, where the training step detects and skips it
        return torch.distributions.Normal(self.mean(features), self.std(self.raw_std(features)), validate_args=False)
