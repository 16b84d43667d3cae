"""The LightningModule: wiring of the training phases of A-VRNN (Algorithms 1-2) and of the KL-only
VRNN baseline, with manual optimization. The maths lives in avrnn.models (the phases' losses in
avrnn.models.phase_losses); which phases run, their losses, parameters and optimizers in the table
of avrnn.training.phases; here: the optimizers, one step per phase, logging, checkpoint hooks.
"""

from __future__ import annotations

import functools

import pytorch_lightning as pl
import torch

from avrnn import registry
from avrnn.data import representations
from avrnn.models import VRNN, phase_losses
from avrnn.models.vrnn import VRNNConfig
from avrnn.training import cuda_graphs
from avrnn.training.checkpoints import (CheckpointError, check_optimizer_states, upgrade_data_and_model,
                                        upgrade_hyper_parameters, upgrade_state_dict)
from avrnn.training.optimizers import build_optimizer
from avrnn.training.phases import PHASES, builds_critic, iteration_phases, optimizer_phases
from avrnn.training.resume import apply_optimizer_settings
from avrnn.training.step_guard import NonFiniteGuard, TrainingFault, guarded_step
from avrnn.training.step_sizes import StepSizes

__all__ = ["AVRNNModule", "TrainingFault"]
PROGRESS_BAR_ELBO = "train/elbo"  # the progress bar's name for train/elbo_per_timestep, logged to no logger


class AVRNNModule(pl.LightningModule):
    """Takes plain dicts (the resolved config groups) so checkpoints hold only plain data; the
    critic and its objective are built from the allow-list in avrnn.registry, never imported.
    Checkpoints of earlier versions load through `from_checkpoint`, which upgrades their
    hyper-parameters first (Lightning's `load_from_checkpoint` reads today's checkpoints)."""

    def __init__(self, model: dict, critic: dict, ablation: dict, training: dict,
                 normalization: dict | None = None, data: dict | None = None):
        super().__init__()
        if "objective" not in critic or "adversarial_trains_prior" not in ablation:
            raise CheckpointError("these hyper-parameters come from a checkpoint of an earlier version; load it with "
                                  "AVRNNModule.from_checkpoint (or src/evaluate.py, src/generate.py), which upgrades them")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.vrnn = VRNN(VRNNConfig.from_dict(model))
        self.phases = iteration_phases(critic, ablation)
        self.optimizer_phases = optimizer_phases(critic, ablation)  # one optimizer per distinct phase, in order
        self.adversarial = builds_critic(critic, ablation)
        self.critic = registry.build(critic["networks"][critic["input"]], f"critic.networks.{critic['input']}",
                                     z_dim=model["z_dim"], h_dim=model["hidden_size"]) if self.adversarial else None
        self.objective = registry.build(critic["objective"], "critic.objective") if self.adversarial else None
        self.iteration = 0  # our own counter: Lightning's global_step counts every optimizer step
        self.guard = NonFiniteGuard(training["max_bad_steps"])
        groups = self.vrnn.parameter_groups()
        self.step_sizes = StepSizes({"tau": groups["tau"], "omega": groups["omega"]})  # shared by phases
        self._graphs: dict[str, cuda_graphs.GraphedBackward] = {}  # phase -> CUDA graphs (training.cuda_graphs)

    # --- loading (the only place that upgrades checkpoints of earlier versions) ----------------
    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> AVRNNModule:
        """The module a checkpoint (a dict read by avrnn.training.checkpoints.load_checkpoint) holds,
        with its counters and weights; hyper-parameters and parameter names of earlier versions
        are upgraded to today's."""
        hyper = upgrade_data_and_model(checkpoint["hyper_parameters"])
        hyper["critic"], hyper["ablation"] = upgrade_hyper_parameters(hyper["critic"], hyper["ablation"])
        module = cls(**hyper)
        module.on_load_checkpoint(checkpoint)  # counters, and parameter names of earlier versions
        module.load_state_dict(checkpoint["state_dict"])
        return module

    @property
    def representation(self) -> representations.Representation | None:
        """What the model reads (the data config's representation with the training split's statistics,
        `normalization`); None for a module built without data (tests, benchmarks)."""
        if self.hparams.get("normalization") is None:
            return None
        return representations.build(self.hparams.data or {}, self.hparams.normalization)

    @property
    def skipped_steps(self) -> dict[str, int]:
        return self.guard.skipped

    # --- optimizers --------------------------------------------------------------------------
    def phase_parameters(self) -> dict[str, list[torch.nn.Parameter]]:
        """Each optimizer's parameters (the phase table's), in the phases' order."""
        return {phase: PHASES[phase].parameters(self) for phase in self.optimizer_phases}

    def optimizer_nodes(self) -> list[tuple[str, dict]]:
        """(config key, config node) of each phase's optimizer, in the phases' order."""
        nodes = []
        for phase in self.optimizer_phases:
            owner, key = PHASES[phase].optimizer.split(".")
            nodes.append((f"{owner}.{key}", self.hparams[owner][key]))
        return nodes

    def configure_optimizers(self):
        return [build_optimizer(node, params, name)
                for (name, node), params in zip(self.optimizer_nodes(), self.phase_parameters().values())]

    # --- one phase: one optimizer step on the table's loss -------------------------------------
    def run_phase(self, phase: str, optimizer, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimizer step of `phase` on the batch (x, mask); its terms, step sizes and logs. The
        forward and backward replay a CUDA graph where training.cuda_graphs has built one (on_fit_start)."""
        spec = PHASES[phase]
        inputs = spec.inputs(self, x, mask)
        with self.toggled_optimizer(optimizer):
            before = self.step_sizes.snapshot(optimizer)
            graphed = self._graphs.get(phase)
            if graphed is not None:
                loss, terms = graphed(*inputs)
                guarded_step(self, self.guard, optimizer, loss, phase, backward_done=True)
            else:
                loss, terms = spec.loss(self, *inputs)
                guarded_step(self, self.guard, optimizer, loss, phase)
                terms = {key: value.detach() for key, value in terms.items()}
        spec.after_step(self)
        return {**terms, **self.step_sizes.norms(phase, before), **spec.logs(self, inputs)}

    # --- Lightning hooks ---------------------------------------------------------------------
    def on_fit_start(self) -> None:
        losses_by_phase = {phase: functools.partial(PHASES[phase].loss, self) for phase in self.optimizer_phases}
        self._graphs = cuda_graphs.phase_graphs(self.hparams.training.get("cuda_graphs"), self, losses_by_phase)

    def on_train_start(self) -> None:
        """A run resumed at training.max_iterations (a job requeued after its training ended) trains no
        more: the final test is what is left."""
        max_iterations = self.hparams.training["max_iterations"]
        if max_iterations is not None and self.iteration >= max_iterations:
            self.trainer.should_stop = True

    def on_fit_end(self) -> None:
        self._graphs = {}  # frees the graphs' memory

    def training_step(self, batches, batch_idx):
        optimizers = self.optimizers()
        optimizers = dict(zip(self.optimizer_phases, optimizers if isinstance(optimizers, list) else [optimizers]))
        batches = batches if len(batches) > 1 else batches * len(self.phases)
        terms_by_phase: dict[str, list[dict]] = {}
        for phase, batch in zip(self.phases, batches):
            terms_by_phase.setdefault(phase, []).append(self.run_phase(phase, optimizers[phase], *batch))
        logs = {}
        for calls in terms_by_phase.values():  # a phase run n times (n_critic) logs its means
            logs.update({k: torch.stack([c[k] for c in calls]).mean() for k in calls[0]})
        self.iteration += 1
        self._log_iteration(logs, optimizers, frames=int(batches[0][1].sum()))
        max_iterations = self.hparams.training["max_iterations"]
        if max_iterations is not None and self.iteration >= max_iterations:
            self.trainer.should_stop = True

    def _log_iteration(self, logs: dict, optimizers: dict, frames: int) -> None:
        sync = self.trainer.world_size > 1  # DDP: log the mean over processes
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, batch_size=frames, prog_bar=False, sync_dist=sync)
        self.log(PROGRESS_BAR_ELBO, logs["elbo_per_timestep"], prog_bar=True, batch_size=frames, logger=False,
                 sync_dist=sync)
        self.log_dict({f"lr/{phase}": opt.param_groups[0]["lr"] for phase, opt in optimizers.items()},
                      batch_size=frames)
        self.log("iteration", float(self.iteration), batch_size=frames)
        if self.skipped_steps:
            self.log_dict({f"faults/skipped_{phase}_steps": float(n) for phase, n in self.skipped_steps.items()},
                          batch_size=frames)

    def _evaluate(self, batch, split: str) -> None:
        """Bounds in fp32 whatever trainer.precision: Lightning's bf16-mixed also autocasts validation
        and test steps, and a bound summed over thousands of frames in bf16 (8 significant bits) is
        not the number a checkpoint is chosen by. (bf16-true keeps bf16 weights: its bounds stay bf16;
        src/evaluate.py scores its checkpoints in fp32.)"""
        x, mask = batch
        with torch.autocast(x.device.type, enabled=False):
            out = self.vrnn(x, mask, prior_samples=self.adversarial)
            logs = phase_losses.bound_terms(out)  # rec, KL and ELBO in nats per timestep
            distance = phase_losses.critic_distance(out, self.critic, self.objective) if self.adversarial else None
        # batch_size=frames makes the epoch average a ratio of sums (nats per timestep); under DDP the
        # sums and frame counts are reduced over processes, so every process monitors the same value.
        self.log_dict({f"{split}/{k}": v for k, v in logs.items()}, batch_size=int(mask.sum()),
                      prog_bar=split == "val", sync_dist=self.trainer.world_size > 1)
        if distance is not None:  # the critic's estimate on a batch of sequences: averaged over sequences, as
            name, value = distance  # src/evaluate.py averages it (not a bound: no frame weights)
            self.log(f"{split}/{name}", value, batch_size=x.shape[0], prog_bar=split == "val",
                     sync_dist=self.trainer.world_size > 1)

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, "test")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Our counters (the RNG states: avrnn.training.callbacks.RandomState). Plain data only."""
        checkpoint["avrnn_iteration"] = self.iteration
        checkpoint["avrnn_skipped_steps"] = dict(self.skipped_steps)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["state_dict"] = upgrade_state_dict(checkpoint["state_dict"])  # layer names of earlier versions
        if self._trainer is not None:  # resuming a fit, not just loading weights
            check_optimizer_states(checkpoint, self.phase_parameters())
            # the config's learning rates (and other optimizer settings), not the checkpoint's (avrnn.training.resume)
            apply_optimizer_settings(checkpoint, [node for _, node in self.optimizer_nodes()])
        self.iteration = checkpoint.get("avrnn_iteration", 0)
        self.guard.skipped = dict(checkpoint.get("avrnn_skipped_steps", {}))
