"""The LightningModule: the training phases of A-VRNN (Algorithms 1-2) and of the KL-only VRNN
baseline, with manual optimization. The maths lives in avrnn.models; the order of the phases in
avrnn.phases; what the critic and the adversarial step minimise in the critic objective.

Optimizers and their parameter groups (names of Algorithms 1-2):
  avrnn  reconstruction: theta (f_theta), phi (EM), tau (PS), encoders (phi_x, phi_z)
         critic:         eta (D)
         adversarial:    omega (TR) and tau (PS); tau only where ablation.adversarial_trains_prior=false
         (a KL term in the reconstruction phase, ablation.kl_weight > 0, adds omega there)
  vrnn   elbo:           every VRNN parameter
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from avrnn import cuda_graphs, registry
from avrnn.checkpoints import check_optimizer_states, upgrade_hyper_parameters, upgrade_state_dict
from avrnn.models import VRNN, losses
from avrnn.optimizers import build_optimizer
from avrnn.phases import iteration_phases, optimizer_phases
from avrnn.resume import apply_optimizer_settings
from avrnn.step_guard import NonFiniteGuard, TrainingFault, guarded_step
from avrnn.step_sizes import StepSizes

__all__ = ["AVRNNModule", "TrainingFault"]
ARCH_KEYS = ("frame_size", "z_dim", "hidden_size", "x_features", "z_features", "mlp_hidden", "rnn", "emission",
             "std_floor", "std_max", "prior_path", "recurrence_input")


class AVRNNModule(pl.LightningModule):
    """Takes plain dicts (the resolved config groups) so checkpoints hold only plain data; the
    critic and its objective are built from the allow-list in avrnn.registry, never imported."""

    def __init__(self, model: dict, critic: dict, ablation: dict, training: dict,
                 normalization: dict | None = None, data: dict | None = None):
        super().__init__()
        critic, ablation = upgrade_hyper_parameters(critic, ablation)  # checkpoints of earlier versions
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.vrnn = VRNN(**{key: model[key] for key in ARCH_KEYS if key in model})  # earlier versions lack some
        self.phases = iteration_phases(critic, ablation)
        self.optimizer_phases = optimizer_phases(critic, ablation)  # one optimizer per distinct phase, in order
        self.adversarial = "critic" in self.phases
        self.critic = registry.build(critic["networks"][critic["input"]], f"critic.networks.{critic['input']}",
                                     z_dim=model["z_dim"], h_dim=model["hidden_size"]) if self.adversarial else None
        self.objective = registry.build(critic["objective"], "critic.objective") if self.adversarial else None
        self.iteration = 0  # our own counter: Lightning's global_step counts every optimizer step
        self.guard = NonFiniteGuard(training["max_bad_steps"])
        groups = self.vrnn.parameter_groups()
        self.step_sizes = StepSizes({"tau": groups["tau"], "omega": groups["omega"]})  # shared by phases
        self._graphs: dict[str, cuda_graphs.GraphedBackward] = {}  # phase -> CUDA graphs (training.cuda_graphs)

    @property
    def skipped_steps(self) -> dict[str, int]:
        return self.guard.skipped

    # --- optimizers --------------------------------------------------------------------------
    def phase_parameters(self) -> dict[str, list[torch.nn.Parameter]]:
        """Each optimizer's parameters. A KL term in the reconstruction phase (ablation.kl_weight > 0,
        the hybrid) trains the prior TR (omega) there too: its gradient reaches omega."""
        groups, ablation = self.vrnn.parameter_groups(), self.hparams.ablation
        params = {
            "elbo": list(self.vrnn.parameters()),
            "reconstruction": groups["theta"] + groups["phi"] + groups["tau"] + groups["encoders"]
            + (groups["omega"] if ablation["kl_weight"] else []),
            "critic": list(self.critic.parameters()) if self.critic is not None else [],
            "adversarial": groups["tau"] + (groups["omega"] if ablation["adversarial_trains_prior"] else []),
        }
        return {phase: params[phase] for phase in self.optimizer_phases}

    def optimizer_nodes(self) -> list[tuple[str, dict]]:
        """(config key, config node) of each phase's optimizer, in the phases' order."""
        config_key = {"elbo": ("model", "optimizer"), "reconstruction": ("model", "optimizer"),
                      "critic": ("critic", "optimizer"), "adversarial": ("model", "adversarial_optimizer")}
        return [(f"{owner}.{key}", self.hparams[owner][key])
                for owner, key in (config_key[phase] for phase in self.optimizer_phases)]

    def configure_optimizers(self):
        return [build_optimizer(node, params, name)
                for (name, node), params in zip(self.optimizer_nodes(), self.phase_parameters().values())]

    # --- what every phase reports ------------------------------------------------------------
    @staticmethod
    def bound_terms(out) -> dict[str, torch.Tensor]:
        """Reconstruction (negative log-likelihood), KL and ELBO in nats per timestep."""
        rec = -losses.per_timestep(out.rec_log_lik, out.mask)
        kl = losses.per_timestep(out.kl, out.mask)
        return {"rec_per_timestep": rec, "kl_per_timestep": kl, "elbo_per_timestep": -(rec + kl)}

    def score(self, mask: torch.Tensor):
        """D_eta on latents z (B, T, Z) drawn at states h (B, T, H) -> one score per sequence."""
        return lambda z, h: self.critic(z, mask, h)

    def critic_distance(self, out) -> tuple[str, torch.Tensor]:
        """The divergence the critic estimates between the prior's and the posterior's latents."""
        score = self.score(out.mask)
        return self.objective.distance_name, self.objective.distance(score(out.z_prior, out.h_prior),
                                                                     score(out.z_post, out.h))

    # --- phases: each a loss function of its batch, run by _optimize -------------------------
    def _optimize(self, optimizer, phase: str, loss_fn, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimizer step on loss_fn(*inputs) -> (loss, terms), forward and backward replayed
        as a CUDA graph where training.cuda_graphs has built one (on_fit_start)."""
        with self.toggled_optimizer(optimizer):
            before = self.step_sizes.snapshot(optimizer)
            graphed = self._graphs.get(phase)
            if graphed is not None:
                loss, terms = graphed(*inputs)
                guarded_step(self, self.guard, optimizer, loss, phase, backward_done=True)
            else:
                loss, terms = loss_fn(*inputs)
                guarded_step(self, self.guard, optimizer, loss, phase)
                terms = {key: value.detach() for key, value in terms.items()}
        return {**terms, **self.step_sizes.norms(phase, before)}

    def reconstruction_loss(self, x, mask):
        """Algorithm 1: -sum_t log p(x_t | z_t, h_{t-1}) (plus ablation.kl_weight x KL: the hybrid)."""
        terms = self.bound_terms(self.vrnn(x, mask, prior_samples=False))
        loss = terms["rec_per_timestep"]
        if self.hparams.ablation["kl_weight"]:
            loss = loss + self.hparams.ablation["kl_weight"] * terms["kl_per_timestep"]
        return loss, terms

    def critic_loss(self, x, mask):
        """Algorithm 2 (1): the objective's critic loss on detached latent sequences."""
        with torch.no_grad():
            latents = self.vrnn.latents(x)
        return self.objective.critic_loss(self.score(mask), (latents.z_prior, latents.h_prior),
                                          (latents.z_post, latents.h), mask)

    def adversarial_loss(self, x, mask):
        """Algorithm 2 (2): the critic's estimate, minimised by TR and PS (omega, tau); the prior's
        latents are detached where the adversarial step does not train it (posterior_only)."""
        z_post, z_prior, h, h_prior = self.vrnn.latents(x)
        z_prior = z_prior if self.hparams.ablation["adversarial_trains_prior"] else z_prior.detach()
        score = self.score(mask)
        loss = self.objective.adversarial_loss(score(z_prior, h_prior), score(z_post, h))
        return loss, {"adversarial_loss": loss.detach()}

    def elbo_loss(self, x, mask, kl_weight):
        """The KL-only baseline: -ELBO, the KL weighted (warm-up) and optionally floored (free bits).
        kl_weight is a tensor, so that a CUDA graph reads its current value."""
        out = self.vrnn(x, mask, prior_samples=False)
        terms = self.bound_terms(out)
        free_bits = self.hparams.model["free_bits"]
        kl = losses.free_bits_kl(out.kl, out.mask, free_bits) if free_bits > 0 else terms["kl_per_timestep"]
        return terms["rec_per_timestep"] + kl_weight * kl, terms

    def reconstruction_phase(self, optimizer, x, mask) -> dict[str, torch.Tensor]:
        return self._optimize(optimizer, "reconstruction", self.reconstruction_loss, x, mask)

    def critic_phase(self, optimizer, x, mask) -> dict[str, torch.Tensor]:
        terms = self._optimize(optimizer, "critic", self.critic_loss, x, mask)
        self.objective.after_critic_step(self.critic)  # e.g. WGAN weight clipping
        return terms

    def adversarial_phase(self, optimizer, x, mask) -> dict[str, torch.Tensor]:
        return self._optimize(optimizer, "adversarial", self.adversarial_loss, x, mask)

    def elbo_phase(self, optimizer, x, mask) -> dict[str, torch.Tensor]:
        warmup = self.hparams.model["kl_warmup_iterations"]
        kl_weight = torch.tensor(min(1.0, (self.iteration + 1) / warmup) if warmup > 0 else 1.0, device=x.device)
        return {**self._optimize(optimizer, "elbo", self.elbo_loss, x, mask, kl_weight), "kl_weight": kl_weight}

    # --- Lightning hooks ---------------------------------------------------------------------
    def on_fit_start(self) -> None:
        losses_by_phase = {phase: getattr(self, f"{phase}_loss") for phase in self.optimizer_phases}
        self._graphs = cuda_graphs.phase_graphs(self.hparams.training.get("cuda_graphs"), self, losses_by_phase)

    def on_fit_end(self) -> None:
        self._graphs = {}  # frees the graphs' memory

    def training_step(self, batches, batch_idx):
        optimizers = self.optimizers()
        optimizers = dict(zip(self.optimizer_phases, optimizers if isinstance(optimizers, list) else [optimizers]))
        batches = batches if len(batches) > 1 else batches * len(self.phases)
        terms_by_phase: dict[str, list[dict]] = {}
        for phase, batch in zip(self.phases, batches):
            terms_by_phase.setdefault(phase, []).append(getattr(self, f"{phase}_phase")(optimizers[phase], *batch))
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
        self.log("train/elbo", logs["elbo_per_timestep"], prog_bar=True, batch_size=frames, logger=False,
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
            logs = self.bound_terms(out)
            if self.adversarial:
                name, distance = self.critic_distance(out)
                logs[name] = distance
        # batch_size=frames makes the epoch average a ratio of sums (nats per timestep); under DDP the
        # sums and frame counts are reduced over processes, so every process monitors the same value.
        self.log_dict({f"{split}/{k}": v for k, v in logs.items()}, batch_size=int(mask.sum()),
                      prog_bar=split == "val", sync_dist=self.trainer.world_size > 1)

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, "test")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Our counters (the RNG states: avrnn.callbacks.RandomState). Plain data only."""
        checkpoint["avrnn_iteration"] = self.iteration
        checkpoint["avrnn_skipped_steps"] = dict(self.skipped_steps)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["state_dict"] = upgrade_state_dict(checkpoint["state_dict"])  # layer names of earlier versions
        if self._trainer is not None:  # resuming a fit, not just loading weights
            check_optimizer_states(checkpoint, self.phase_parameters())
            # the config's learning rates (and other optimizer settings), not the checkpoint's (avrnn.resume)
            apply_optimizer_settings(checkpoint, [node for _, node in self.optimizer_nodes()])
        self.iteration = checkpoint.get("avrnn_iteration", 0)
        self.guard.skipped = dict(checkpoint.get("avrnn_skipped_steps", {}))
