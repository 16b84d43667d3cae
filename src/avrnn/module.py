"""The LightningModule: orchestrates the training phases of A-VRNN (Algorithms 1-2) and of the
KL-only VRNN baseline with manual optimization. The maths lives in avrnn.models.

Optimizers and their parameter groups (names of Algorithms 1-2):
  avrnn  0 reconstruction: theta (f_theta), phi (EM), tau (PS), encoders (phi_x, phi_z)
         1 critic:         eta (D)
         2 adversarial:    omega (TR) and tau (PS); tau only with ablation=posterior_only
  vrnn   0 elbo:           every VRNN parameter
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
import torch

from avrnn.cuda_graphs import GraphedBackward
from avrnn.data.framing import Normalization, unframe
from avrnn.models import VRNN, SequenceCritic
from avrnn.models import losses


log = logging.getLogger(__name__)


class TrainingFault(RuntimeError):
    """Training cannot go on (e.g. losses stay non-finite); the message says what to do."""


ARCH_KEYS = ("frame_size", "z_dim", "hidden_size", "x_features", "z_features", "mlp_hidden", "rnn", "emission",
             "std_floor", "std_max")
ADVERSARIAL_LOSSES = {
    "wgan": (losses.wgan_critic_loss, losses.wgan_adversarial_loss),
    "wgan_gp": (losses.wgan_critic_loss, losses.wgan_adversarial_loss),
    "gan": (losses.gan_critic_loss, losses.gan_adversarial_loss),
}


def build_optimizer(spec: dict, params) -> torch.optim.Optimizer:
    name, lr, decay, eps = spec["name"], spec["lr"], spec.get("weight_decay", 0.0), spec.get("eps", 1e-8)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(spec.get("betas", (0.9, 0.999))), eps=eps,
                                weight_decay=decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=spec.get("alpha", 0.99), eps=eps, weight_decay=decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=decay)
    raise ValueError(f"unknown optimizer {name!r}; choose adam, rmsprop or sgd")


def batches_per_iteration(model: dict, critic: dict, training: dict) -> int:
    """How many batches one iteration consumes: one per phase, or one shared by all phases."""
    if model["name"] == "vrnn" or not training["fresh_batch_per_phase"]:
        return 1
    return 1 + critic["n_critic"] + 1


class AVRNNModule(pl.LightningModule):
    """Takes plain dicts (the resolved config groups) so checkpoints hold only plain data."""

    def __init__(self, model: dict, critic: dict, ablation: dict, training: dict,
                 normalization: dict | None = None, data: dict | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.vrnn = VRNN(**{key: model[key] for key in ARCH_KEYS})
        self.adversarial = model["name"] == "avrnn"
        self.critic = (SequenceCritic(model["z_dim"], critic["lstm_size"], critic["fc_size"], critic["readout"])
                       if self.adversarial else None)
        self.iteration = 0  # our own counter: Lightning's global_step counts every optimizer step
        self.skipped_steps: dict[str, int] = {}  # non-finite steps skipped, per phase
        self.consecutive_bad_steps = 0
        self._graphs: dict[str, GraphedBackward] = {}  # phase -> CUDA graphs (training.cuda_graphs)

    # --- optimizers ------------------------------------------------------------------------
    @property
    def optimizer_steps_per_iteration(self) -> int:
        """What Lightning's global_step advances by per iteration: one per optimizer.step()."""
        return self.hparams.critic["n_critic"] + 2 if self.adversarial else 1

    def phase_parameters(self) -> dict[str, list[torch.nn.Parameter]]:
        groups = self.vrnn.parameter_groups()
        if not self.adversarial:
            return {"elbo": list(self.vrnn.parameters())}
        adversarial = groups["tau"] + ([] if self.hparams.ablation["name"] == "posterior_only" else groups["omega"])
        return {
            "reconstruction": groups["theta"] + groups["phi"] + groups["tau"] + groups["encoders"],
            "critic": list(self.critic.parameters()),
            "adversarial": adversarial,
        }

    def configure_optimizers(self):
        model, critic = self.hparams.model, self.hparams.critic
        specs = {"elbo": model["optimizer"], "reconstruction": model["optimizer"],
                 "critic": critic["optimizer"], "adversarial": model["adversarial_optimizer"]}
        return [build_optimizer(specs[phase], params) for phase, params in self.phase_parameters().items()]

    def _step(self, optimizer, loss: torch.Tensor, phase: str, backward_done: bool = False) -> None:
        """backward, clip, step; a non-finite loss or gradient skips the step (counted and logged)
        and too many in a row stop training with a TrainingFault naming the phase.
        backward_done: a CUDA graph already ran the backward and left the gradients in place."""
        if not backward_done:
            optimizer.zero_grad()
        # Under DDP every process must take the same branch (backward all-reduces the gradients):
        # a loss that is non-finite on one process skips the step everywhere. All-reduced
        # gradients are the same on every process, so their check agrees by itself.
        finite = self.trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(loss)), all=True)
        if finite:
            if not backward_done:
                self.manual_backward(loss)
            params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            finite = bool(torch.stack([torch.isfinite(p.grad).all() for p in params]).all())  # one sync
        if not finite:
            optimizer.zero_grad()
            self.skipped_steps[phase] = self.skipped_steps.get(phase, 0) + 1
            self.consecutive_bad_steps += 1
            limit = self.hparams.training["max_bad_steps"]
            if self.consecutive_bad_steps >= limit:
                raise TrainingFault(
                    f"{self.consecutive_bad_steps} non-finite steps in a row (last in the {phase} phase, iteration "
                    f"{self.iteration}); lower that phase's learning rate or check the data, then resume from the "
                    f"last good checkpoint: {self.last_checkpoint() or 'none written yet'}")
            return
        self.consecutive_bad_steps = 0
        if self.hparams.training["grad_clip_norm"]:
            self.clip_gradients(optimizer, gradient_clip_val=self.hparams.training["grad_clip_norm"],
                                gradient_clip_algorithm="norm")
        optimizer.step()

    def last_checkpoint(self) -> str | None:
        paths = [cb.last_model_path or cb.best_model_path for cb in self.trainer.checkpoint_callbacks]
        paths = [p for p in paths if p]
        return max(paths, key=lambda p: Path(p).stat().st_mtime) if paths else None

    # --- the terms every phase reports -------------------------------------------------------
    @staticmethod
    def bound_terms(out) -> dict[str, torch.Tensor]:
        """Reconstruction (negative log-likelihood), KL and ELBO in nats per timestep."""
        rec = -losses.per_timestep(out.rec_log_lik, out.mask)
        kl = losses.per_timestep(out.kl, out.mask)
        return {"rec_per_timestep": rec, "kl_per_timestep": kl, "elbo_per_timestep": -(rec + kl)}

    def critic_scores(self, z_post, z_prior, mask, detach_prior: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        z_prior = z_prior.detach() if detach_prior else z_prior
        return self.critic(z_prior, mask), self.critic(z_post, mask)

    def critic_distance(self, d_prior: torch.Tensor, d_post: torch.Tensor) -> tuple[str, torch.Tensor]:
        """The divergence the critic estimates: Wasserstein-1 (wgan*) or Jensen-Shannon (gan)."""
        if self.hparams.critic["name"] == "gan":
            return "js_divergence", losses.gan_js_estimate(losses.gan_critic_loss(d_prior, d_post))
        return "wasserstein", losses.wgan_adversarial_loss(d_prior, d_post)

    # --- phases: each a loss function of its batch, run by _optimize -------------------------
    def _optimize(self, optimizer, phase: str, loss_fn, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimizer step on loss_fn(*inputs) -> (loss, terms); the forward and backward
        replay a CUDA graph when training.cuda_graphs is on (see on_fit_start)."""
        graphed = self._graphs.get(phase)
        if graphed is not None:
            loss, terms = graphed(*inputs)
            self._step(optimizer, loss, phase, backward_done=True)
            return terms
        loss, terms = loss_fn(*inputs)
        self._step(optimizer, loss, phase)
        return {key: value.detach() for key, value in terms.items()}

    def reconstruction_loss(self, x, mask):
        """Algorithm 1: -sum_t log p(x_t | z_t, h_{t-1}) (plus KL with ablation=hybrid)."""
        terms = self.bound_terms(self.vrnn(x, mask))
        loss = terms["rec_per_timestep"]
        if self.hparams.ablation["name"] == "hybrid":
            loss = loss + self.hparams.ablation["kl_weight"] * terms["kl_per_timestep"]
        return loss, terms

    def critic_loss(self, x, mask):
        """Algorithm 2 (1): L_dis on detached latent sequences (plus the gradient penalty of wgan_gp)."""
        critic = self.hparams.critic
        with torch.no_grad():
            z_post, z_prior = self.vrnn.latents(x)
        d_prior, d_post = self.critic_scores(z_post, z_prior, mask)
        loss = ADVERSARIAL_LOSSES[critic["name"]][0](d_prior, d_post)
        terms = {"critic_loss": loss.detach()}
        if critic["name"] == "wgan_gp":
            penalty = losses.gradient_penalty(self.critic, z_prior, z_post, mask)
            loss = loss + critic["gp_weight"] * penalty
            terms["gradient_penalty"] = penalty.detach()
        name, distance = self.critic_distance(d_prior.detach(), d_post.detach())
        terms[name] = distance  # of the scores before this step
        return loss, terms

    def adversarial_loss(self, x, mask):
        """Algorithm 2 (2): the critic's estimate -L_dis, minimised by TR and PS (omega, tau)."""
        posterior_only = self.hparams.ablation["name"] == "posterior_only"
        d_prior, d_post = self.critic_scores(*self.vrnn.latents(x), mask, detach_prior=posterior_only)
        loss = ADVERSARIAL_LOSSES[self.hparams.critic["name"]][1](d_prior, d_post)
        return loss, {"adversarial_loss": loss.detach()}

    def elbo_loss(self, x, mask, kl_weight):
        """The KL-only baseline: -ELBO, the KL weighted (warm-up) and optionally floored (free bits).
        kl_weight is a tensor, so that a CUDA graph reads its current value."""
        out = self.vrnn(x, mask)
        terms = self.bound_terms(out)
        free_bits = self.hparams.model["free_bits"]
        kl = losses.free_bits_kl(out.kl, out.mask, free_bits) if free_bits > 0 else terms["kl_per_timestep"]
        return terms["rec_per_timestep"] + kl_weight * kl, terms

    def reconstruction_phase(self, optimizer, x, mask) -> dict[str, torch.Tensor]:
        with self.toggled_optimizer(optimizer):
            return self._optimize(optimizer, "reconstruction", self.reconstruction_loss, x, mask)

    def critic_phase(self, optimizer, x, mask) -> dict[str, torch.Tensor]:
        """Critic step, then WGAN weight clipping of eta."""
        with self.toggled_optimizer(optimizer):
            terms = self._optimize(optimizer, "critic", self.critic_loss, x, mask)
            if self.hparams.critic["name"] == "wgan":
                self.critic.clip_weights(self.hparams.critic["clip_value"])
        return terms

    def adversarial_phase(self, optimizer, x, mask) -> dict[str, torch.Tensor]:
        with self.toggled_optimizer(optimizer):
            return self._optimize(optimizer, "adversarial", self.adversarial_loss, x, mask)

    def elbo_phase(self, optimizer, x, mask) -> dict[str, torch.Tensor]:
        warmup = self.hparams.model["kl_warmup_iterations"]
        beta = min(1.0, (self.iteration + 1) / warmup) if warmup > 0 else 1.0
        kl_weight = torch.tensor(beta, device=x.device)
        return {**self._optimize(optimizer, "elbo", self.elbo_loss, x, mask, kl_weight), "kl_weight": kl_weight}

    # --- CUDA graphs ---------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        """training.cuda_graphs: one GraphedBackward per phase where graphs can work (null: quietly
        eager elsewhere; true: with a warning saying why). Eager and graphed steps compute the same."""
        self._graphs = {}
        setting = self.hparams.training.get("cuda_graphs")
        if setting is False:
            return
        reason = None
        if self.device.type != "cuda":
            reason = f"needs a CUDA device (this run is on {self.device.type})"
        elif self.trainer.world_size > 1:
            reason = "does not support several processes (DDP): gradients are all-reduced outside the graph"
        elif getattr(self.trainer.precision_plugin, "scaler", None) is not None:
            reason = f"does not support a gradient scaler (trainer.precision={self.trainer.precision}; use bf16-mixed)"
        if reason:
            if setting:
                log.warning("training.cuda_graphs=true %s: training runs without CUDA graphs", reason)
            return
        losses_by_phase = ({"reconstruction": self.reconstruction_loss, "critic": self.critic_loss,
                            "adversarial": self.adversarial_loss} if self.adversarial else {"elbo": self.elbo_loss})
        self._graphs = {phase: GraphedBackward(loss_fn, list(self.parameters()), phase)
                        for phase, loss_fn in losses_by_phase.items()}

    def on_fit_end(self) -> None:
        self._graphs = {}  # frees the graphs' memory

    # --- Lightning hooks ---------------------------------------------------------------------
    def training_step(self, batches, batch_idx):
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        if self.adversarial:
            n_critic = self.hparams.critic["n_critic"]
            phase_batches = batches if len(batches) > 1 else batches * (n_critic + 2)
            rec_opt, critic_opt, adv_opt = optimizers
            logs = self.reconstruction_phase(rec_opt, *phase_batches[0])
            critic_logs = [self.critic_phase(critic_opt, *b) for b in phase_batches[1:1 + n_critic]]
            logs.update({k: torch.stack([c[k] for c in critic_logs]).mean() for k in critic_logs[0]})
            logs.update(self.adversarial_phase(adv_opt, *phase_batches[-1]))
        else:
            logs = self.elbo_phase(optimizers[0], *batches[0])
        self.iteration += 1
        frames = int(batches[0][1].sum())
        sync = self.trainer.world_size > 1  # DDP: log the mean over processes
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, batch_size=frames, prog_bar=False, sync_dist=sync)
        self.log("train/elbo", logs["elbo_per_timestep"], prog_bar=True, batch_size=frames, logger=False,
                 sync_dist=sync)
        phases = self.phase_parameters().keys()
        self.log_dict({f"lr/{phase}": opt.param_groups[0]["lr"] for phase, opt in zip(phases, optimizers)},
                      batch_size=frames)
        self.log("iteration", float(self.iteration), batch_size=frames)
        if self.skipped_steps:
            self.log_dict({f"faults/skipped_{phase}_steps": float(n) for phase, n in self.skipped_steps.items()},
                          batch_size=frames)
        max_iterations = self.hparams.training["max_iterations"]
        if max_iterations is not None and self.iteration >= max_iterations:
            self.trainer.should_stop = True

    def _evaluate(self, batch, split: str) -> None:
        x, mask = batch
        out = self.vrnn(x, mask)
        frames = int(mask.sum())
        logs = self.bound_terms(out)
        if self.adversarial:
            name, distance = self.critic_distance(*self.critic_scores(out.z_post, out.z_prior, out.mask))
            logs[name] = distance
        # batch_size=frames makes the epoch average a ratio of sums (nats per timestep); under DDP the
        # sums and frame counts are reduced over processes, so every process monitors the same value.
        self.log_dict({f"{split}/{k}": v for k, v in logs.items()}, batch_size=frames, prog_bar=split == "val",
                      sync_dist=self.trainer.world_size > 1)

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        """Free-running prior samples as TensorBoard audio (normalisation undone)."""
        every = self.hparams.training.get("audio_every_n_epochs", 0)
        experiment = getattr(self.logger, "experiment", None)
        if (not every or self.trainer.sanity_checking or not hasattr(experiment, "add_audio")
                or self.current_epoch % every or self.hparams.normalization is None):
            return
        sample_rate = int((self.hparams.data or {}).get("sample_rate", 16000))
        steps = max(1, round(self.hparams.training.get("audio_seconds", 2.0) * sample_rate
                             / self.hparams.model["frame_size"]))
        normalization = Normalization(**self.hparams.normalization)
        for index, frames in enumerate(self.vrnn.sample(2, steps)):
            wave = normalization.undo(unframe(frames)).clamp(-1, 1).cpu()
            if not torch.isfinite(wave).all():
                return  # a diverged model: the fault counters say so; nothing to listen to
            experiment.add_audio(f"samples/prior_{index}", wave, self.iteration, sample_rate=sample_rate)

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, "test")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Our iteration counter and the torch RNG states (latent noise, gradient-penalty mixing),
        so a resumed run draws the same noise as an uninterrupted one. Plain tensors only."""
        checkpoint["avrnn_iteration"] = self.iteration
        checkpoint["avrnn_skipped_steps"] = dict(self.skipped_steps)
        checkpoint["avrnn_rng"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["avrnn_rng"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.iteration = checkpoint.get("avrnn_iteration", 0)
        self.skipped_steps = dict(checkpoint.get("avrnn_skipped_steps", {}))
        rng = checkpoint.get("avrnn_rng")
        if rng is not None and self._trainer is not None:  # resuming a fit, not just loading weights
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
