"""Hyper-parameter searches that survive failed trials: hydra-optuna-sweeper, with every trial's
outcome recorded.

hydra-optuna-sweeper records a trial as FAILED in the Optuna study when its job raised, and the
search goes on (max_failure_rate: 1.0 in conf/hparams_search/*). A trial whose objective is NaN or
infinite must therefore raise (objective() below: never a made-up value that TPE would learn from);
Optuna 2.x would otherwise refuse the value and end the whole search. `OptunaSweeper` (hydra_plugins.avrnn_optuna_sweeper, the
`hydra.sweeper._target_` of those configs) adds to the plugin's <sweep dir>/optimization_results.yaml
how many trials finished and failed and why, writes it also when every trial failed (then the
search ends with one line, AllTrialsFailed), and lists every trial in <sweep dir>/trials.yaml.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from avrnn import hydra_job
from avrnn.analysis.sweep_jobs import JOB_RECORDS, job_records, sweep_size
from avrnn.data import files
from avrnn.data.progress import counted

log = logging.getLogger("avrnn.training")


class TrialFailed(RuntimeError):
    """A trial of a search produced no usable objective; Optuna records it as FAILED."""


class AllTrialsFailed(RuntimeError):
    """Every trial of a search failed; the message says where their reasons are."""


def in_optuna_search() -> bool:
    """Whether this run is a trial of an Optuna search (a multirun whose sweeper is Optuna's)."""
    record = hydra_job.running()
    return hydra_job.in_multirun() and "optuna" in str(record.sweeper.get("_target_", "")).lower()


def check_search_validates(config: DictConfig) -> None:
    """A search's objective is the best validation ELBO, so a base config that turns validation off
    (trainer.limit_val_batches=0) would fail every trial, each only after it trained: ConfigError before the
    first. (hydra_plugins.avrnn_optuna_sweeper, before it launches any trial)"""
    from omegaconf import OmegaConf

    from avrnn.config import ConfigError

    limit = OmegaConf.select(config, "trainer.limit_val_batches", default=None)
    if isinstance(limit, (int, float)) and not isinstance(limit, bool) and limit == 0:
        raise ConfigError(f"trainer.limit_val_batches={limit} turns validation off, and a search's objective is the "
                          "best validation ELBO: every trial would fail after training; drop "
                          "trainer.limit_val_batches")


def objective(metrics: dict, key: str) -> float:
    """metrics[key] (the search's objective); inside an Optuna search, TrialFailed where it is
    missing (no validation ran) or not finite."""
    value = metrics.get(key, float("nan"))
    if in_optuna_search() and not math.isfinite(value):
        why = "no validation ran (e.g. trainer.limit_val_batches=0)" if key not in metrics else f"{key} = {value}"
        raise TrialFailed(f"this trial has no usable objective: {why}")
    return value


class SweepLedger:
    """Which jobs of the current multirun finished, failed, and which one is running (a Hydra callback,
    conf/config.yaml: hydra.callbacks.sweep_ledger), so that a sweep stopped by a signal can say which jobs
    finished and which did not (avrnn.cli). Hydra runs a stopped job's on_job_end never: the stop
    (avrnn.training.stops.RunStopped) passes it by, so the running job is the stopped one."""

    total: int | None = None  # jobs the sweep will run, where known (the basic sweeper's grid)
    finished: list[str] = []
    failed: list[str] = []
    running: str | None = None
    sweep_dir: str | None = None
    started: float | None = None  # when this command's sweep started, by the sweep folder's clock (command_started)
    active = False

    @classmethod
    def reset(cls, total: int | None = None, sweep_dir: str | None = None) -> None:
        cls.total, cls.finished, cls.failed, cls.running, cls.active = total, [], [], None, True
        cls.sweep_dir, cls.started = sweep_dir, command_started(sweep_dir) if sweep_dir else None

    @classmethod
    def summary(cls) -> str:
        """'jobs 0, 1 finished; job 2 stopped; 1 not started' (with each job's folder)."""
        parts = [f"finished: {', '.join(cls.finished)}" if cls.finished else "no job finished"]
        if cls.failed:
            parts.append(f"failed: {', '.join(cls.failed)}")
        if cls.running:
            parts.append(f"stopped: {cls.running}")
        done = len(cls.finished) + len(cls.failed) + (1 if cls.running else 0)
        if cls.total is not None:
            parts.append(f"not started: {max(0, cls.total - done)} of {counted(cls.total, 'job')}")
        else:
            parts.append("later jobs not started")
        if cls.total is not None:  # a grid: the same command makes the same job folders (not so for Optuna)
            parts.append(f"to go on, run the same command with hydra.sweep.dir={cls.sweep_dir} (finished jobs are "
                         "skipped, the stopped one resumes)")
        return "; ".join(parts)


def record_job(config: DictConfig, job_return) -> dict:
    """Write how a job of a multirun ended to <sweep dir>/.jobs/<num>.json (in the job's own process: a
    joblib worker, a SLURM node or the main process) and, where it failed, say why in its own log
    (train.log of its folder). A job stopped by a signal gets no record (Hydra ends it without on_job_end)."""
    from hydra.core.utils import JobStatus

    record = {"job": int(config.hydra.job.num), "folder": str(config.hydra.runtime.output_dir),
              "overrides": list(config.hydra.overrides.task), "status": "finished", "ended": time.time()}
    if job_return.status != JobStatus.COMPLETED:
        error = getattr(job_return, "_return_value", None)
        reason = " ".join(f"{type(error).__name__}: {error}".split()) if isinstance(error, BaseException) else \
            "it failed"
        record.update(status="failed", reason=reason)
        log.error("this job of the sweep failed: %s", reason)
    files.write_text(Path(config.hydra.sweep.dir) / JOB_RECORDS / f"{record['job']}.json", json.dumps(record, indent=2))
    return record


def command_started(sweep_dir) -> float | None:
    """The time a command's sweep starts, by the clock of the filesystem that holds the sweep folder (the
    modification time of <sweep dir>/.jobs/.started, written now), which also times every job's record
    wherever the job runs (a SLURM node's clock may differ from this one's). None where it cannot be written."""
    marker = Path(sweep_dir) / JOB_RECORDS / ".started"
    try:
        files.write_text(marker, f"{os.getpid()}\n")
        return marker.stat().st_mtime
    except OSError:
        return None


def failed_jobs_line(sweep_dir, since: float | None = None, shown: int = 3) -> str | None:
    """'2 failed jobs: job 1 (<folder>): <reason>; job 3 ...' of a sweep folder (the first `shown` of them
    named, then a count), counting the jobs whose records were written from `since` on (command_started:
    this command's, not an earlier command's in the same folder); None where none failed."""
    failed = [record for record in job_records(sweep_dir) if record["status"] == "failed"
              and (since is None or record["written"] >= since)]
    if not failed:
        return None
    named = "; ".join(f"job {r['job']} ({r['folder']}): {r['reason']}" for r in failed[:shown])
    more = (f"; and {len(failed) - shown} more (each job's log ends with its reason; records in "
            f"{Path(sweep_dir) / JOB_RECORDS})" if len(failed) > shown else "")
    return f"{counted(len(failed), 'failed job')}: {named}{more}"


class SweepLedgerCallback(Callback):
    """Keeps SweepLedger up to date (hydra.callbacks in conf/config.yaml)."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        basic = "BasicSweeper" in str(config.hydra.sweeper.get("_target_", ""))
        swept = {f"{key}": f"{key}={value}" for key, value in (config.hydra.sweeper.get("params") or {}).items()}
        swept.update({override.split("=", 1)[0]: override for override in config.hydra.overrides.task})
        SweepLedger.reset(sweep_size(list(swept.values())) if basic else None, str(config.hydra.sweep.dir))

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        SweepLedger.active = False  # a single run: no sweep, whatever an earlier command in this process left

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        if SweepLedger.active:
            SweepLedger.running = f"job {config.hydra.job.num} ({config.hydra.runtime.output_dir})"

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        from hydra.core.utils import JobStatus
        from hydra.types import RunMode

        if config.hydra.mode == RunMode.MULTIRUN:
            record_job(config, job_return)
        if SweepLedger.active and SweepLedger.running:
            (SweepLedger.finished if job_return.status == JobStatus.COMPLETED else SweepLedger.failed).append(
                SweepLedger.running)
            SweepLedger.running = None

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        SweepLedger.active = False
