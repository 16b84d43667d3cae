"""Progress as log lines, for runs whose output is not a terminal (SLURM, nohup, `make train > run.log`).

A progress bar redraws one line of a terminal; written to a file it shows nothing until the run ends.
Where stdout is not a terminal, `ProgressLines` writes instead (rank 0 only, through the `avrnn.training`
logger: stdout and the run folder's train.log):

    progress: iteration 120/600 (20%), 3.21 it/s, ETA 2m30s; last batch: ELBO -1.680, rec 1.230, KL 0.450 nats/...
    validation after iteration 200: ELBO -1.520, rec 1.100, KL 0.420 nats/timestep (best checkpoint so far)
    validation after iteration 300: ELBO -1.610, rec 1.150, KL 0.460 nats/... (not the best; best checkpoint so far -1.520)

a progress line at most every `training.log_every_seconds` seconds of training (checked at the end of each
iteration), and one line per validation ("best checkpoint so far" as the best checkpoint is chosen: among the
validations of the fit; the untrained model's, before it, is reported apart). With a terminal the bar stays (avrnn.training.callbacks).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Callable

import pytorch_lightning as pl
from pytorch_lightning.trainer.states import TrainerFn

from avrnn.data.progress import duration

log = logging.getLogger("avrnn.training")
MONITOR = "val/elbo_per_timestep"
BOUNDS = (("ELBO", "elbo_per_timestep"), ("rec", "rec_per_timestep"), ("KL", "kl_per_timestep"))


def bounds(metrics: dict, split: str) -> str:
    """`ELBO -1.68, rec 1.23, KL 0.45 nats/timestep` from a trainer's callback_metrics (those logged)."""
    parts = [f"{name} {float(metrics[f'{split}/{key}']):.3f}" for name, key in BOUNDS if f"{split}/{key}" in metrics]
    return ", ".join(parts) + " nats/timestep" if parts else "no bounds logged yet"


class ProgressLines(pl.Callback):
    """Writes progress and validation lines (module docstring). `clock` (seconds, monotonic) is for tests.

    Args:
        every_seconds: the least time between two progress lines (training.log_every_seconds); > 0.
        clock: a monotonic clock in seconds (time.monotonic).
    """

    def __init__(self, every_seconds: float, clock: Callable[[], float] = time.monotonic):
        if not every_seconds > 0:
            raise ValueError(f"every_seconds must be > 0, got {every_seconds}")
        self.every_seconds = every_seconds
        self.clock = clock
        self._start = self._last = 0.0
        self._start_iteration = self._last_iteration = 0
        self._best: float | None = None

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._start = self._last = self.clock()
        self._start_iteration = self._last_iteration = module.iteration
        score = getattr(trainer.checkpoint_callback, "best_model_score", None)  # restored on resume
        self._best = float(score) if score is not None else self._best
        total = module.hparams.training.get("max_iterations")
        if trainer.is_global_zero and not (total and module.iteration >= total):  # (a finished run's test only)
            log.info("training: from iteration %d%s; a progress line every %s (training.log_every_seconds)",
                     module.iteration, f" to {total}" if total else "", duration(self.every_seconds))

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args) -> None:
        now = self.clock()
        if now - self._last < self.every_seconds:
            return
        iteration, total = module.iteration, module.hparams.training.get("max_iterations")
        rate = (iteration - self._last_iteration) / (now - self._last)
        overall = (iteration - self._start_iteration) / (now - self._start)
        self._last, self._last_iteration = now, iteration
        if not trainer.is_global_zero:
            return
        if total:
            eta = (total - iteration) / overall if overall > 0 else math.inf
            where = f"iteration {iteration}/{total} ({iteration / total:.0%}), {rate:.3g} it/s, ETA {duration(eta)}"
        else:
            where = f"iteration {iteration}, {rate:.3g} it/s"
        log.info("progress: %s; last batch: %s", where, bounds(trainer.callback_metrics, "train"))

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(MONITOR)
        if value is None:
            return
        if trainer.state.fn != TrainerFn.FITTING:  # the untrained model's: no checkpoint is chosen by it
            if trainer.is_global_zero:
                log.info("validation before training (iteration %d): %s", module.iteration,
                         bounds(trainer.callback_metrics, "val"))
            return
        value = float(value)
        best = math.isfinite(value) and (self._best is None or value > self._best)
        if best:
            verdict, self._best = "best checkpoint so far", value
        else:
            verdict = "not the best" + (f"; best checkpoint so far {self._best:.3f}" if self._best is not None else "")
        if trainer.is_global_zero:
            log.info("validation after iteration %d: %s (%s)", module.iteration,
                     bounds(trainer.callback_metrics, "val"), verdict)
