"""Lightning callbacks the training run adds (avrnn.training.build_trainer)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from avrnn import denormals
from avrnn.data.framing import Normalization, unframe


class PriorAudioSamples(pl.Callback):
    """After every `training.audio_every_n_epochs`-th validation: free-running prior samples as
    TensorBoard audio (normalisation undone), `training.audio_seconds` long."""

    def on_validation_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        hparams = module.hparams
        every = hparams.training.get("audio_every_n_epochs", 0)
        experiment = getattr(module.logger, "experiment", None)
        if (not every or trainer.sanity_checking or not hasattr(experiment, "add_audio")
                or trainer.current_epoch % every or hparams.normalization is None):
            return
        sample_rate = int((hparams.data or {}).get("sample_rate", 16000))
        steps = max(1, round(hparams.training.get("audio_seconds", 2.0) * sample_rate / hparams.model["frame_size"]))
        normalization = Normalization(**hparams.normalization)
        for index, frames in enumerate(module.vrnn.sample(2, steps)):
            wave = normalization.undo(unframe(frames)).clamp(-1, 1).cpu()
            if not torch.isfinite(wave).all():
                return  # a diverged model: the fault counters say so; nothing to listen to
            experiment.add_audio(f"samples/prior_{index}", wave, module.iteration, sample_rate=sample_rate)


class RandomState(pl.Callback):
    """Saves the torch RNG states (latent noise, gradient-penalty mixing) in every checkpoint and
    restores them on resume, so a resumed run draws the same noise as an uninterrupted one."""

    def on_save_checkpoint(self, trainer, module, checkpoint: dict) -> None:
        checkpoint["avrnn_rng"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["avrnn_rng"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, trainer, module, checkpoint: dict) -> None:
        rng = checkpoint.get("avrnn_rng")
        if rng is not None:
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])


class DenormalPolicy(pl.Callback):
    """Applies `flush_denormal` (avrnn.denormals) in every process that trains, DDP ranks started by
    spawning included, where the entry point's own call did not reach (a no-op where it did)."""

    def __init__(self, flush: bool):
        self.flush = flush

    def setup(self, trainer, module, stage: str) -> None:
        if denormals.state() != ("flushed" if self.flush else "IEEE"):
            denormals.apply(self.flush)
