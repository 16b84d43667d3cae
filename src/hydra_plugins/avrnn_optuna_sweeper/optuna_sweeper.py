"""The hydra-optuna-sweeper plugin's sweeper, recording every trial's outcome (see avrnn.training.sweeps),
and continuing a persistent study (hydra.sweeper.storage=sqlite:///...) where the same command runs
again: the plugin would ask its seeded sampler for the first trials' parameters again, launch them into
the first trials' folders, and leave a trial whose process was killed RUNNING for good. Here:
  - trial folders continue the study's numbering (job numbers from the number of trials it holds);
  - the sampler's random streams are seeded with the seed plus that number (new parameters, reproducibly);
  - each trial records its process (host:pid, system attribute avrnn_process) as it is asked for; a RUNNING
    trial whose process on this host is gone, or that recorded none (and is older than a minute), is marked FAIL with the reason
    (system attribute fail_reason); one of a live process, or of another host, is left as it is.
Needs the `sweep` extra (make install has it)."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
from pathlib import Path

from hydra.core.utils import JobStatus
from omegaconf import OmegaConf

from avrnn.data import files
from avrnn.data.progress import counted
from avrnn.training.sweeps import AllTrialsFailed, check_search_validates

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


log = logging.getLogger("avrnn.training")
OWNER = "avrnn_process"


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def process_ended(owner: str | None) -> str | None:
    """Why a trial's recorded process is known to be gone (None: it may be running)."""
    if not owner:
        return "no process was recorded for it (it was asked for, never launched)"
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return None  # another machine's: it cannot be checked from here
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return f"its process ({owner}) ended while it ran"
    except (PermissionError, ValueError):
        return None
    return None


JUST_ASKED_SECONDS = 60.0


def just_asked(trial) -> bool:
    """Whether a trial started less than JUST_ASKED_SECONDS ago (by this machine's clock): a sweeper
    stamps its process on a trial right after asking for it, so an unstamped trial that young may be
    another live sweeper's."""
    import datetime

    start = trial.datetime_start
    return start is not None and (datetime.datetime.now() - start).total_seconds() < JUST_ASKED_SECONDS


def reseed(sampler, seed: int | None) -> None:
    """Seed the random streams of an Optuna 2.x sampler (TPE, random, CMA-ES: numpy RandomStates) anew."""
    import numpy as np

    for owner in (sampler, getattr(sampler, "_random_sampler", None), getattr(sampler, "_independent_sampler", None)):
        if isinstance(getattr(owner, "_rng", None), np.random.RandomState):
            owner._rng = np.random.RandomState(seed)


class OptunaSweeper(optuna_sweeper.OptunaSweeper if optuna_sweeper else object):
    """The plugin's sweeper, recording each trial's outcome (see the module's docstring)."""

    def _study(self):
        import optuna

        try:
            return optuna.load_study(study_name=self.sweeper.study_name, storage=self.sweeper.storage)
        except KeyError:  # no such study yet
            return None

    def continue_study(self) -> int:
        """Prepare a persistent study that holds trials (see the module's docstring); the number it holds."""
        from omegaconf import OmegaConf
        from optuna.trial import TrialState

        impl = self.sweeper
        study = self._study() if impl.storage else None
        trials = study.get_trials(deepcopy=False) if study is not None else []
        if not trials:
            return 0
        failed, left = 0, []
        for trial in trials:
            if trial.state != TrialState.RUNNING:
                continue
            reason = process_ended(trial.system_attrs.get(OWNER))
            if OWNER not in trial.system_attrs and just_asked(trial):
                reason = None  # another sweeper's, between its ask and its stamp
            if reason is None:
                left.append(f"trial {trial.number} ({trial.system_attrs.get(OWNER)})")
                continue
            study._storage.set_trial_system_attr(trial._trial_id, "fail_reason", f"marked failed when the study "
                                                 f"was continued: {reason}")
            study._storage.set_trial_state(trial._trial_id, TrialState.FAIL)
            failed += 1
        impl.job_idx = max(impl.job_idx or 0, len(trials))
        seed = OmegaConf.select(impl.config, "hydra.sweeper.sampler.seed") if impl.config is not None else None
        reseed(impl.sampler, None if seed is None else int(seed) + len(trials))
        log.info("continuing the Optuna study %r (%s): %s there; new trials are numbered from %d%s%s",
                 impl.study_name, impl.storage, counted(len(trials), "trial"), len(trials),
                 f"; {failed} left RUNNING by a process that ended marked failed" if failed else "",
                 f"; left running (another live process): {', '.join(left)}" if left else "")
        return len(trials)

    @staticmethod
    @contextlib.contextmanager
    def _owned_trials():
        """While the plugin sweeps: each trial its study asks for records this process (OWNER) as it is
        asked, so that a RUNNING trial of another sweeper on the same storage is never claimed."""
        import optuna

        create_study = optuna.create_study

        def owning_study(*args, **kwargs):
            study = create_study(*args, **kwargs)
            ask = study.ask

            def owned_ask(*ask_args, **ask_kwargs):
                trial = ask(*ask_args, **ask_kwargs)
                study._storage.set_trial_system_attr(trial._trial_id, OWNER, this_process())
                return trial
            study.ask = owned_ask
            return study
        optuna.create_study = owning_study
        try:
            yield
        finally:
            optuna.create_study = create_study

    def sweep(self, arguments):
        import optuna

        impl, records = self.sweeper, []
        check_search_validates(impl.config)  # before any trial runs (or a persistent study is touched)
        # Optuna's lines through the logging Hydra set up: its own handler colours them even where stderr is a file
        optuna.logging.disable_default_handler()
        optuna.logging.enable_propagation()
        launch = impl.launcher.launch
        self.continue_study()

        def recorded_launch(job_overrides, initial_job_idx):
            returns = launch(job_overrides, initial_job_idx=initial_job_idx)
            records.extend(_record(initial_job_idx + i, o, r) for i, (o, r) in enumerate(zip(job_overrides, returns)))
            return returns
        impl.launcher.launch = recorded_launch
        try:
            with self._owned_trials():
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
                f"every trial of the search failed ({counted(len(records), 'trial')}; first: {records[0]['reason']}); "
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
        """optimization_results.yaml and trials.yaml: this command's trials (a persistent study holds every
        command's: optuna.load_study(study_name=..., storage=...).trials_dataframe())."""
        folder = Path(self.sweeper.sweep_dir)
        folder.mkdir(parents=True, exist_ok=True)
        failed = [r for r in records if r["state"] == "FAIL"]
        results.update(n_trials=len(records), n_complete=len(records) - len(failed), n_failed=len(failed),
                       failures=[{"trial": r["trial"], "reason": r["reason"]} for r in failed])
        files.write_text(folder / "optimization_results.yaml", OmegaConf.to_yaml(OmegaConf.create(results)))
        files.write_text(folder / "trials.yaml", OmegaConf.to_yaml(OmegaConf.create({"trials": records})))
