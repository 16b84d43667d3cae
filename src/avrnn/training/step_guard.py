"""Non-finite losses and gradients: the step is skipped (and counted per phase) instead of
poisoning the weights; too many in a row stop training with a message that says what to do."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytorch_lightning as pl
import torch

from avrnn.data.progress import counted


class TrainingFault(RuntimeError):
    """Training cannot go on (e.g. losses stay non-finite); the message says what to do."""


def gradients_are_finite(optimizer: torch.optim.Optimizer) -> bool:
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())  # one device sync


class NonFiniteGuard:
    def __init__(self, max_bad_steps: int):
        self.max_bad_steps = max_bad_steps
        self.skipped: dict[str, int] = {}  # skipped steps per phase (logged, checkpointed)
        self.consecutive = 0

    def passes(self, finite: bool, phase: str, iteration: int, last_checkpoint: Callable[[], str | None]) -> bool:
        """Whether the step may be taken; counts a skipped one, and raises TrainingFault at the limit."""
        if finite:
            self.consecutive = 0
            return True
        self.skipped[phase] = self.skipped.get(phase, 0) + 1
        self.consecutive += 1
        if self.consecutive >= self.max_bad_steps:
            raise TrainingFault(
                f"{counted(self.consecutive, 'non-finite step')} in a row (last in the {phase} phase, iteration {iteration}); "
                "lower that phase's learning rate or check the data, then resume from the last good checkpoint: "
                f"{last_checkpoint() or 'none written yet'}")
        return False


def last_checkpoint(trainer: pl.Trainer) -> str | None:
    paths = [cb.last_model_path or cb.best_model_path for cb in trainer.checkpoint_callbacks]
    paths = [p for p in paths if p]
    return max(paths, key=lambda p: Path(p).stat().st_mtime) if paths else None


def guarded_step(module: pl.LightningModule, guard: NonFiniteGuard, optimizer, loss: torch.Tensor, phase: str,
                 backward_done: bool = False) -> None:
    """backward, clip (training.grad_clip_norm), step, unless the loss or a gradient is not finite.
    backward_done: a CUDA graph already ran the backward and left the gradients in place."""
    if not backward_done:
        optimizer.zero_grad()
    # Under DDP every process must take the same branch (backward all-reduces the gradients): a loss
    # that is non-finite on one process skips the step everywhere. All-reduced gradients are the
    # same on every process, so their check agrees by itself.
    finite = module.trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(loss)), all=True)
    if finite:
        if not backward_done:
            module.manual_backward(loss)
        finite = gradients_are_finite(optimizer)
    if not guard.passes(finite, phase, module.iteration, lambda: last_checkpoint(module.trainer)):
        optimizer.zero_grad()
        return
    clip = module.hparams.training["grad_clip_norm"]
    if clip:
        module.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")
    optimizer.step()
