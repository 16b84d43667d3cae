"""The phases of one training iteration, in order: the one place that knows them.

A-VRNN (Algorithms 1-2): reconstruction, then n_critic critic steps, then the adversarial step,
each on its own batch (or all on one, training.fresh_batch_per_phase=false); with
ablation.adversarial_phases=false only the reconstruction phase runs (no critic is built). The
KL-only VRNN baseline (critic=none): one ELBO step. Each phase is one optimizer step, so
Lightning's global_step advances by len(phases) per iteration, and the data module draws
batches_per_iteration batches per iteration.
"""

from __future__ import annotations


def iteration_phases(critic: dict, ablation: dict) -> list[str]:
    if critic.get("objective") is None:
        return ["elbo"]
    if not ablation.get("adversarial_phases", True):
        return ["reconstruction"]
    return ["reconstruction", *["critic"] * critic["n_critic"], "adversarial"]


def optimizer_phases(critic: dict, ablation: dict) -> list[str]:
    """One optimizer per distinct phase, in order."""
    return list(dict.fromkeys(iteration_phases(critic, ablation)))


def batches_per_iteration(critic: dict, ablation: dict, training: dict) -> int:
    return len(iteration_phases(critic, ablation)) if training["fresh_batch_per_phase"] else 1
