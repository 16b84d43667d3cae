"""Small building blocks shared by the VRNN and the critic. Code that reads their weights instead of
calling them (the fused pass, avrnn.models.fused) reads them through `layers()`, the one place that
knows each block's layout."""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import torch
from torch import nn
from torch.distributions import Bernoulli, Normal
from torch.nn import functional as F

# model.activation -> the nonlinearity after every layer of the VRNN's MLPs (the DVAE benchmark's VRNN uses tanh)
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU}


class MLPLayers(NamedTuple):
    """An MLP's layers: activation(linear_n(... activation(linear_1(x)))); no linears = identity."""

    linears: tuple[nn.Linear, ...]
    activation: Callable[[torch.Tensor], torch.Tensor]


class GaussianLayers(NamedTuple):
    """A GaussianMLP's layers: features = MLP(x); mean = mean(features); std = std(raw_std(features))."""

    linears: tuple[nn.Linear, ...]
    activation: Callable[[torch.Tensor], torch.Tensor]
    mean: nn.Linear
    raw_std: nn.Linear
    std: Callable[[torch.Tensor], torch.Tensor]


def layer_names(depth: int) -> list[str]:
    """The linear layers' attribute names, fc1 ... fc<depth> (a checkpoint's parameter names)."""
    return [f"fc{i}" for i in range(1, depth + 1)]


class MLP(nn.Module):
    """Linear layers of the given widths, each followed by `activation` (the paper's phi and FNET
    blocks: two layers); no widths = the identity (the DVAE benchmark's empty dense_* layers).
    `out_features` is the last width, or in_features for the identity."""

    def __init__(self, in_features: int, widths: Sequence[int], activation: Callable[[], nn.Module] = nn.ReLU):
        super().__init__()
        self.depth, sizes = len(widths), [in_features, *widths]
        for name, n_in, n_out in zip(layer_names(self.depth), sizes, sizes[1:]):
            self.add_module(name, nn.Linear(n_in, n_out))
        self.activation = activation()
        self.out_features = sizes[-1]

    def linears(self) -> tuple[nn.Linear, ...]:
        return tuple(getattr(self, name) for name in layer_names(self.depth))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for linear in self.linears():
            x = self.activation(linear(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def layers(self) -> MLPLayers:
        """The layers `features` applies, in order (the activation as a bound function)."""
        return MLPLayers(self.linears(), self.activation.forward)


class GaussianMLP(MLP):
    """An MLP, then a diagonal Gaussian: mean, and std = softplus(raw_std) + floor, capped at std_max.

    The additive floor keeps log-std bounded below (no NaN in KL/NLL when a std collapses) while
    still passing gradients; the cap bounds it above (0 < std_floor < std_max: VRNNConfig.check).
    head_first: draw the read-out's initial weights before the MLP's (the emission's order in earlier
    versions: a seed keeps its weights).
    """

    def __init__(self, in_features: int, widths: Sequence[int], out_features: int, std_floor: float,
                 std_max: float, activation: Callable[[], nn.Module] = nn.ReLU, head_first: bool = False):
        n_in = widths[-1] if widths else in_features
        head = [] if not head_first else [nn.Linear(n_in, out_features), nn.Linear(n_in, out_features)]
        super().__init__(in_features, widths, activation)
        self.mean, self.raw_std = head or [nn.Linear(n_in, out_features), nn.Linear(n_in, out_features)]
        self.std_floor, self.std_max = std_floor, std_max

    def std(self, raw_std: torch.Tensor) -> torch.Tensor:
        return (F.softplus(raw_std) + self.std_floor).clamp(max=self.std_max)

    def forward(self, x: torch.Tensor) -> Normal:
        features = self.features(x)
        # no argument validation: a NaN must reach the loss, where the training step detects and skips it
        return Normal(self.mean(features), self.std(self.raw_std(features)), validate_args=False)

    def layers(self) -> GaussianLayers:
        """The layers `forward` applies, in order."""
        return GaussianLayers(self.linears(), self.activation.forward, self.mean, self.raw_std, self.std)


class BernoulliMLP(MLP):
    """An MLP, then independent Bernoulli logits (model.emission=bernoulli)."""

    def __init__(self, in_features: int, widths: Sequence[int], out_features: int,
                 activation: Callable[[], nn.Module] = nn.ReLU, head_first: bool = False):
        head = nn.Linear(widths[-1] if widths else in_features, out_features) if head_first else None
        super().__init__(in_features, widths, activation)
        self.logits = head or nn.Linear(self.out_features, out_features)

    def forward(self, x: torch.Tensor) -> Bernoulli:
        return Bernoulli(logits=self.logits(self.features(x)), validate_args=False)
