"""The VRNN's building blocks (avrnn.models.layers) held to their docstrings: the std's floor and cap, the
activation they are given, and the order a seed draws their weights in (what keeps a seed's model)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from avrnn.models.emissions import ItakuraSaitoMLP
from avrnn.models.layers import BernoulliMLP, GaussianMLP


def seeded_linears(*shapes: tuple[int, int]) -> list[nn.Linear]:
    torch.manual_seed(0)
    return [nn.Linear(n_in, n_out) for n_in, n_out in shapes]


def weights(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach() for p in module.parameters()]


def test_the_std_is_softplus_plus_the_floor_capped_at_the_maximum():
    layer = GaussianMLP(3, [4], 2, std_floor=0.01, std_max=5.0)
    std = layer.std(torch.tensor([-60.0, 0.0, 1.0, 60.0]))
    expected = torch.tensor([0.01, math.log(2.0) + 0.01, math.log1p(math.e) + 0.01, 5.0])
    torch.testing.assert_close(std, expected)
    assert bool(std.min() >= torch.tensor(0.01))  # never below the floor (float32), however negative the read-out


@pytest.mark.parametrize("widths", [[4], []])
@pytest.mark.parametrize("head_first", [None, True])
def test_a_seed_draws_the_gaussian_heads_weights_in_the_documented_order(head_first, widths):
    """By default the MLP's layers first, then mean and raw_std; head_first: the two read-outs first."""
    torch.manual_seed(0)
    layer = GaussianMLP(3, widths, 2, std_floor=0.01, std_max=5.0, **({"head_first": True} if head_first else {}))
    n_in = widths[-1] if widths else 3
    mlp = [(3, w) for w in widths]
    drawn = seeded_linears(*([(n_in, 2)] * 2 + mlp if head_first else mlp + [(n_in, 2)] * 2))
    expected = drawn[2:] + drawn[:2] if head_first else drawn  # parameters: the MLP's, then mean, raw_std
    assert len(weights(layer)) == 2 * len(expected)  # the MLP's layers and two read-outs, nothing else
    for got, want in zip(weights(layer), [w for linear in expected for w in weights(linear)]):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert layer(torch.randn(5, 3)).mean.shape == (5, 2)


@pytest.mark.parametrize("head", ["bernoulli", "itakura_saito"])
@pytest.mark.parametrize("widths", [[4], []])
@pytest.mark.parametrize("head_first", [None, True])
def test_a_seed_draws_a_one_read_out_heads_weights_in_the_documented_order(head_first, widths, head):
    torch.manual_seed(0)
    options = {"head_first": True} if head_first else {}
    layer = BernoulliMLP(3, widths, 2, **options) if head == "bernoulli" else ItakuraSaitoMLP(3, widths, 2, 1e-6, **options)
    n_in = widths[-1] if widths else 3
    mlp = [(3, w) for w in widths]
    drawn = seeded_linears(*([(n_in, 2)] + mlp if head_first else mlp + [(n_in, 2)]))
    expected = drawn[1:] + drawn[:1] if head_first else drawn
    assert len(weights(layer)) == 2 * len(expected)
    for got, want in zip(weights(layer), [w for linear in expected for w in weights(linear)]):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert layer(torch.randn(5, 3)).mean.shape == (5, 2)


@pytest.mark.parametrize("widths", [[], [4, 5]])
def test_the_heads_apply_the_activation_they_are_given(widths):
    x = torch.randn(7, 3)
    gaussian = GaussianMLP(3, widths, 2, std_floor=0.01, std_max=5.0, activation=nn.Tanh)
    bernoulli = BernoulliMLP(3, widths, 2, activation=nn.Tanh)
    for layer, read_out in ((gaussian, lambda f: gaussian.mean(f)), (bernoulli, lambda f: bernoulli.logits(f))):
        features = x
        for linear in layer.linears():
            features = torch.tanh(linear(features))
        assert isinstance(layer.activation, nn.Tanh)
        got = layer(x).mean if layer is gaussian else layer(x).logits
        torch.testing.assert_close(got, read_out(features))
    assert gaussian.mean.in_features == bernoulli.logits.in_features == (widths[-1] if widths else 3)
