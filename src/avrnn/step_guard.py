"""Non-finite losses and gradients: the step is skipped (and counted per phase) instead of
poisoning the weights; too many in a row stop training with a message that says what to do."""

from __future__ import annotations

from typing import Callable

import torch


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
                f"{self.consecutive} non-finite steps in a row (last in the {phase} phase, iteration {iteration}); "
                "lower that phase's learning rate or check the data, then resume from the last good checkpoint: "
                f"{last_checkpoint() or 'none written yet'}")
        return False
