"""LoopLinear gives exactly the gradients of a plain linear layer applied in a recurrent loop."""

import pytest
import torch
from torch.nn import functional as F

from avrnn.models.loop_linear import LoopLinear


def run_loop(weight, bias, inputs, loop: bool, skip_last_output: bool = False):
    """h_t = tanh(x_t + W h_{t-1} + b); the loss reads every h_t (but the last, if asked)."""
    linear = LoopLinear(weight, bias) if loop else None
    h = torch.zeros(inputs.shape[1], weight.shape[1], dtype=inputs.dtype)
    outputs = []
    for t, x_t in enumerate(inputs):
        outputs.append(h)
        h = torch.tanh(x_t + (linear(h, t == 0) if loop else F.linear(h, weight, bias)))
    if not skip_last_output:
        outputs.append(h)
    return torch.stack(outputs).pow(2).sum()


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("skip_last_output", [False, True])
def test_gradients_equal_plain_autograd(with_bias, skip_last_output):
    torch.manual_seed(0)
    weight = torch.randn(5, 5, dtype=torch.double, requires_grad=True)
    bias = torch.randn(5, dtype=torch.double, requires_grad=True) if with_bias else None
    inputs = torch.randn(6, 3, 5, dtype=torch.double, requires_grad=True)
    params = [weight, inputs] + ([bias] if with_bias else [])
    plain = torch.autograd.grad(run_loop(weight, bias, inputs, False, skip_last_output), params)
    looped = torch.autograd.grad(run_loop(weight, bias, inputs, True, skip_last_output), params)
    for a, b in zip(plain, looped):
        torch.testing.assert_close(a, b)


def test_frozen_weight_still_passes_input_gradients():
    """The adversarial phase freezes theta: the cell's weights need no gradient, the inputs do."""
    torch.manual_seed(0)
    weight = torch.randn(4, 4, dtype=torch.double)
    inputs = torch.randn(5, 2, 4, dtype=torch.double, requires_grad=True)
    plain, = torch.autograd.grad(run_loop(weight, None, inputs, False), [inputs])
    looped, = torch.autograd.grad(run_loop(weight, None, inputs, True), [inputs])
    torch.testing.assert_close(plain, looped)


def test_bf16_autocast_gives_float32_gradients_close_to_float32_training():
    torch.manual_seed(0)
    weight = torch.randn(8, 8, requires_grad=True)
    inputs = torch.randn(4, 3, 8)
    reference, = torch.autograd.grad(run_loop(weight, None, inputs * 0.1, False), [weight])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = run_loop(weight, None, inputs * 0.1, True)
    grad, = torch.autograd.grad(loss, [weight])
    assert grad.dtype == torch.float32
    torch.testing.assert_close(grad, reference, rtol=0.05, atol=0.05)


def test_a_step_whose_backward_comes_after_the_first_steps_is_refused():
    """If t = 0 did not feed the later steps, their weight gradients would be lost: fail loudly."""
    weight = torch.randn(3, 3, requires_grad=True)
    linear = LoopLinear(weight)
    later = linear(torch.randn(2, 3), False)
    first = linear(torch.randn(2, 3), True)  # independent of `later` and created after it: autograd runs it first
    with pytest.raises(RuntimeError, match="ran after the first step's"):
        torch.autograd.backward([first.sum(), later.sum()])
