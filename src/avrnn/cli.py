"""Entry-point glue: run a Hydra main and turn the errors a user can fix into one line.

Hydra prints composition errors over several lines (and OmegaConf's cause hides below them);
here every such error becomes `error: <what is wrong>; <what is allowed or what to do>` on
stderr with exit status 2. Unexpected errors keep their traceback.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from pathlib import Path
from typing import Callable

from hydra.experimental.callback import Callback
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from avrnn import command_line, config as schema
from avrnn.training.checkpoints import CheckpointError
from avrnn.config import ConfigError
from avrnn.models.vrnn import ModelConfigError
from avrnn.data.errors import DataError
from avrnn.training.module import TrainingFault
from avrnn.registry import UntrustedTargetError
from avrnn.data.files import WriteFailed
from avrnn.data.progress import is_rank_zero
from avrnn.training.run_folder import write_to_log_files
from avrnn.training.stops import RunStopped
from avrnn.training.sweeps import AllTrialsFailed, SweepLedger, TrialFailed, failed_jobs_line

CONF = schema.CONF_DIR
MISSING_EXAMPLES = {  # a `???` setting left empty: what to add, where `<key>=<value>` would not tell how
    "ckpt_path": "ckpt_path=logs/runs/<date>/<time>/checkpoints/best-iterNNNNNN.ckpt (or last.ckpt: a checkpoint a "
                 "training run saved)"}
OPTIONAL_GROUPS = ("arm", "experiment", "tuned", "hparams_search")  # `optional` in conf/config.yaml's defaults
USER_ERRORS = (command_line.CommandLineError, ConfigError, DataError, CheckpointError, TrainingFault,
               UntrustedTargetError, TrialFailed, AllTrialsFailed, ModelConfigError)
NOISE = ("full_key", "object_type", "reference_type", "To append", "Config search path", "provider=",
         "Set the environment", "explicit_type", "See https")


def _schema_keys(class_name: str) -> list[str] | None:
    node = getattr(schema, class_name, None)
    return [f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else None


def one_line(error: BaseException) -> str:
    """The messages of an error and its causes, without OmegaConf's bookkeeping, on one line."""
    parts: list[str] = []
    current: BaseException | None = error
    while current is not None:
        text = str(current)
        options = re.findall(r"^\t(\S+)$", text.split("Config search path")[0], flags=re.M)
        lines = [line.strip() for line in text.splitlines()
                 if line.strip() and not line.strip().startswith(NOISE) and not line.startswith("\t")]
        message = "; ".join(lines)
        if options:
            message += " " + ", ".join(options)
        unknown = re.search(r"Key '(\w+)' not in '(\w+)'", text)
        if unknown and (keys := _schema_keys(unknown.group(2))):
            message += f" (allowed keys: {', '.join(keys)})"
        if "is not a ListConfig" in text and (key := re.search(r"override ([\w.]+)=(.+)$", str(error))):
            message += f" (a list: {key.group(1)}=[{key.group(2)}], or {key.group(1)}=[] for none)"
        if "is not in struct" in text and "trainer" in str(error):
            message += " (trainer.* takes pytorch_lightning.Trainer arguments only)"
        if message and message not in parts:
            parts.append(message)
        current = current.__cause__
    return ": ".join(parts).replace("\n", " ")


def unparsable_override(override: str, message: str) -> str:
    """One line for an override Hydra's grammar cannot parse: which one, what the parser said, and the
    override with its value quoted (characters such as = : , [ ] ( ) { } and spaces are grammar)."""
    said = " ".join(line.strip() for line in message.split("; ")[-1].splitlines()
                    if line.strip() and not line.strip().startswith("See https"))
    key, sep, value = override.partition("=")
    if not sep:
        return f"cannot parse the override {override!r} ({said}); write it as key=value"
    if '"' not in value:
        fix = f"quote its value for Hydra, inside single quotes for the shell: '{key}=\"{value}\"'"
    else:
        fix = f"quote its value for Hydra with single quotes: {key}='{value}' (escaped for your shell)"
    return f"cannot parse the override {override!r} ({said}); {fix}"


def run(main: Callable[[], object]) -> None:
    """Call a @hydra.main function; user-fixable errors exit 2 with one line on stderr; a run stopped by a
    signal exits 128 + the signal's number (SIGTERM: 143), with its line (and, in a sweep, which jobs
    finished and which did not). Any other error keeps its traceback. Where `main` is a @hydra.main
    function, Hydra's flags are checked first (avrnn.command_line); where it has `optional_data` set (its
    config's data group is null by default: evaluate, generate score the checkpoint's corpus), so is
    that a data.* override comes with data=...."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # let composition errors reach us instead of Hydra's printer
    stderr = sys.stderr
    sys.stderr = held = JobErrorLineHeld(stderr)
    hydra_main = command_line.is_hydra_main(main)
    SweepLedger.sweep_dir = None  # set by this command's sweep, if it starts one (not an earlier one's in this process)
    try:
        if hydra_main:
            command_line.check(sys.argv[1:], script=sys.argv[0])
            command_line.check_optional_choices(sys.argv[1:], CONF, OPTIONAL_GROUPS + (
                ("data",) if getattr(main, "optional_data", False) else ()))
            if getattr(main, "optional_data", False):
                command_line.check_group_chosen(
                    sys.argv[1:], "data", "data=audio_dir data.root=/path/to/folder (or data=timit, data=synthetic)",
                    "without data=..., the corpus and data settings the checkpoint trained with are used; its "
                    "representation, window and hop stay either way")
                command_line.refuse_groups(sys.argv[1:], {
                    "data/representation": "a checkpoint is read in the representation it trained in (its features "
                                           "are what a timestep is); drop it"})
        main()
    except BaseException as error:
        sys.stderr = stderr
        reported = outcome(error, hydra_main)
        if reported is None:
            held.release()  # beside a traceback it says which job of a sweep failed
            raise
        line, status = reported
        failed = failed_jobs_line(SweepLedger.sweep_dir, SweepLedger.started) if SweepLedger.sweep_dir else None
        if isinstance(error, AllTrialsFailed):
            pass  # a search whose every trial failed says so itself, naming its results file
        elif failed and isinstance(error, RunStopped):  # the stop stays the news; the failures are said beside it
            line += f" [the sweep had {failed}]"
        elif failed and command_line.is_multirun(sys.argv[1:]):  # every failed job of the sweep, with its reason
            line = f"error: the sweep ended with {failed}"
        elif held.overrides and command_line.is_multirun(sys.argv[1:]):  # which job of the sweep
            line += f" [the job with overrides {held.overrides[-1]}]"
        if not isinstance(error, RunStopped) or is_rank_zero():  # every DDP process stops alike: one line
            print(line, file=sys.stderr)
        sys.exit(status)
    finally:
        sys.stderr = stderr


def settable(key: str | None) -> bool:
    """Whether `key` is a setting a user gives as `key=value` (not Hydra's own, not a list item)."""
    return bool(key) and not key.startswith("hydra.") and "[" not in key


def outcome(error: BaseException, hydra_main: bool = True) -> tuple[str, int] | None:
    """(the one line, the exit status) for a stop or an error a user can fix; None for any other.
    `hydra_main`: the entry point takes Hydra overrides (the fixes may name them)."""
    if isinstance(error, RunStopped):
        sweep = f" [sweep stopped: {SweepLedger.summary()}]" if SweepLedger.active else ""
        SweepLedger.active = False
        return f"{error.message}{sweep}", error.exit_code  # "stopped by SIGTERM ...": the word is the line's kind
    if isinstance(error, (WriteFailed, *USER_ERRORS)):
        message = str(error)
    elif isinstance(error, OverrideParseException):
        message = unparsable_override(error.override, error.message)
    elif isinstance(error, MissingMandatoryValue) and settable(error.full_key):
        example = MISSING_EXAMPLES.get(error.full_key, f"{error.full_key}=<value>")
        message = f"{error.full_key} has no value and needs one: add {example}"
    elif isinstance(error, (MissingConfigException, HydraException, OmegaConfBaseException)):
        message = one_line(error)
    elif isinstance(error, ValueError) and "No trials are completed yet" in str(error):
        # Optuna: a search of the stock sweeper all failed
        message = ("every trial of the hyper-parameter search failed (each trial folder's log says why); narrow "
                   "hydra.sweeper.params or fix the failing setting, then run it again")
    elif (refused := command_line.hydra_refusal(error, sys.argv[0])) is not None:
        message = refused
    elif isinstance(error, OSError):
        where = f" {error.filename}" if error.filename else ""
        message = (f"{error.strerror or error}{where}; free disk space or choose a writable folder"
                   + (" (hydra.run.dir=..., paths.data_dir=...)" if hydra_main else ""))
    else:
        return None
    return f"error: {message}", 2


class AttemptInJobLog(Callback):
    """Marks each attempt in its job's log (train.log, evaluate.log, generate.log in its run folder). A folder's
    log gathers every attempt run there (a resume, a requeued SLURM job, one refused because the folder holds
    another run), so each begins with `command: python <script> <arguments>`: without it, a refused attempt's
    error line reads as how the earlier run ended. A failed attempt ends with the same `error: ...` line the
    user saw on stderr, or, for an error that keeps its traceback, its type and message. Rank 0 only (the
    tasks of a DDP run share the folder). A job of a multirun gets its error line from
    avrnn.training.sweeps.record_job instead; a stop signal ends a run with a BaseException, which Hydra does
    not hand to on_job_end (training writes its stop line into the log itself). (hydra.callbacks of
    conf/config.yaml, evaluate.yaml, generate.yaml)"""

    def __init__(self):
        # the command as typed: built in the process the user started, it travels pickled to a launcher's worker
        # (submitit's, on SLURM), whose own sys.argv names that worker
        self.argv = list(sys.argv)

    def on_job_start(self, config, **kwargs) -> None:
        import logging
        import shlex

        from hydra.types import RunMode

        if not is_rank_zero():
            return
        line = f"command: {shlex.join(['python', *self.argv])}"
        if config.hydra.mode == RunMode.MULTIRUN:  # the sweep's command, and which of its jobs this is
            overrides = shlex.join(config.hydra.overrides.task) or "no overrides"
            line += f" (job {config.hydra.job.num}: {overrides})"
        write_to_log_files(line, Path(config.hydra.runtime.output_dir), logging.INFO)

    def on_job_end(self, config, job_return, **kwargs) -> None:
        from hydra.core.utils import JobStatus
        from hydra.types import RunMode

        error = getattr(job_return, "_return_value", None)
        if (job_return.status != JobStatus.FAILED or config.hydra.mode == RunMode.MULTIRUN
                or not isinstance(error, BaseException) or not is_rank_zero()):
            return
        reported = outcome(error, hydra_main=True)
        line = reported[0] if reported else (f"error: {type(error).__name__}: {' '.join(str(error).split())} "
                                             "(its traceback is on stderr)")
        write_to_log_files(line, Path(config.hydra.runtime.output_dir))


class JobErrorLineHeld:
    """stderr, except Hydra's `Error executing job with overrides: [...]` line (Hydra writes it before
    re-raising a job's error): held back, and written only for an error that keeps its traceback."""

    PREFIX = "Error executing job with overrides:"

    def __init__(self, stream):
        self._stream = stream
        self._held: list[str] = []

    def write(self, text: str) -> int:
        if text.startswith(self.PREFIX):
            self._held.append(text)
            return len(text)
        return self._stream.write(text)

    @property
    def overrides(self) -> list[str]:
        """The overrides of each job whose error line was held, as Hydra printed them."""
        return [text[len(self.PREFIX):].strip() for text in self._held]

    def release(self) -> None:
        for text in self._held:
            self._stream.write(text)
        self._held.clear()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)
