"""One run per folder: a fresh run never writes into a folder that holds another run's outputs.

Run after `resume.run_folder_checkpoint` found no last.ckpt to resume from. Outputs are checkpoints
(checkpoints/*.ckpt), TensorBoard event files (tensorboard/events.out.tfevents.*) and metrics.json;
Hydra's own .hydra/ and train.log are not (Hydra writes them before the job starts). Where the folder
holds some:
  - checkpoints or metrics.json: another run, or one whose last.ckpt was removed: refused in one line
    naming both ways on (resume from one of its checkpoints, or another hydra.run.dir);
  - only event files, written by the same settings (an attempt stopped or killed before it saved any
    checkpoint, e.g. a cluster job requeued after a node failure): that attempt saved nothing to resume
    from, so this one starts over; its event files are moved to tensorboard/attempt-<n>/ (a TensorBoard
    run of their own, never read by plot.py), so that no step is logged twice;
  - only event files of other or unknown settings: refused like checkpoints.
The settings that wrote the event files are the run's own record of them (tensorboard/run_settings.yaml,
written as training starts), so that they are known in a multirun job or a requeued SLURM job, where
Hydra rewrites .hydra/ before the job starts; folders of earlier versions fall back to .hydra/.
Every process decides (so that under DDP all refuse or none does: a refusal on one rank alone would
leave the others waiting); only rank 0 moves files.
Nothing of the earlier run is removed or rewritten; a refusal writes nothing (resume.KeepEarlierRunConfig
puts back the .hydra/ files Hydra overwrote).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import OmegaConf

from avrnn import hydra_job
from avrnn.config import ConfigError
from avrnn.data import files
from avrnn.data.progress import counted, is_rank_zero

log = logging.getLogger("avrnn.training")

EVENTS = "events.out.tfevents.*"
SETTINGS = Path("tensorboard") / "run_settings.yaml"


def write_to_log_files(line: str, folder: Path, level: int = logging.ERROR) -> None:
    """`line` as a record of the avrnn logger, to the root logger's file handlers whose file is in `folder`
    (the job's log) and to nothing else: the terminal gets the line once, from avrnn.cli.run, and a
    handler left from an earlier job in this process writes elsewhere."""
    record = logging.LogRecord("avrnn", level, __file__, 0, line, None, None)
    for handler in logging.getLogger().handlers:
        # both resolved: a run folder under a symbolic link (logs/ linked to a scratch disk) is still its own
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).resolve().parent == folder.resolve():
            handler.handle(record)
            handler.flush()


def print_and_log(text: str) -> None:
    """A script's results (evaluate's table, generate's files): printed, and inside a Hydra job written into
    its log file too, under "results:", so that a job without a terminal keeps them beside its progress
    lines; outside a Hydra job (called from Python) printed only."""
    print(text)
    folder = hydra_job.output_folder()
    if folder is not None:
        write_to_log_files("results:\n" + text, folder, logging.INFO)


def earlier_outputs(output_dir: Path) -> dict[str, list[Path]]:
    """{"checkpoints": [...], "events": [...], "metrics": [...]}: the outputs of a run already in output_dir."""
    output_dir = Path(output_dir)
    return {"checkpoints": sorted((output_dir / "checkpoints").glob("*.ckpt")),
            "events": sorted((output_dir / "tensorboard").glob(EVENTS)),
            "metrics": [path for path in [output_dir / "metrics.json"] if path.is_file()]}


def describe(outputs: dict[str, list[Path]]) -> str:
    """e.g. "best-iter000003.ckpt, metrics.json and 4 TensorBoard event files"."""
    named = [path.name for path in outputs["checkpoints"][:3] + outputs["metrics"]]
    if len(outputs["checkpoints"]) > 3:
        named.append(counted(len(outputs["checkpoints"]) - 3, "more checkpoint"))
    if outputs["events"]:
        named.append(counted(len(outputs["events"]), "TensorBoard event file"))
    return ", ".join(named[:-1]) + (" and " if len(named) > 1 else "") + named[-1]


def check_fresh_start(output_dir: Path, current: dict, earlier: dict | None, differences) -> None:
    """Refuse (ConfigError, one line) or prepare a fresh run in output_dir (see the module's docstring).
    `current`: this run's resolved config (plain data); `earlier`: the resolved config the folder's
    earlier run was started with (its .hydra/config.yaml), None where unknown; `differences(earlier,
    current)`: the settings that make them different runs (path -> (old, new); resume.run_differences)."""
    output_dir = Path(output_dir)
    outputs = earlier_outputs(output_dir)
    if not any(outputs.values()):
        return
    changes = differences(earlier, current) if earlier is not None else None
    if not outputs["checkpoints"] and not outputs["metrics"] and changes == {}:
        if not is_rank_zero():  # rank 0 sets them aside (it may have done so already)
            return
        attempt = set_aside_events(output_dir, outputs["events"])
        log.warning("%s holds TensorBoard logs of an earlier attempt of this run (the same settings) that saved no "
                    "checkpoint: nothing of it can be resumed, so this run starts over; its logs are moved to %s",
                    output_dir, attempt)
        return
    if changes is None:
        who = "the outputs of another run"
    elif not changes:
        who = "the outputs of a run of these settings without a last.ckpt to resume from"
    else:
        shown = ", ".join(f"{key}={_show(new)} (it has {_show(old)})" for key, (old, new) in list(changes.items())[:3])
        who = f"the outputs of another run (its settings differ: {shown}{' and more' if len(changes) > 3 else ''})"
    resume = (f", or resume from one of its checkpoints (ckpt_path={outputs['checkpoints'][-1]}; it has no last.ckpt, "
              "so ckpt_path=last cannot)" if outputs["checkpoints"] else "")
    raise ConfigError(f"{output_dir} already holds {who}: {describe(outputs)}; a new run there would mix its logs and "
                      f"checkpoints with them; give this run another folder ({folder_setting()}=...){resume}")


def set_aside_events(output_dir: Path, events: list[Path]) -> Path:
    """Move event files into tensorboard/attempt-<n>/ (n: the first free number); return that folder."""
    number = 1
    while (output_dir / "tensorboard" / f"attempt-{number}").exists():
        number += 1
    folder = output_dir / "tensorboard" / f"attempt-{number}"
    folder.mkdir(parents=True)
    settings = output_dir / SETTINGS
    for path in [*events, *([settings] if settings.is_file() else [])]:
        os.replace(path, folder / path.name)  # the same filesystem: a rename, never a torn copy
    return folder


def record_settings(output_dir: Path, current: dict) -> None:
    """Write this run's resolved settings beside its event files (rank 0; atomically), before it logs."""
    if is_rank_zero():
        files.write_text(Path(output_dir) / SETTINGS, OmegaConf.to_yaml(OmegaConf.create(current)))


def earlier_config(output_dir: Path, earlier_file) -> dict | None:
    """The resolved config of the run that last started in output_dir: its tensorboard/run_settings.yaml,
    else (a folder of an earlier version) its .hydra/config.yaml: under Hydra the copy
    resume.KeepEarlierRunConfig kept before Hydra overwrote it (`earlier_file(output_dir)`: its bytes, or None;
    in multirun, the copy taken when the sweep started), elsewhere the file itself. None where there is none or it
    cannot be resolved."""
    path = Path(output_dir) / ".hydra" / "config.yaml"
    if (Path(output_dir) / SETTINGS).is_file():
        content = (Path(output_dir) / SETTINGS).read_bytes()
    elif hydra_job.running() is not None:
        content = earlier_file(Path(output_dir))
    else:
        content = path.read_bytes() if path.is_file() else None
    if content is None:
        return None
    try:
        return OmegaConf.to_container(OmegaConf.create(content.decode()), resolve=True)
    except Exception:  # noqa: BLE001 - an unreadable or unresolvable file: the earlier settings are unknown
        return None


def folder_setting() -> str:
    """The setting that names a run's folder: hydra.sweep.dir in a multirun job, else hydra.run.dir."""
    return "hydra.sweep.dir" if hydra_job.in_multirun() else "hydra.run.dir"


def _show(value) -> str:
    return "null" if value is None else str(value)
