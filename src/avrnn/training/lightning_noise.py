"""Lines Lightning writes into every run's log that tell a researcher nothing, or something untrue here:

- its "💡 Tip" lines advertising its cloud products (rank_zero_info, at every Trainer);
- the deprecation of `LeafSpec` by its own pytree helper (torch's, not this project's code; no action);
- "Using ModelCheckpoint with manual optimization and every_n_train_steps, but no pre-optimization state
  was saved" with fifteen lines of example code, at every `training.checkpoint_every_iterations` save:
  the state after the iteration's optimizer steps is the one wanted (the save comes at an iteration
  boundary, beside the iteration counter; tests/test_resume.py resumes from it bitwise);
- "Checkpoint directory ... exists and is not empty" when a run resumes from its own folder's checkpoints
  (they are expected there). Into another folder (ckpt_path elsewhere) the warning stays;
- "You're resuming from a checkpoint that ended before the epoch ended and your dataloader is not
  resumable": untrue here. The training batches are a pure function of (seed, epoch) and the module's
  iteration counter (avrnn.data.datamodule.EpochBatchSampler), so a run resumed mid-epoch sees the
  batches an uninterrupted run would (tests/test_resume.py holds it bitwise).

`quiet()` drops the first three for the process (calling it again adds nothing); `resuming(own_folder)`
drops the last (and, in its own folder, the third), to be called inside a `warnings.catch_warnings()`
around the resumed fit.

`quiet()` also sends Lightning's info lines ("GPU available: ...", which checkpoint the test after training
restores) through the root logger's handlers where it has any (Hydra's console line and the job's log): what
Lightning does itself where logging was set up before it was imported. The entry points import it first, so
its own handler wrote them to stderr alone, beside the one error or stop line, and never into train.log.
"""

from __future__ import annotations

import logging
import warnings

TIP_PREFIX = "💡 Tip:"
RANK_ZERO_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero",
                     "lightning_utilities.core.rank_zero")
LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning_fabric")  # the loggers Lightning gives a handler of its own
LEAFSPEC = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
AFTER_OPTIMIZATION = r"Using ModelCheckpoint with manual optimization and every_n_train_steps, but no pre-optimization"
NOT_EMPTY = r"Checkpoint directory .* exists and is not empty"
NOT_RESUMABLE = r"You're resuming from a checkpoint that ended before the epoch ended and your dataloader is not"


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(TIP_PREFIX)


_FILTER = _DropTips()


def quiet() -> None:
    """Drop Lightning's tips, the LeafSpec deprecation and the manual-optimization checkpoint warning
    (idempotent)."""
    # rank_zero_info logs through whichever of these Lightning's imports set last (lightning_utilities' `log`)
    for name in RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    warnings.filterwarnings("ignore", message=LEAFSPEC)
    warnings.filterwarnings("ignore", message=AFTER_OPTIMIZATION)
    if logging.getLogger().handlers:
        for name in LIGHTNING_LOGGERS:
            logger = logging.getLogger(name)
            if not logger.propagate:  # Lightning's own fallback (its __init__): a bare StreamHandler to stderr
                for handler in [h for h in logger.handlers if type(h) is logging.StreamHandler]:
                    logger.removeHandler(handler)
                logger.propagate = True


def resuming(own_folder: bool) -> None:
    """Drop the "not resumable" warning, and in the run's own folder the "not empty" one, until the enclosing
    `warnings.catch_warnings()` ends."""
    warnings.filterwarnings("ignore", message=NOT_RESUMABLE)
    if own_folder:
        warnings.filterwarnings("ignore", message=NOT_EMPTY)
