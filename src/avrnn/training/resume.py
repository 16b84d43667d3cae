"""Resuming with a changed setting: every key of the config schema is applied mid-run or refused.

A checkpoint stores the whole resolved config it was trained with (plain data, `avrnn_config`). On
resume (`ckpt_path=...`) `check_resume` compares it with the config of the new command, leaf by
leaf, and looks each changed leaf up in RESUME_RULES:
  apply   run control: learning rates and the other optimizer settings (written into the restored
          optimizer states: Lightning would otherwise restore the checkpoint's), max_iterations, the
          validation interval (iterations_per_epoch; the batch order then follows the new epochs),
          checkpoint intervals, logging, threads, a moved data.root that holds the same corpus;
          one log line per changed key;
  refuse  what gives the checkpoint's weights and state their meaning: the architecture, the critic,
          the ablation, the corpus's content, framing and splits, the batches, the seed. One line
          names the key, both values and the fix, before anything is written; the run folder's
          earlier .hydra/ files (which Hydra overwrote before the job started) are put back.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import re
import shlex
import typing
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from avrnn.config import CONF_DIR, OPTIMIZER_NODES, Config, ConfigError
from avrnn.data import files
from avrnn.data.progress import counted
from avrnn.models.vrnn import VRNNConfig
from avrnn.training import run_folder
from avrnn.training.phases import builds_critic

log = logging.getLogger("avrnn.resume")  # the name before the layout change: log lines and users' logging settings keep it

APPLY, REFUSE = "apply", "refuse"
_OPTIMIZER = {"name": REFUSE, "_target_": REFUSE, "lr": APPLY, "betas": APPLY, "alpha": APPLY, "eps": APPLY,
              "weight_decay": APPLY}
RULES: list[tuple[str, str]] = [  # (leaf, rule); a test holds it to one entry per leaf of the schema
    *[(f"model.{field.name}", REFUSE) for field in dataclasses.fields(VRNNConfig)],  # the architecture
    *[(f"model.{key}", REFUSE) for key in ("name", "kl_warmup_iterations", "free_bits")],
    *[(f"{node}.{key}", rule) for node in OPTIMIZER_NODES for key, rule in _OPTIMIZER.items()],
    *[(f"critic.{key}", REFUSE) for key in ("name", "objective", "input", "networks", "lstm_size", "fc_size",
                                            "readout", "n_critic", "clip_value", "gp_weight")],
    *[(f"ablation.{key}", REFUSE) for key in ("name", "adversarial_trains_prior", "kl_weight", "adversarial_phases")],
    *[(f"training.{key}", APPLY) for key in ("max_iterations", "iterations_per_epoch", "grad_clip_norm",
                                             "max_bad_steps", "validate_before_training", "checkpoint_every_iterations",
                                             "checkpoint_every_minutes", "log_every_seconds", "test_after_training",
                                             "figures", "audio_every_n_epochs", "audio_seconds", "cuda_graphs")],
    ("training.fresh_batch_per_phase", REFUSE),
    ("data.name", APPLY),  # a label; the corpus itself is checked (check_same_corpus)
    ("data.root", APPLY),  # moved: allowed where it holds the same corpus (check_same_corpus)
    ("data.representation", REFUSE),  # what a timestep is: compared whole, but for APPLIED_WITHIN's keys
    *[(f"data.{key}", REFUSE) for key in ("layout", "sample_rate", "resample", "frame_size", "hop", "last_frame",
                                          "batch_size", "crop_frames", "val_fraction", "test_fraction", "split_seed",
                                          "test_set", "val_split", "exclude_sa", "speaker_pattern", "on_bad_file")],
    *[(f"data.synthetic.{key}", REFUSE) for key in ("train_speakers", "test_speakers", "utterances_per_speaker",
                                                    "min_seconds", "max_seconds", "sample_rate", "seed")],
    *[(f"data.{key}", APPLY) for key in ("eval_batch_size", "cache_dir", "num_workers")],
    ("data.split_lists", APPLY),  # where the lists are: the splits they make are compared file by file on resume
    *[(f"paths.{key}", APPLY) for key in ("data_dir", "cache_dir", "log_dir", "output_dir")],
    ("trainer", APPLY),  # pl.Trainer's arguments: how to run, not what the weights mean
    ("seed", REFUSE),  # the noise and batch order of the rest of the run
    ("num_threads", APPLY),
    ("flush_denormal", APPLY),
    ("ckpt_path", APPLY),
]
# keys inside a leaf that is otherwise compared whole, that change nothing the weights mean
APPLIED_WITHIN = ("data.representation.griffin_lim_iterations",)  # the phase estimate of the prior samples' audio
RULES += [(key, APPLY) for key in APPLIED_WITHIN]
RESUME_RULES: dict[str, str] = dict(RULES)


def schema_leaves(node=Config, prefix: str = "") -> list[str]:
    """The dotted paths of every leaf of the config schema (dataclass fields, nested dataclasses
    entered; a free dict such as `trainer` is one leaf)."""
    leaves = []
    hints = typing.get_type_hints(node)
    for field in dataclasses.fields(node):
        kind = hints[field.name]
        inner = [a for a in typing.get_args(kind) if dataclasses.is_dataclass(a)]  # Optional[SomeDataclass]
        target = kind if dataclasses.is_dataclass(kind) else inner[0] if inner else None
        path = f"{prefix}{field.name}"
        leaves += schema_leaves(target, f"{path}.") if target is not None else [path]
    return leaves


def rule(path: str) -> str:
    """RESUME_RULES for a changed leaf (a key below a free dict or a leaf of Any takes its owner's rule)."""
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in RESUME_RULES:
            return RESUME_RULES[".".join(parts[:end])]
    return REFUSE  # a key the schema does not know: say so rather than guess


_ABSENT = object()  # a key one side of a dict compared whole lacks: a change
# values that mean the same: Lightning trains in 32-true where trainer.precision is null
SAME = {"trainer.precision": (None, "32-true")}


def changed_leaves(before, after, prefix: str = "") -> dict[str, tuple]:
    """path -> (before, after) for every leaf that differs, dicts entered (rule() finds their owner's rule).
    A key of the schema that only one side has is no change: a checkpoint of an earlier version did not
    store it (unknown_keys says which), or this version dropped it. A free dict that is refused whole
    (critic.objective, critic.networks, data.representation) is compared whole: a key added or dropped
    there is a change too (null on the side that lacks it); each changed key is named (a line a user can
    act on: data.representation.window=sine, not the whole dict)."""
    path = prefix.rstrip(".")
    if isinstance(before, dict) and isinstance(after, dict) and RESUME_RULES.get(path) != REFUSE:
        changes = {}
        for key in sorted(set(before) & set(after), key=str):
            changes.update(changed_leaves(before[key], after[key], f"{prefix}{key}."))
        return changes
    if isinstance(before, dict) and isinstance(after, dict):
        return _compared_whole(before, after, prefix)
    if before == after or (before, after) in (SAME.get(path), SAME.get(path, ())[::-1]):
        return {}
    return {path: (before, after)}


IDENTITY_KEYS = ("name", "_target_")  # what a dict compared whole is (its config group's choice, its class)


def _compared_whole(before: dict, after: dict, prefix: str) -> dict[str, tuple]:
    """Every key that differs between two dicts, nested dicts entered, by name; a key one side lacks is a
    change (null on that side). Where the dicts are different things (their name or _target_ differs),
    only that key: the rest comes with the choice (data.representation.name=stft, not its every setting)."""
    identity = [key for key in IDENTITY_KEYS if before.get(key, _ABSENT) != after.get(key, _ABSENT)]
    if identity:
        return {f"{prefix}{key}": (before.get(key), after.get(key)) for key in identity}
    changes = {}
    for key in sorted(set(before) | set(after), key=str):
        old, new = before.get(key, _ABSENT), after.get(key, _ABSENT)
        if isinstance(old, dict) and isinstance(new, dict):
            changes.update(_compared_whole(old, new, f"{prefix}{key}."))
        elif old != new:  # (_ABSENT equals nothing else)
            changes[f"{prefix}{key}"] = (None if old is _ABSENT else old, None if new is _ABSENT else new)
    return changes


def unknown_keys(stored: dict, current: dict, prefix: str = "") -> list[str]:
    """Leaves of the current config that the stored one lacks (a checkpoint of an earlier version)."""
    missing = []
    for key, value in current.items():
        path = f"{prefix}{key}"
        if key not in stored:
            missing.append(path)
        elif isinstance(value, dict) and isinstance(stored[key], dict) and RESUME_RULES.get(path) != REFUSE:
            missing += unknown_keys(stored[key], value, f"{path}.")
    return missing


def check_resume(stored: dict, current: dict, checkpoint_path: Path, iteration: int = 0) -> dict[str, tuple]:
    """The applied changes (path -> (old, new)), each logged in one line; a ConfigError naming every
    refused one with both values, and the fix: the overrides that give them back (undoing_overrides).
    `iteration`: where the checkpoint stopped."""
    changes = changed_leaves(_network_in_use(stored), _network_in_use(current))
    if not (trains_critic(stored) or trains_critic(current)):  # settings of a critic neither run has
        changes = {path: change for path, change in changes.items() if not path.startswith(CRITIC_ONLY)}
    refused = {path: change for path, change in changes.items() if rule(path) == REFUSE}
    if refused:
        now = ", ".join(f"{path}={_show(new)}" for path, (_, new) in refused.items())
        then = ", ".join(f"{path}={_show(old)}" for path, (old, _) in refused.items())
        these = "this cannot" if len(refused) == 1 else "these cannot"
        raise ConfigError(
            f"cannot resume {checkpoint_path} with {now}: it trained with {then}, and {these} change mid-run (they "
            f"change what the checkpoint's weights and state mean); resume with {' '.join(undoing_overrides(refused))} "
            "in place of yours, or start a new run (no ckpt_path)")
    max_iterations = (current.get("training") or {}).get("max_iterations")
    if max_iterations is not None and iteration and max_iterations <= iteration:
        raise ConfigError(f"cannot resume {checkpoint_path} with training.max_iterations={max_iterations}: it is at "
                          f"iteration {iteration} already; set training.max_iterations above {iteration}")
    unknown = [key for key in unknown_keys(stored, current) if rule(key) == REFUSE]
    if unknown:
        log.warning("resume: %s, written by an earlier version, does not store %s; they cannot be checked against "
                    "this run's", checkpoint_path, ", ".join(unknown))
    for path, (old, new) in changes.items():
        if path not in ("ckpt_path", "data.root") and not path.startswith("paths."):  # data.root: check_same_corpus
            log.info("resume: %s changed from %s to %s (applied from now on)", path, _show(old), _show(new))
    return changes


HOW_IT_RUNS = ("ckpt_path", "paths.", "trainer.", "num_threads", "flush_denormal", "training.log_every_seconds",
               "training.figures")  # not which run it is


def run_folder_checkpoint(output_dir: Path, current: dict, stored_config) -> tuple[Path | None, dict | None]:
    """A run started without ckpt_path in a folder that holds a last.ckpt (a cluster job requeued after a
    stop reruns its own command): (that path, its checkpoint) where it was written by the same config,
    so the job resumes by itself (one that finished training: the caller skips to what is left); (None,
    None) where there is none. A checkpoint of another config is refused in one line: nothing of the
    earlier run is touched."""
    from avrnn.training.checkpoints import load_checkpoint

    path = Path(output_dir) / "checkpoints" / "last.ckpt"
    if not path.is_file():
        return None, None
    checkpoint = load_checkpoint(path)
    iteration = checkpoint.get("avrnn_iteration", 0)
    changes = run_differences(stored_config(checkpoint), current)
    if changes:
        refused = {key: change for key, change in changes.items() if rule(key) == REFUSE}
        resume = ("resume it with ckpt_path=last (the changed settings are applied from its iteration on)" if not refused
                  else f"resume it with ckpt_path=last and {' '.join(undoing_overrides(refused))} in place of yours "
                       f"({', '.join(refused)} cannot change mid-run)")
        ways = f"{resume}, or give this run another folder ({run_folder.folder_setting()}=...)"
        shown = ", ".join(f"{key}={_show(new)} (it has {_show(old)})" for key, (old, new) in list(changes.items())[:4])
        more = f" and {len(changes) - 4} more" if len(changes) > 4 else ""
        raise ConfigError(f"{output_dir} already holds another run (last.ckpt at iteration {iteration}) whose settings "
                          f"differ: {shown}{more}; {ways}")
    return path, checkpoint


def say_resuming(output_dir: Path, iteration: int) -> None:
    """The line of a run that resumes from its own folder's last.ckpt (run_folder_checkpoint found it), said once
    the run is known to have something left to do (a finished one says "nothing to do" instead)."""
    log.info("resume: %s holds this run's last.ckpt (iteration %d, the same settings): resuming from it", output_dir,
             iteration)


def run_differences(stored: dict, current: dict) -> dict[str, tuple]:
    """The settings (path -> (stored, current)) that make two configs different runs: every changed leaf
    but how it runs (HOW_IT_RUNS: e.g. trainer.precision, where the one it fell back to is stored) and
    the settings of a critic neither has."""
    changes = {key: change for key, change in changed_leaves(_network_in_use(stored), _network_in_use(current)).items()
               if not key.startswith(HOW_IT_RUNS)}
    if not (trains_critic(stored) or trains_critic(current)):
        changes = {key: change for key, change in changes.items() if not key.startswith(CRITIC_ONLY)}
    return changes


def _network_in_use(config: dict) -> dict:
    """critic.networks reduced to the one critic.input selects (the others are offers, not state)."""
    critic = config.get("critic")
    if not isinstance(critic, dict) or not isinstance(critic.get("networks"), dict):
        return config
    networks = {key: value for key, value in critic["networks"].items() if key == critic.get("input")}
    return {**config, "critic": {**critic, "networks": networks}}


CRITIC_ONLY = ("critic.", "model.adversarial_optimizer.", "model.prior_path")


def trains_critic(config: dict) -> bool:
    critic, ablation = config.get("critic"), config.get("ablation")
    return critic is not None and ablation is not None and builds_critic(critic, ablation)


def _show(value) -> str:
    return "null" if value is None else str(value)


def undoing_overrides(refused: dict[str, tuple]) -> list[str]:
    """Command-line overrides that give each refused setting (path -> (the checkpoint's value, this command's))
    the checkpoint's value back: a config group whose choice changed as that choice (`model=avrnn`, from its
    `<group>.name` where conf/<group>/<name>.yaml exists: the settings under it come with it, which no list of
    them can undo), every other one as `path=value` in Hydra's grammar, quoted for the shell."""
    groups = {}
    for path, (old, _) in refused.items():
        node, _, key = path.rpartition(".")
        group_file = CONF_DIR / node.replace(".", "/") / f"{old}.yaml"
        if node and key == "name" and isinstance(old, str) and group_file.is_file():
            groups[node] = old
    chosen = [f"{node.replace('.', '/')}={name}" for node, name in groups.items()]
    left = {path: old for path, (old, _) in refused.items() if not any(path.startswith(f"{node}.") for node in groups)}
    for option, leaves in _package_options():  # e.g. latent=z32, which sets model.z_dim: 32
        if leaves and all(left.get(path, _ABSENT) == value for path, value in leaves.items()):
            chosen.append(option)
            left = {path: old for path, old in left.items() if path not in leaves}
    return chosen + [shlex.quote(f"{path}={hydra_value(old)}") for path, old in left.items()]


@functools.lru_cache(maxsize=1)
def _package_options() -> list[tuple[str, dict]]:
    """(`group=option`, {path: value}) of each config group option under conf/ that places its plain values by a
    `# @package` line (latent/z32.yaml: model.z_dim: 32), without interpolations or a defaults list of its own."""
    from omegaconf import OmegaConf

    options = []
    for file in sorted(CONF_DIR.glob("*/**/*.yaml")):
        first = file.read_text().splitlines()[:1]
        if not first or not first[0].startswith("# @package"):
            continue
        package = first[0].removeprefix("# @package").strip()
        values = OmegaConf.to_container(OmegaConf.load(file))  # interpolations unresolved: "${...}" strings
        leaves = _flat(values)
        if "defaults" in values or any(isinstance(value, str) and "${" in value for value in leaves.values()):
            continue
        prefix = "" if package == "_global_" else f"{package}."
        leaves = {f"{prefix}{path}": value for path, value in leaves.items()}
        options.append((f"{file.parent.relative_to(CONF_DIR).as_posix()}={file.stem}", leaves))
    return options


def _flat(values: dict, prefix: str = "") -> dict:
    """{"model": {"z_dim": 32}} -> {"model.z_dim": 32}."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


_PLAIN = re.compile(r"[A-Za-z_/][\w./-]*")  # a string Hydra reads back as that string, unquoted
_WORDS = ("null", "true", "false", "nan", "inf")  # ... unless it reads as one of these


def hydra_value(value) -> str:
    """A value as Hydra's override grammar writes it: null, true, 3, 0.001, a string (quoted unless it reads
    back as itself), {a:1,b:[2,null]}."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{hydra_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(hydra_value(item) for item in value) + "]"
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and value.lower() not in _WORDS:
            return value
        # Hydra's quoted string: a quote escaped, and the backslashes before a quote or the end doubled; others kept
        return '"' + re.sub(r'(\\*)("|$)', lambda m: 2 * m[1] + ("\\" + m[2] if m[2] else ""), value) + '"'
    return repr(value)


def apply_optimizer_settings(checkpoint: dict, nodes: list[dict]) -> None:
    """Write the config's optimizer settings (lr, betas, ...) into the checkpoint's optimizer states,
    which Lightning restores after this: the i-th state belongs to the i-th node (the phases' order)."""
    for state, node in zip(checkpoint.get("optimizer_states", []), nodes):
        for group in state["param_groups"]:
            for key, value in node.items():
                if key in group and _OPTIMIZER.get(key) == APPLY:
                    group[key] = tuple(value) if isinstance(value, list) else value


def check_same_corpus(stored_normalization: dict | None, normalization: dict, stored_root, root) -> None:
    """data.root, moved or not, must hold the corpus the run trained on, framed and split the same way:
    the training split's statistics, which every sample of it enters, must be equal (files added or
    removed, or read differently by another version, change them)."""
    if stored_normalization is None:
        return
    same = set(stored_normalization) == set(normalization) and all(  # the representation's statistics
        math.isclose(stored_normalization[key], normalization[key], rel_tol=1e-9, abs_tol=0.0) for key in normalization)
    if not same:
        where = "the corpus there" if stored_root == root else f"the corpus at data.root={root}"
        raise ConfigError(f"cannot resume: the run trained on data.root={stored_root}, and {where} is not the same "
                          f"training data now (training-split statistics {normalization} against "
                          f"{stored_normalization}: files added, removed or read differently); use the same corpus, "
                          "or start a new run")
    if stored_root != root:
        log.info("resume: data.root changed from %s to %s, which holds the same corpus (applied)", stored_root, root)


def check_same_splits(stored: dict | None, current: dict, checkpoint_path: Path) -> None:
    """Every split (train, val, test) must hold the files it held when the checkpoint was written, with
    the same audio (SpeechDataModule.split_membership): a validation set that grew would put two sets in one
    validation curve and in the choice of the best checkpoint. A ConfigError names the first split that
    differs and how. Checkpoints of earlier versions store none: only check_same_corpus applies to them."""
    if not stored:
        log.warning("resume: %s, written by an earlier version, does not store its splits' files; only the "
                    "training split's statistics can be compared", checkpoint_path)
        return
    for split in sorted(set(stored) | set(current), key=("train", "val", "test").index):
        before, now = stored.get(split), current.get(split)
        key = "content" if "content" in (before or {}) else "digest"  # "digest": a version before the content hash
        if before is not None and now is not None and before[key] == now.get(key):
            continue
        was, is_ = set((before or {}).get("files", [])), set((now or {}).get("files", []))
        added, removed = sorted(is_ - was), sorted(was - is_)
        fix = f"restore the corpus as it was, or start a new run (another {run_folder.folder_setting()})"
        if added and _utterances(added) == _utterances(removed):
            what = (f"the same utterances, {len(added)} of them now read from another copy (e.g. {added[0]} instead "
                    f"of {removed[0]}: this version keeps a lossless copy before a lossy one)")
            fix = (f"resume with the version that wrote the checkpoint, move the copies now read (e.g. {added[0]}) "
                   f"out of data.root, or start a new run (another {run_folder.folder_setting()})")
        else:
            changes = [f"{counted(len(added), 'file')} added (e.g. {added[0]})" if added else "",
                       f"{len(removed)} removed (e.g. {removed[0]})" if removed else ""]
            what = ", ".join(change for change in changes if change) or "the same files, whose audio changed"
        raise ConfigError(
            f"cannot resume {checkpoint_path}: its {split} split is not the one it trained with: "
            f"{len(was)} -> {len(is_)} utterances, {what}; the curves and the best checkpoint would span two "
            f"different sets; {fix}")


def _utterances(names: list[str]) -> list[str]:
    """Each file's utterance (avrnn.data.corpus.utterance_id: audio suffixes removed, case-folded), sorted."""
    from avrnn.data.corpus import utterance_id

    return sorted(utterance_id(Path(name), Path()) for name in names)


# --- the run folder's earlier .hydra/ files, which Hydra overwrites before a job starts ---------
_EARLIER: dict[Path, bytes] = {}


_TRAINING_STARTED = [False]


def mark_training_started() -> None:
    """Called when the first training batch starts (callbacks.StoreConfig): from then on the run
    folder's config is the one that ran."""
    _TRAINING_STARTED[0] = True


def earlier_file(output_dir: Path, name: str = "config.yaml") -> bytes | None:
    """The content the run folder's Hydra file `name` (.hydra/config.yaml) had before Hydra overwrote it for
    this job (None: none kept); found under whichever hydra.output_subdir it was kept from (a SLURM task > 0
    runs with none: KeepEarlierRunConfig.on_run_start)."""
    folder = Path(output_dir).resolve()
    return next((content for path, content in _EARLIER.items() if path.name == name and path.is_relative_to(folder)),
                None)


EARLIER_SWEEP_CONFIGS = Path(".jobs") / "earlier"  # under a sweep folder: its job folders' .hydra/ files


class KeepEarlierRunConfig(Callback):
    """Hydra callback (conf/config.yaml): before Hydra writes the .hydra/ files of a run in a folder that
    has them (a resume, or a run refused there: run_folder), keep the earlier ones; a job that fails
    before its first training batch (refused, or any error) puts them back. A single run keeps them at
    on_run_start. A sweep's jobs write theirs before any callback of the job runs (and may run in other
    processes or on other machines), so on_multirun_start copies every job folder's .hydra/ files under
    <sweep dir>/.jobs/earlier/<job folder>/, where each job (each DDP task, each requeued attempt) takes its
    own from (a sweep run again into the same hydra.sweep.dir: the report reads each folder's overrides.yaml);
    on_multirun_end removes them (a sweep that ends in an error leaves them until the next one starts)."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        from omegaconf import read_write

        _EARLIER.clear()
        _TRAINING_STARTED[0] = False
        subdir = config.hydra.get("output_subdir")
        if subdir is None:  # DDP ranks > 0 that Lightning starts run with output_subdir=null
            return
        for path in (Path(config.hydra.run.dir) / subdir).glob("*.yaml"):
            _EARLIER[path.resolve()] = path.read_bytes()
        if not run_folder.is_rank_zero():
            # a task > 0 of a run whose processes SLURM (srun) starts, each a whole Hydra run in the same folder:
            # only rank 0 writes .hydra/ (and puts it back on a refusal); a task that wrote it too could do so
            # before rank 0 kept the earlier files, and rank 0 would then "put back" this run's (the race of
            # two writers). This task still reads what it kept (run_folder.earlier_config), as rank 0 does.
            with read_write(config):
                config.hydra.output_subdir = None

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        import shutil

        sweep, subdir = Path(config.hydra.sweep.dir), config.hydra.get("output_subdir")
        kept = sweep / EARLIER_SWEEP_CONFIGS
        shutil.rmtree(kept, ignore_errors=True)
        if subdir is None or not sweep.is_dir():
            return
        for folder in sweep.iterdir():
            if folder.is_dir() and (folder / subdir).is_dir():  # copies: a job puts its own back atomically
                (kept / folder.name).mkdir(parents=True, exist_ok=True)
                for path in (folder / subdir).glob("*.yaml"):
                    shutil.copyfile(path, kept / folder.name / path.name)

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        from hydra.types import RunMode

        if config.hydra.mode != RunMode.MULTIRUN:
            return
        _EARLIER.clear()
        _TRAINING_STARTED[0] = False
        subdir = config.hydra.get("output_subdir")
        output = Path(config.hydra.runtime.output_dir)
        kept = Path(config.hydra.sweep.dir) / EARLIER_SWEEP_CONFIGS / output.name
        if subdir is not None and kept.is_dir():
            for path in kept.glob("*.yaml"):
                _EARLIER[(output / subdir / path.name).resolve()] = path.read_bytes()

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        from hydra.core.utils import JobStatus

        if job_return.status == JobStatus.FAILED and not _TRAINING_STARTED[0] and run_folder.is_rank_zero():
            for path, content in _EARLIER.items():
                files.write_bytes(path, content)
        _EARLIER.clear()  # (a sweep's copies stay until it ends: every DDP task and requeued attempt of a job reads them)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        import shutil

        shutil.rmtree(Path(config.hydra.sweep.dir) / EARLIER_SWEEP_CONFIGS, ignore_errors=True)
