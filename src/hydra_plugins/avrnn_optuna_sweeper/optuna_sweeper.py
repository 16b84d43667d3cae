"""The hydra-optuna-sweeper plugin's sweeper, recording every trial's outcome (see avrnn.training.sweeps).
Needs the `sweep` extra (make install has it)."""

from __future__ import annotations

import math
from pathlib import Path

from hydra.core.utils import JobStatus
from omegaconf import OmegaConf

from avrnn.data import files
from avrnn.training.sweeps import AllTrialsFailed

try:  # Hydra imports every hydra_plugins module on every run: without the `sweep` extra, define nothing
    from hydra_plugins.hydra_optuna_sweeper import optuna_sweeper
except ImportError:  # pragma: no cover - the extra is installed by make install
    optuna_sweeper = None


def _record(number: int, overrides, ret) -> dict:
    record = {"trial": number, "overrides": list(overrides)}
    if ret.status == JobStatus.FAILED:
        try:
            ret.return_value  # re-raises the job's exception
        except Exception as error:  # noqa: BLE001 - any failure of a trial is recorded as such
            return {**record, "state": "FAIL", "reason": f"{type(error).__name__}: {error}"}
    try:
        value = float(ret.return_value)
    except (TypeError, ValueError):
        return {**record, "state": "FAIL", "reason": f"the objective {ret.return_value!r} is not a number"}
    if not math.isfinite(value):
        return {**record, "state": "FAIL", "reason": f"the objective is {value}"}
    return {**record, "state": "COMPLETE", "value": value}


class OptunaSweeper(optuna_sweeper.OptunaSweeper if optuna_sweeper else object):
    """The plugin's sweeper, recording each trial's outcome (see the module's docstring)."""

    def sweep(self, arguments):
        impl, records = self.sweeper, []
        launch = impl.launcher.launch

        def recorded_launch(job_overrides, initial_job_idx):
            returns = launch(job_overrides, initial_job_idx=initial_job_idx)
            records.extend(_record(initial_job_idx + i, o, r) for i, (o, r) in enumerate(zip(job_overrides, returns)))
            return returns
        impl.launcher.launch = recorded_launch
        try:
            impl.sweep(arguments)
        except RuntimeError as error:
            # the plugin (1.2, 1.3) tells a grid sampler's last trial FAILED outside an objective; Optuna then
            # refuses to stop the study, and the search would end without its results file
            if "Study.stop" not in str(error) or not any(r["state"] == "COMPLETE" for r in records):
                raise
            self._write(records, self._best(records))
            return
        except ValueError as error:
            if "No trials are completed yet" not in str(error) or not records or any(
                    r["state"] == "COMPLETE" for r in records):
                raise
            self._write(records, {"name": "optuna", "best_params": None, "best_value": None})
            raise AllTrialsFailed(
                f"every one of the {len(records)} trials of the search failed (first: {records[0]['reason']}); "
                f"{Path(impl.sweep_dir) / 'optimization_results.yaml'} lists why; narrow hydra.sweeper.params or "
                "fix the failing setting, then run it again") from error
        results = Path(impl.sweep_dir) / "optimization_results.yaml"
        self._write(records, OmegaConf.to_container(OmegaConf.load(results)) if results.exists() else {})

    def _best(self, records: list[dict]) -> dict:
        """The plugin's results (one objective) from the records: the best complete trial's overrides and value."""
        complete = [r for r in records if r["state"] == "COMPLETE"]
        best = (max if self.sweeper._get_directions()[0].lower().endswith("maximize") else min)(
            complete, key=lambda r: r["value"])
        params = dict(o.split("=", 1) for o in best["overrides"] if o.split("=", 1)[0] in (self.sweeper.params or {}))
        return {"name": "optuna", "best_params": params, "best_value": best["value"]}

    def _write(self, records: list[dict], results: dict) -> None:
        folder = Path(self.sweeper.sweep_dir)
        folder.mkdir(parents=True, exist_ok=True)
        failed = [r for r in records if r["state"] == "FAIL"]
        results.update(n_trials=len(records), n_complete=len(records) - len(failed), n_failed=len(failed),
                       failures=[{"trial": r["trial"], "reason": r["reason"]} for r in failed])
        files.write_text(folder / "optimization_results.yaml", OmegaConf.to_yaml(OmegaConf.create(results)))
        files.write_text(folder / "trials.yaml", OmegaConf.to_yaml(OmegaConf.create({"trials": records})))
