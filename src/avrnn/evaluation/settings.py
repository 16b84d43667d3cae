"""The checks of src/evaluate.py's and src/generate.py's settings (their typed schemas, EvaluateConfig and
GenerateConfig, are in avrnn.config with training's): a value of the wrong type fails when Hydra composes
the config (one line through avrnn.cli); `check_evaluate` / `check_generate` then check what types cannot
express (positive counts, allowed names), before the checkpoint is read or anything is written.
"""

from __future__ import annotations

from avrnn.config import ConfigError, check_num_threads

SPLITS = ("train", "val", "test")
MAX_SECONDS = 3600.0  # generate.py: the longest sample


def _at_least(key: str, value, least) -> None:
    if value < least:
        raise ConfigError(f"{key} must be {'positive' if least > 0 else 'at least ' + str(least)}, got {value}")


def check_evaluate(cfg) -> None:
    """One ConfigError line for the first value that cannot work."""
    if cfg.split not in SPLITS:
        raise ConfigError(f"split={cfg.split!r} is not a split; choose one of {', '.join(SPLITS)}")
    for key in ("iwae_k", "fivo_k"):
        for k in cfg[key]:
            if k < 1:
                raise ConfigError(f"{key}={list(cfg[key])}: each k is a number of particles, 1 or more "
                                  f"(k=1 is the ELBO); use e.g. {key}=[16,64], or {key}=[] for none")
    _at_least("batch_size", cfg.batch_size, 1)
    _at_least("max_particle_frames", cfg.max_particle_frames, 1)
    check_num_threads(cfg.num_threads)


def check_generate(cfg) -> None:
    """One ConfigError line for the first value that cannot work."""
    _at_least("n (samples from the prior)", cfg.n, 0)
    if not 0 < cfg.seconds <= MAX_SECONDS:
        raise ConfigError(f"seconds (the length of each sample) must be positive and at most {MAX_SECONDS:g} (an "
                          f"hour: samples are drawn one timestep after another), got {cfg.seconds}")
    _at_least("reconstructions", cfg.reconstructions, 0)
    if cfg.get("griffin_lim_iterations") is not None:
        _at_least("griffin_lim_iterations", cfg.griffin_lim_iterations, 1)
    if cfg.n == 0 and cfg.reconstructions == 0:
        raise ConfigError("n=0 and reconstructions=0 write nothing; ask for samples (n=8) or reconstructions")
    check_num_threads(cfg.num_threads)
