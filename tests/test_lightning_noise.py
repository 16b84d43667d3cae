"""A run's log holds no Lightning advert and none of the two warnings that are noise or untrue here;
every other Lightning line stays."""

import logging
import warnings

from avrnn.training import lightning_noise


class Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_a_training_run_logs_no_tip_and_no_leafspec_or_nonempty_folder_warning(make_cfg, tmp_path):
    """Read at Lightning's own rank-zero loggers: an earlier test's logging set-up (Hydra's, in the same
    worker) may stop their records from reaching pytest's capture, which would make this test pass blind."""
    from avrnn.training.fit import train

    run, seen = tmp_path / "run", Lines()
    loggers = [logging.getLogger(name) for name in lightning_noise.RANK_ZERO_LOGGERS]
    kept = [(logger.level, logger.disabled) for logger in loggers]
    for logger in loggers:
        logger.addHandler(seen)
        logger.setLevel(logging.INFO)
        logger.disabled = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=2", "training.iterations_per_epoch=1",
                           "training.checkpoint_every_iterations=1"))
            train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=3", "training.iterations_per_epoch=1",
                           "ckpt_path=last"))  # a resume: its own folder holds checkpoints
    finally:
        for logger, (level, disabled) in zip(loggers, kept):
            logger.removeHandler(seen)
            logger.setLevel(level)
            logger.disabled = disabled
    assert not [line for line in seen.lines if "Tip" in line or "litlogger" in line]
    assert any("GPU available" in line for line in seen.lines)  # Lightning's other lines stay
    said = [str(w.message) for w in caught]
    assert not [m for m in said if "LeafSpec" in m or "exists and is not empty" in m or "pre-optimization" in m]


def test_only_the_tip_is_dropped_and_quiet_twice_adds_one_filter():
    lightning_noise.quiet()
    lightning_noise.quiet()
    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    assert logger.filters.count(lightning_noise._FILTER) == 1
    make = lambda msg: logging.LogRecord(logger.name, logging.INFO, __file__, 1, msg, None, None)
    assert not lightning_noise._FILTER.filter(make("💡 Tip: For seamless cloud logging, try litlogger"))
    assert lightning_noise._FILTER.filter(make("GPU available: False, used: False"))
    not_empty = "Checkpoint directory /x/checkpoints exists and is not empty."
    not_resumable = ("You're resuming from a checkpoint that ended before the epoch ended and your dataloader is not "
                     "resumable. This can cause unreliable results if further training is done.")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lightning_noise.quiet()  # catch_warnings restores the filters it found: set them inside
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", DeprecationWarning)
        warnings.warn(not_empty, UserWarning)  # kept: only a resume in its own folder drops it
        warnings.warn("something else", UserWarning)
        lightning_noise.resuming(own_folder=False)
        warnings.warn(not_empty, UserWarning)  # kept: a resume into another folder
        warnings.warn(not_resumable, UserWarning)  # dropped: the batch order resumes exactly
        lightning_noise.resuming(own_folder=True)
        warnings.warn(not_empty, UserWarning)
    assert [str(w.message) for w in caught] == [not_empty, "something else", not_empty]


def test_a_resume_into_another_runs_folder_keeps_lightnings_warning(make_cfg, tmp_path):
    from avrnn.training.fit import train

    first, other = tmp_path / "first", tmp_path / "other"
    for run in (first, other):
        train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=2", "training.iterations_per_epoch=1"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(make_cfg(f"paths.output_dir={other}", "training.max_iterations=3", "training.iterations_per_epoch=1",
                       f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}"))
    assert any("exists and is not empty" in str(w.message) for w in caught)
