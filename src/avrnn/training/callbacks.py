"""Lightning callbacks the training run adds (avrnn.training.fit.build_trainer)."""

from __future__ import annotations

import time

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import RichProgressBar, TQDMProgressBar
from pytorch_lightning.callbacks.progress.rich_progress import _RICH_AVAILABLE
from pytorch_lightning.callbacks.progress.tqdm_progress import _update_n

from avrnn.training import denormals
from avrnn.training.resume import mark_training_started


class PriorAudioSamples(pl.Callback):
    """After every `training.audio_every_n_epochs`-th validation: free-running prior samples as
    TensorBoard audio (decoded by the data representation: de-normalised waveform frames, or power
    spectrograms with a Griffin-Lim phase), `training.audio_seconds` long."""

    def on_validation_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        hparams = module.hparams
        every = hparams.training.get("audio_every_n_epochs", 0)
        experiment = getattr(module.logger, "experiment", None)
        representation = module.representation
        if (not every or trainer.sanity_checking or not hasattr(experiment, "add_audio")
                or trainer.current_epoch % every or representation is None):
            return
        sample_rate = int((hparams.data or {}).get("sample_rate", 16000))
        steps = representation.steps(hparams.training.get("audio_seconds", 2.0), sample_rate)
        for index, frames in enumerate(module.vrnn.sample(2, steps)):
            if not torch.isfinite(frames).all():
                return  # a diverged model: the fault counters say so; nothing to listen to
            wave = torch.from_numpy(representation.decode(frames))
            experiment.add_audio(f"samples/prior_{index}", wave, module.iteration, sample_rate=sample_rate)


class SaveEveryMinutes(pl.Callback):
    """`last.ckpt` after the first iteration that ends `minutes` or more after the previous save (or the
    start): training.checkpoint_every_minutes. Lightning's own ModelCheckpoint(train_time_interval=...)
    never fires under manual optimization (2.6: its on_train_batch_end returns before the time check when
    every_n_train_steps is 0; the fix, Lightning-AI/pytorch-lightning PR 21699, is open: once released,
    this class can give way to it), so a run of long epochs saved only at their ends. Saved at an iteration
    boundary, as a stop saves (resumed bitwise); rank 0's clock decides for every DDP process."""

    def __init__(self, path, minutes: float):
        self.path, self.seconds = path, 60.0 * minutes
        self._last: float | None = None

    def on_train_start(self, trainer, module) -> None:
        self._last = time.monotonic()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        due = trainer.strategy.broadcast(time.monotonic() - self._last >= self.seconds)
        if due:
            trainer.save_checkpoint(self.path, weights_only=False)  # every process calls it, rank 0 writes
            self._last = time.monotonic()


class RandomState(pl.Callback):
    """The training random stream (latent noise, gradient-penalty mixing): saved in every checkpoint and
    restored on resume, so a resumed run draws the same noise as an uninterrupted one; and never drawn
    from by evaluation (validation, test, the sanity check, the prior samples and figures logged then),
    which runs on its own stream seeded with `evaluation_seed` (+ the process's rank) and gives the
    training stream back untouched. Otherwise where a run validated (or stopped) would change what it
    trains on afterwards, and a run stopped mid-epoch would not resume to an uninterrupted one."""

    def __init__(self, evaluation_seed: int = 0):
        self.evaluation_seed = evaluation_seed
        self._training_stream: dict | None = None

    def on_save_checkpoint(self, trainer, module, checkpoint: dict) -> None:
        checkpoint["avrnn_rng"] = self._training_stream or self._state()

    def on_load_checkpoint(self, trainer, module, checkpoint: dict) -> None:
        rng = checkpoint.get("avrnn_rng")
        if rng is not None:
            self._restore(rng)

    # --- evaluation on its own stream ---------------------------------------------------------
    def _fork(self, trainer, *args) -> None:
        if self._training_stream is None:  # not nested (a test inside a validation is not a thing)
            self._training_stream = self._state()
            torch.manual_seed(self.evaluation_seed + trainer.global_rank)  # CPU and every CUDA device

    def _join(self, *args) -> None:
        if self._training_stream is not None:
            self._restore(self._training_stream)
            self._training_stream = None

    on_validation_start = on_test_start = on_predict_start = _fork
    on_validation_end = on_test_end = on_predict_end = _join

    @staticmethod
    def _state() -> dict:
        state = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    @staticmethod
    def _restore(state: dict) -> None:
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class DenormalPolicy(pl.Callback):
    """Applies `flush_denormal` (avrnn.training.denormals) in every process that trains, DDP ranks started by
    spawning included, where the entry point's own call did not reach (a no-op where it did)."""

    def __init__(self, flush: bool):
        self.flush = flush

    def setup(self, trainer, module, stage: str) -> None:
        if denormals.state() != ("flushed" if self.flush else "IEEE"):
            denormals.apply(self.flush)


def _iteration_total(module) -> int | None:
    return module.hparams.training.get("max_iterations")


class IterationTQDMBar(TQDMProgressBar):
    """Lightning's plain bar counting A-VRNN iterations out of training.max_iterations (Lightning's own
    counts batches of an epoch and shows "Epoch N": runs here stop on iterations, with no epoch limit)."""

    def on_train_epoch_start(self, trainer, module, *args) -> None:
        super().on_train_epoch_start(trainer, module, *args)
        if _iteration_total(module):
            self.train_progress_bar.total = _iteration_total(module)
            _update_n(self.train_progress_bar, module.iteration)
            self.train_progress_bar.set_description("iterations")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if not _iteration_total(module):
            return super().on_train_batch_end(trainer, module, outputs, batch, batch_idx)
        bar = self.train_progress_bar
        if bar is not None and self._should_update(module.iteration, bar.total):
            _update_n(bar, module.iteration)
            bar.set_postfix(self.get_metrics(trainer, module))


class IterationRichBar(RichProgressBar):
    """Lightning's rich bar counting A-VRNN iterations out of training.max_iterations (see IterationTQDMBar)."""

    def on_train_epoch_start(self, trainer, module) -> None:
        super().on_train_epoch_start(trainer, module)
        if _iteration_total(module) and self.progress is not None and self.train_progress_bar_id is not None:
            self.progress.update(self.train_progress_bar_id, total=_iteration_total(module),
                                 completed=module.iteration, description=self._padded("iterations"))
            self.refresh()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if not _iteration_total(module):
            return super().on_train_batch_end(trainer, module, outputs, batch, batch_idx)
        if not self.is_disabled and self.train_progress_bar_id is None:
            self._initialize_train_progress_bar_id()  # resumed mid-epoch
        self._update(self.train_progress_bar_id, module.iteration)
        self._update_metrics(trainer, module)
        self.refresh()

    def _padded(self, text: str) -> str:
        return f"{text:{len(self.validation_description)}}"


def progress_bar() -> pl.Callback:
    """The bar Lightning would pick (rich where it is installed), counting iterations."""
    return IterationRichBar() if _RICH_AVAILABLE else IterationTQDMBar()


class StoreConfig(pl.Callback):
    """Saves the run's whole resolved config (plain data, resolved once: spawned DDP processes have no
    Hydra to resolve it) and each split's membership (SpeechDataModule.split_membership) in every
    checkpoint, for a resume to compare against (avrnn.training.resume); marks when training has started
    (a resume that fails before that puts the run folder's config back)."""

    def __init__(self, config: dict, splits: dict | None = None):
        self.config, self.splits = config, splits

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        mark_training_started()

    def on_save_checkpoint(self, trainer, module, checkpoint: dict) -> None:
        checkpoint["avrnn_config"] = self.config
        if self.splits is not None:
            checkpoint["avrnn_splits"] = self.splits
