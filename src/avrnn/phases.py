"""The phases of one training iteration, in order: the one place that knows them.

A-VRNN (Algorithms 1-2): reconstruction, then n_critic critic steps, then the adversarial step,
each on its own batch (or all on one, training.fresh_batch_per_phase=false). The KL-only VRNN
baseline: one ELBO step. Each phase is one optimizer step, so Lightning's global_step advances by
len(phases) per iteration; the data module draws batches_per_iteration batches per iteration.
"""

from __future__ import annotations


def is_adversarial(critic: dict) -> bool:
    """A-VRNN training has a critic objective; the KL-only baseline (critic=none) has none."""
    return critic.get("objective") is not None


def iteration_phases(critic: dict) -> list[str]:
    if not is_adversarial(critic):
        return ["elbo"]
    return ["reconstruction", *["critic"] * critic["n_critic"], "adversarial"]


def optimizer_phases(critic: dict) -> list[str]:
    """One optimizer per distinct phase, in order."""
    return list(dict.fromkeys(iteration_phases(critic)))


def batches_per_iteration(critic: dict, training: dict) -> int:
    return len(iteration_phases(critic)) if training["fresh_batch_per_phase"] else 1
