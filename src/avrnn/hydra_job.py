"""Hydra's record of the running job (HydraConfig), read in one place.

Hydra sets the record for each job and restores it afterwards, but its --cfg, --help and --info set it and
never clear it: in a process that ran one of them in-process (tests, a notebook), a later call from Python
would read that record as its own job's (its overrides, its mode) and find no output folder in it. A running
job's record always names its output folder; theirs does not."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def running() -> DictConfig | None:
    """The running Hydra job's record (hydra.*: overrides, mode, runtime.output_dir, sweeper), or None
    outside a Hydra job."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    record = HydraConfig.get()
    return record if OmegaConf.select(record, "runtime.output_dir") else None


def overrides() -> list[str] | None:
    """The running job's command-line overrides; None outside a Hydra job (a config composed in Python)."""
    record = running()
    return list(record.overrides.task) if record is not None else None


def output_folder() -> Path | None:
    """The running job's output folder (its log file is there); None outside a Hydra job."""
    record = running()
    return Path(record.runtime.output_dir) if record is not None else None


def in_multirun() -> bool:
    from hydra.types import RunMode

    record = running()
    return record is not None and record.mode == RunMode.MULTIRUN
