"""Linear maps applied once per timestep inside the VRNN's time loop, with their weight gradients
computed in one matrix product over all timesteps instead of one per step.

Why: plain autograd computes dL/dW for every step separately (a (out x in) product per step) and
adds it into W.grad: T weight-sized writes and reads per layer. At small batches that memory
traffic, not arithmetic, bounds the backward pass; at large ones, T small products use the cores
worse than one big one. Fused RNN kernels (cuDNN) do the same: input gradients step by step,
weight gradients once at the end.

How: each step's backward returns only the input gradient and records (input, output gradient).
The first timestep's backward runs last (every later step feeds back into it through the
recurrence), so that call turns all records into the weight and bias gradients: G^T X and sum(G).
"""

from __future__ import annotations

import os

import torch
from torch.nn import functional as F

# A step's product with at most this many rows (the batch) runs on one CPU thread: splitting so
# little work over threads costs more than it saves (see docs/performance.md).
ONE_THREAD_MAX_ROWS = int(os.environ.get("AVRNN_ONE_THREAD_MAX_ROWS", "8"))


def _matmul(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, transpose: bool = True):
    """x W^T + b (or x W), on one CPU thread when x has few rows. Called 12 times per step: a plain
    function, not a context manager (whose generator costs more than the thread switch)."""
    threads = torch.get_num_threads()
    if threads == 1 or x.shape[0] > ONE_THREAD_MAX_ROWS or x.device.type != "cpu":
        return F.linear(x, weight, bias) if transpose else x @ weight
    torch.set_num_threads(1)
    try:
        return F.linear(x, weight, bias) if transpose else x @ weight
    finally:
        torch.set_num_threads(threads)


class LoopLinear:
    """y = x W^T + b for one pass over T steps; call with first=True at t = 0 (the step whose
    backward runs last). Build a new one per pass: it holds that pass's records."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        self.weight, self.bias = weight, bias
        self.inputs: list[torch.Tensor] = []
        self.output_grads: list[torch.Tensor] = []
        self.flushed = False

    def __call__(self, x: torch.Tensor, first: bool) -> torch.Tensor:
        if not torch.is_grad_enabled() or not (self.weight.requires_grad or x.requires_grad):
            return F.linear(x, self.weight, self.bias)  # no graph: a plain linear
        return _LoopLinearFunction.apply(x, self.weight, self.bias, self, first)


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None


class _LoopLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, owner: LoopLinear, first: bool):
        # Under autocast compute in its dtype by hand: autocast does not reach into backward.
        autocast_dtype = _autocast_dtype(x.device.type)
        dtype = autocast_dtype or x.dtype
        ctx.owner, ctx.first, ctx.dtype, ctx.has_bias = owner, first, dtype, bias is not None
        ctx.save_for_backward(x, weight)
        if autocast_dtype is None:
            return _matmul(x, weight, bias)
        with torch.autocast(x.device.type, enabled=False):
            return _matmul(x.to(dtype), weight.to(dtype), None if bias is None else bias.to(dtype))

    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        owner: LoopLinear = ctx.owner
        if owner.flushed:
            raise RuntimeError("LoopLinear: a step's backward ran after the first step's; its weight gradient "
                               "would be lost (the first step must feed every later one)")
        grad_output = grad_output.to(ctx.dtype)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = _matmul(grad_output, weight.to(ctx.dtype), transpose=False).to(x.dtype)
        if ctx.needs_input_grad[1] or (ctx.has_bias and ctx.needs_input_grad[2]):
            owner.inputs.append(x.to(ctx.dtype))
            owner.output_grads.append(grad_output)
        if ctx.first and owner.output_grads:
            grads = torch.cat(owner.output_grads)
            if ctx.needs_input_grad[1]:
                grad_weight = (grads.T @ torch.cat(owner.inputs)).to(weight.dtype)
            if ctx.has_bias and ctx.needs_input_grad[2]:
                grad_bias = grads.sum(0).to(owner.bias.dtype)
            owner.inputs.clear()
            owner.output_grads.clear()
            owner.flushed = True
        return grad_x, grad_weight, grad_bias, None, None
