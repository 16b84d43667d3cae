"""CUDA graphs for the training phases: one phase's forward and backward recorded once per input
shape and replayed as a single launch (`training.cuda_graphs`; null, the default, = on one GPU).

Why: the VRNN's time loop issues about 60 small kernels per timestep (forward and backward); on a
GPU each launch costs more than its arithmetic at these sizes, so an eager step is bound by the
CPU launching kernels. A replayed graph launches them all at once.

How (the partial-network recipe of the PyTorch CUDA-graphs docs): the inputs are copied into
static buffers, `loss, terms = fn(*inputs)` and `loss.backward()` are captured after two warm-up
runs on a side stream, and each replay leaves the gradients in the static tensors the capture
allocated; `__call__` points every parameter's `.grad` at them, so the optimizer step, gradient
clipping and the finiteness checks run eagerly as before. Random draws inside the graph
(latent noise, gradient-penalty mixing) are fresh on every replay (graph-safe CUDA generator).

Limits: one graph per (input shapes, dtypes, autocast dtype); after MAX_GRAPHS shapes, new
shapes run eagerly (train with data.crop_frames set and batches share one shape). Parameters
must not change their requires_grad between capture and replay (the module toggles per phase,
the same way every time).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

log = logging.getLogger("avrnn.cuda_graphs")  # the name before the layout change: log lines and users' logging settings keep it

MAX_GRAPHS = 8  # per phase; each holds its activations' memory
WARMUP_RUNS = 2


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: list[torch.Tensor]
    loss: torch.Tensor
    terms: dict[str, torch.Tensor]
    grads: list[torch.Tensor | None]


def _autocast_dtype() -> torch.dtype | None:
    return torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else None


class GraphedBackward:
    """Runs `fn(*inputs) -> (loss, terms)` and `loss.backward()` for `params` as a replayed CUDA
    graph. Returns (loss, terms), cloned, with every parameter's .grad set as after the backward."""

    def __init__(self, fn: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]],
                 params: Sequence[torch.nn.Parameter], name: str = "phase"):
        self.fn, self.params, self.name = fn, list(params), name
        self.graphs: dict[tuple, _Captured] = {}
        self.warned_full = False
        self.capture_failed = False

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        key = (tuple((t.shape, t.dtype) for t in inputs), _autocast_dtype())
        captured = self.graphs.get(key)
        if captured is None:
            if self.capture_failed:
                return self._forward_backward(inputs)
            if len(self.graphs) >= MAX_GRAPHS:
                if not self.warned_full:
                    log.warning("cuda_graphs: %s phase has %d graphs (input shapes); further shapes run eagerly. "
                                "Set data.crop_frames so that training batches share one shape.",
                                self.name, MAX_GRAPHS)
                    self.warned_full = True
                return self._forward_backward(inputs)
            try:
                captured = self._capture(inputs)
            except RuntimeError as error:  # an operation CUDA graphs cannot record: fall back, once
                self.capture_failed = True
                log.warning("cuda_graphs: capturing the %s phase failed, it runs eagerly from now on: %s",
                            self.name, " ".join(str(error).split())[:300])
                return self._forward_backward(inputs)
            self.graphs[key] = captured
        for static, value in zip(captured.inputs, inputs):
            static.copy_(value)
        captured.graph.replay()
        for param, grad in zip(self.params, captured.grads):
            param.grad = grad
        return captured.loss.clone(), {k: v.clone() for k, v in captured.terms.items()}

    def _forward_backward(self, inputs: Sequence[torch.Tensor]):
        """fn and backward, as captured; also what runs where no graph can (the eager fallback)."""
        for param in self.params:
            param.grad = None  # so that backward writes (not adds) the gradients: replays must not accumulate
        # autocast caches weight casts across calls; a cast cached outside the graph would be read
        # stale by every replay, so caching is off inside (same dtype as the surrounding autocast).
        dtype = _autocast_dtype()
        with torch.autocast("cuda", dtype=dtype or torch.bfloat16, enabled=dtype is not None, cache_enabled=False):
            loss, terms = self.fn(*inputs)
            loss.backward()
        return loss.detach(), {k: v.detach() for k, v in terms.items()}

    def _capture(self, inputs: Sequence[torch.Tensor]) -> _Captured:
        static = [t.detach().clone() for t in inputs]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # cuBLAS/cuDNN handles and workspaces, lazy init: not in the graph
            for _ in range(WARMUP_RUNS):
                self._forward_backward(static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            loss, terms = self._forward_backward(static)
        grads = [param.grad for param in self.params]
        log.info("cuda_graphs: captured the %s phase for input shapes %s", self.name,
                 [tuple(t.shape) for t in inputs])
        return _Captured(graph, static, loss, terms, grads)


def why_not(device: torch.device, world_size: int, scaler, precision: str) -> str | None:
    """Why CUDA graphs cannot replay training here, or None where they can."""
    if device.type != "cuda":
        return f"needs a CUDA device (this run is on {device.type})"
    if world_size > 1:
        return "does not support several processes (DDP): gradients are all-reduced outside the graph"
    if scaler is not None:
        return f"does not support a gradient scaler (trainer.precision={precision}; use bf16-mixed)"
    return None


def phase_graphs(setting: bool | None, module, losses_by_phase: dict[str, Callable]) -> dict[str, GraphedBackward]:
    """training.cuda_graphs for a LightningModule about to fit: one GraphedBackward per phase where
    graphs can work (null: quietly eager elsewhere; true: with a warning saying why; false: never).
    Eager and graphed steps compute the same."""
    if setting is False:
        return {}
    trainer = module.trainer
    reason = why_not(module.device, trainer.world_size, getattr(trainer.precision_plugin, "scaler", None),
                     trainer.precision)
    if reason:
        if setting:
            log.warning("training.cuda_graphs=true %s: training runs without CUDA graphs", reason)
        return {}
    params = list(module.parameters())
    return {phase: GraphedBackward(loss_fn, params, phase) for phase, loss_fn in losses_by_phase.items()}
