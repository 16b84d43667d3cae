"""The phases of one training iteration: the one table that knows them (Algorithms 1-2).

A-VRNN: reconstruction, then n_critic critic steps, then the adversarial step, each on its own
batch (or all on one, training.fresh_batch_per_phase=false); with ablation.adversarial_phases=false
only the reconstruction phase runs (no critic is built). The KL-only VRNN baseline (critic=none):
one ELBO step. Each phase is one optimizer step, so Lightning's global_step advances by
len(phases) per iteration, and the data module draws batches_per_iteration batches per iteration.

A phase is one entry of PHASES, in the order an iteration runs them: how often it runs for a config,
its loss (avrnn.models.phase_losses) and the inputs it reads, the parameters its optimizer steps,
the config node of that optimizer, and what runs after its step. Adding a phase is adding an entry.

Optimizers and their parameter groups (names of Algorithms 1-2):
  avrnn  reconstruction: theta (f_theta), phi (EM), tau (PS), encoders (phi_x, phi_z)
         critic:         eta (D)
         adversarial:    omega (TR) and tau (PS); tau only where ablation.adversarial_trains_prior=false
         (a KL term in the reconstruction phase, ablation.kl_weight > 0, adds omega there; it warms up
         over model.kl_warmup_iterations and takes model.free_bits as the VRNN's does)
  vrnn   elbo:           every VRNN parameter
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from avrnn.models import phase_losses

Module = Any  # the LightningModule (avrnn.training.module.AVRNNModule): vrnn, critic, objective, hparams


def _batch(module: Module, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return x, mask


def _no_logs(module: Module, inputs: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
    return {}


def _nothing(module: Module) -> None:
    return None


@dataclass(frozen=True)
class Phase:
    """One optimizer step of an iteration. `runs(critic, ablation)`: how many times an iteration runs
    it (the config groups as plain dicts); `loss(module, *inputs) -> (loss, terms)`; `inputs(module,
    x, mask)` are tensors only (a CUDA graph copies them into its static buffers)."""

    runs: Callable[[dict, dict], int]
    optimizer: str  # the config node of its optimizer: "<owner>.<key>"
    parameters: Callable[[Module], list[torch.nn.Parameter]]
    loss: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]
    inputs: Callable[[Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]] = _batch
    logs: Callable[[Module, tuple[torch.Tensor, ...]], dict[str, torch.Tensor]] = _no_logs  # beside the terms
    after_step: Callable[[Module], None] = _nothing


def _reconstruction_parameters(module: Module) -> list[torch.nn.Parameter]:
    """A KL term in the reconstruction phase (ablation.kl_weight > 0, the hybrid) trains the prior
    TR (omega) there too: its gradient reaches omega."""
    groups = module.vrnn.parameter_groups()
    return (groups["theta"] + groups["phi"] + groups["tau"] + groups["encoders"]
            + (groups["omega"] if module.hparams.ablation["kl_weight"] else []))


def _adversarial_parameters(module: Module) -> list[torch.nn.Parameter]:
    groups = module.vrnn.parameter_groups()
    return groups["tau"] + (groups["omega"] if module.hparams.ablation["adversarial_trains_prior"] else [])


def _kl_weight(module: Module, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The KL warm-up weight of this iteration, a tensor (a CUDA graph reads its current value)."""
    warmup = module.hparams.model["kl_warmup_iterations"]
    weight = min(1.0, (module.iteration + 1) / warmup) if warmup > 0 else 1.0
    return x, mask, torch.tensor(weight, device=x.device)


def _adversarial(critic: dict, ablation: dict) -> bool:
    """A critic objective, and ablation.adversarial_phases not switched off."""
    return critic.get("objective") is not None and ablation.get("adversarial_phases", True)


PHASES: dict[str, Phase] = {  # in the order an iteration runs them
    "elbo": Phase(
        runs=lambda critic, ablation: int(critic.get("objective") is None),  # the KL-only VRNN (critic=none)
        optimizer="model.optimizer",
        parameters=lambda module: list(module.vrnn.parameters()),
        loss=lambda module, x, mask, kl_weight: phase_losses.elbo_loss(
            module.vrnn, x, mask, kl_weight, module.hparams.model["free_bits"]),
        inputs=_kl_weight,
        logs=lambda module, inputs: {"kl_weight": inputs[2]}),
    "reconstruction": Phase(
        runs=lambda critic, ablation: int(critic.get("objective") is not None),
        optimizer="model.optimizer",
        parameters=_reconstruction_parameters,
        loss=lambda module, x, mask, warmup: phase_losses.reconstruction_loss(
            module.vrnn, x, mask, module.hparams.ablation["kl_weight"], warmup, module.hparams.model["free_bits"]),
        inputs=_kl_weight,  # the hybrid's KL warms up as the VRNN's does (model.kl_warmup_iterations)
        logs=lambda module, inputs: ({"kl_weight": inputs[2] * module.hparams.ablation["kl_weight"]}
                                     if module.hparams.ablation["kl_weight"] else {})),
    "critic": Phase(
        runs=lambda critic, ablation: critic["n_critic"] if _adversarial(critic, ablation) else 0,
        optimizer="critic.optimizer",
        parameters=lambda module: list(module.critic.parameters()),
        loss=lambda module, x, mask: phase_losses.critic_loss(module.vrnn, module.critic, module.objective, x, mask),
        after_step=lambda module: module.objective.after_critic_step(module.critic)),  # e.g. WGAN weight clipping
    "adversarial": Phase(
        runs=lambda critic, ablation: int(_adversarial(critic, ablation)),
        optimizer="model.adversarial_optimizer",
        parameters=_adversarial_parameters,
        loss=lambda module, x, mask: phase_losses.adversarial_loss(
            module.vrnn, module.critic, module.objective, x, mask, module.hparams.ablation["adversarial_trains_prior"])),
}


def iteration_phases(critic: dict, ablation: dict) -> list[str]:
    """The phases one iteration runs, in order (names of PHASES, each as often as it runs)."""
    return [name for name, phase in PHASES.items() for _ in range(phase.runs(critic, ablation))]


def builds_critic(critic: dict, ablation: dict) -> bool:
    """Whether an iteration trains a critic (and so a run builds one)."""
    return "critic" in iteration_phases(critic, ablation)


def optimizer_phases(critic: dict, ablation: dict) -> list[str]:
    """One optimizer per distinct phase, in order."""
    return list(dict.fromkeys(iteration_phases(critic, ablation)))


def batches_per_iteration(critic: dict, ablation: dict, training: dict) -> int:
    return len(iteration_phases(critic, ablation)) if training["fresh_batch_per_phase"] else 1
