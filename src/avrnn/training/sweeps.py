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

import math


class TrialFailed(RuntimeError):
    """A trial of a search produced no usable objective; Optuna records it as FAILED."""


class AllTrialsFailed(RuntimeError):
    """Every trial of a search failed; the message says where their reasons are."""


def in_optuna_search() -> bool:
    """Whether this run is a trial of an Optuna search (a multirun whose sweeper is Optuna's)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return False
    hydra = HydraConfig.get()
    return hydra.mode == RunMode.MULTIRUN and "optuna" in str(hydra.sweeper.get("_target_", "")).lower()


def objective(metrics: dict, key: str) -> float:
    """metrics[key] (the search's objective); inside an Optuna search, TrialFailed where it is
    missing (no validation ran) or not finite."""
    value = metrics.get(key, float("nan"))
    if in_optuna_search() and not math.isfinite(value):
        why = "no validation ran (e.g. trainer.limit_val_batches=0)" if key not in metrics else f"{key} = {value}"
        raise TrialFailed(f"this trial has no usable objective: {why}")
    return value
