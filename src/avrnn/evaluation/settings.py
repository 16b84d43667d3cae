"""Typed schemas of src/evaluate.py and src/generate.py (conf/evaluate.yaml, conf/generate.yaml), as
training has (avrnn.config): a value of the wrong type fails when Hydra composes the config (one line
through avrnn.cli); `check_evaluate` / `check_generate` then check what types cannot express (positive
counts, allowed names), before the checkpoint is read or anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from omegaconf import II, MISSING

from avrnn.config import ConfigError, DataConfig, check_num_threads

SPLITS = ("train", "val", "test")
# IWAE-k's teacher-forced pass keeps every step of particles x utterances (avrnn.evaluation.chunks): about
# 15 KB per particle-frame at the default model size, so about 4 GB at this many
MAX_PARTICLE_FRAMES = 250_000


@dataclass
class EvalPathsConfig:  # used by data=... configs
    data_dir: str = "data"
    cache_dir: str = "${paths.data_dir}/cache"


@dataclass
class _Scored:
    ckpt_path: str = MISSING
    seed: int = 0
    num_threads: Optional[int] = None  # torch CPU threads (null: all cores)
    flush_denormal: bool = True
    trusted_targets: list[str] = field(default_factory=list)  # classes of your own a checkpoint names
    output_dir: str = II("hydra:runtime.output_dir")
    paths: EvalPathsConfig = field(default_factory=EvalPathsConfig)
    data: Optional[DataConfig] = None  # data=<group> data.root=...: another corpus


@dataclass
class EvaluateConfig(_Scored):
    split: str = "test"
    iwae_k: list[int] = field(default_factory=lambda: [16, 64])  # IWAE-k bounds, k particles each
    fivo_k: list[int] = field(default_factory=lambda: [16, 64])  # FIVO-k bounds
    batch_size: int = 8
    # particles x utterances x frames that IWAE-k scores at once; a batch above it is scored in parts
    max_particle_frames: int = MAX_PARTICLE_FRAMES
    speech_quality: bool = True


@dataclass
class GenerateConfig(_Scored):
    n: int = 8  # samples from the prior
    seconds: float = 3.0  # length of each sample
    reconstructions: int = 4  # test utterances written as original + reconstruction (0: none)


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
    if not cfg.seconds > 0:
        raise ConfigError(f"seconds (the length of each sample) must be positive, got {cfg.seconds}")
    _at_least("reconstructions", cfg.reconstructions, 0)
    if cfg.n == 0 and cfg.reconstructions == 0:
        raise ConfigError("n=0 and reconstructions=0 write nothing; ask for samples (n=8) or reconstructions")
    check_num_threads(cfg.num_threads)
