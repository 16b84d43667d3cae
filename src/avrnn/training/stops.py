"""Stop signals: every stop saves at an iteration boundary, says so, and exits 128 + signal.

SIGTERM (SLURM at a time limit or preemption, `kill`), SIGINT (Ctrl+C), SIGUSR1 and SIGUSR2
(submitit's and many clusters' warning signals) only set a flag (`StopSignals`). `StopAtBoundary`
(a Lightning callback) reads it where a stop is safe and quick:
  - after each training iteration: last.ckpt is saved there (resumes bit-exactly), then the run stops;
  - during a validation inside training: the validation is abandoned, last.ckpt of the iteration just
    trained is saved, then the run stops (the resumed run validates again); under DDP, whose processes
    may score different numbers of batches, at the next iteration boundary instead;
  - before the first iteration (corpus reading, the untrained model's validation, set-up): nothing new
    was trained, nothing is saved; checkpoints already there are kept;
  - during the final test: training is complete and saved; the test is abandoned (src/evaluate.py
    scores the checkpoint) and metrics.json is not written (under DDP the test runs to its end).
Under DDP the processes agree (a max over processes, at each iteration boundary) before anyone saves.
Lightning's own SIGTERM handling (an exception that exits 0 without saving) is replaced whenever a
Trainer stage starts, and the exit status is set here (cli), not by Lightning.
A handler that was installed before the run (submitit's requeue on SIGUSR2) is called after the
checkpoint is saved (`chain_previous`), so the cluster requeues a job whose work is on disk.
"""

from __future__ import annotations

import os
import shlex
import signal
import threading
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.trainer.states import TrainerFn

from avrnn import hydra_job
from avrnn.data.progress import counted

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)


class RunStopped(BaseException):
    """The run stopped on a signal; `exit_code` is 128 + the signal's number and `message` one line,
    starting "stopped by <SIGNAL>" and printed as it is (a stop is not an error: no "error: " prefix).
    A BaseException (as KeyboardInterrupt): no `except Exception` on the way (Hydra's job runner,
    a sweep) mistakes a stop for a failed job and goes on with the next one."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum, self.message = signum, message

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopSignals:
    """Installs flag-only handlers for SIGNALS (main thread only; elsewhere signals cannot be caught)
    and restores the earlier ones on `restore()`. `received` is the first signal's number, or 0;
    `all_received` every signal received, in order. A second signal while a stop is pending ends the
    process as the earlier handlers would (Ctrl+C twice: KeyboardInterrupt; SIGTERM twice: the default
    action): a run stuck before its next boundary can still be ended; what is saved is never torn."""

    def __init__(self):
        self.received = 0
        self.all_received: list[int] = []
        self.previous: dict[int, object] = {}

    def _handler(self, signum: int, frame) -> None:
        if self.received and signum == self.all_received[-1]:  # the same signal again: stop now
            self.restore()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            os.kill(os.getpid(), signum)
            return
        self.received = self.received or signum
        self.all_received.append(signum)

    def install(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                current = signal.getsignal(signum)
                if current != self._handler:
                    self.previous.setdefault(signum, current)
                    signal.signal(signum, self._handler)
        return self

    def reinstall(self) -> None:
        """Take SIGTERM back from Lightning, which installs its own whenever a Trainer stage starts."""
        if threading.current_thread() is threading.main_thread() and self.previous:
            for signum in SIGNALS:
                if signal.getsignal(signum) != self._handler:
                    signal.signal(signum, self._handler)

    def restore(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum, handler in self.previous.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self.previous = {}

    def chain_previous(self) -> None:
        """Call the handlers the received signals had before the run (e.g. submitit's checkpoint-and-requeue
        on SIGUSR2, which may exit), now that the run's work is saved: the warning signals first, so a
        SIGTERM that followed submitit's SIGUSR2 does not hide the requeue. Python's own defaults are not
        called."""
        order = sorted(set(self.all_received), key=lambda signum: signum not in (signal.SIGUSR1, signal.SIGUSR2))
        for signum in order:
            handler = self.previous.get(signum)
            if callable(handler) and handler is not signal.default_int_handler:
                handler(signum, None)


def agreed_signal(trainer: pl.Trainer, received: int) -> int:
    """The signal to stop on, the same in every process (the highest number any process received)."""
    if trainer.world_size <= 1:
        return received
    flag = torch.tensor(float(received), device=trainer.strategy.root_device)
    return int(trainer.strategy.reduce(flag, reduce_op="max").item())


def resume_command(output_dir: Path, overrides: list[str] | None = None) -> str:
    """The command that resumes this run: its own command-line overrides (Hydra's record of them, shell-quoted;
    `<the same overrides>` outside a Hydra run), its folder and ckpt_path=last."""
    if overrides is None:
        overrides = hydra_job.overrides()
    given = ("<the same overrides>" if overrides is None else
             " ".join(shlex.quote(item) for item in overrides if not item.startswith(("hydra.run.dir=", "ckpt_path="))))
    return " ".join(part for part in ("python src/train.py", given, f"hydra.run.dir={output_dir} ckpt_path=last") if part)


class StopAtBoundary(pl.Callback):
    """Turns a received signal into a saved, announced stop (see the module's docstring)."""

    def __init__(self, signals: StopSignals, checkpoint_path: Path):
        self.signals, self.checkpoint_path = signals, Path(checkpoint_path)
        self._start_iteration: int | None = None  # the iteration this process started training from

    # Lightning installs its SIGTERM handler after `setup`, right before each stage runs
    def on_sanity_check_start(self, trainer, module) -> None:
        self.signals.reinstall()

    def on_train_start(self, trainer, module) -> None:
        self.signals.reinstall()
        self._start_iteration = module.iteration  # after a resume's restore
        signum = agreed_signal(trainer, self.signals.received)
        if signum:
            self._stop_untrained(trainer, module, signum, "before its first iteration")

    def on_validation_start(self, trainer, module) -> None:
        self.signals.reinstall()

    def on_test_start(self, trainer, module) -> None:
        self.signals.reinstall()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        signum = agreed_signal(trainer, self.signals.received)
        if signum:
            # Lightning writes the iteration's logged values to the loggers only after this hook: write them
            # now, at the step it would (else the saved iteration's losses are missing from TensorBoard)
            trainer._logger_connector.update_train_step_metrics()
            self._save_and_stop(trainer, module, signum, "after")

    def on_validation_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.world_size > 1:  # processes may score different numbers of batches: no collective here
            return
        signum = self.signals.received
        if not signum:
            return
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING or module.iteration == self._start_iteration:
            self._stop_untrained(trainer, module, signum, "before its first iteration (during a validation)")
        self._save_and_stop(trainer, module, signum, "during the validation after")

    def on_test_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        signum = self.signals.received if trainer.world_size == 1 else 0  # as in validation
        if signum:
            raise RunStopped(signum, f"stopped by {signal.Signals(signum).name} during the final test: training "
                                     f"finished ({counted(module.iteration, 'iteration')}) and its checkpoints are in "
                                     f"{self.checkpoint_path.parent}; metrics.json was not written; score it with "
                                     f"python src/evaluate.py ckpt_path=<a checkpoint there>")

    def _stop_untrained(self, trainer, module, signum: int, when: str) -> None:
        kept = (f"{self.checkpoint_path} (iteration {module.iteration}) is kept as it was"
                if self.checkpoint_path.is_file() else "no checkpoint existed")
        raise RunStopped(signum, f"stopped by {signal.Signals(signum).name} {when}: nothing new was trained, nothing "
                                 f"saved; {kept}")

    def _save_and_stop(self, trainer, module, signum: int, when: str) -> None:
        trainer.save_checkpoint(self.checkpoint_path, weights_only=False)  # the full state; every process calls it, rank 0 writes
        output_dir = self.checkpoint_path.parent.parent
        raise RunStopped(signum, f"stopped by {signal.Signals(signum).name} {when} iteration {module.iteration}: "
                                 f"saved {self.checkpoint_path} (iteration {module.iteration}); resume with "
                                 f"{resume_command(output_dir)}")
