"""`train(cfg)`: wires config, data and the LightningModule together; holds no maths.

Entry points (src/train.py) call it; tests call it directly with a composed config.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import warnings
from pathlib import Path
from typing import Sequence

import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar
from pytorch_lightning.loggers import TensorBoardLogger

from avrnn import hydra_job
from avrnn.data import files
from avrnn.training.checkpoints import AtomicCheckpointIO, describe_kept, load_checkpoint, resolve_ckpt_path, upgrade_data_and_model, upgrade_hyper_parameters
from avrnn.config import ConfigError, apply_num_threads, check_synthetic_root, validate
from avrnn.data.datamodule import SpeechDataModule
from avrnn.data.progress import counted, on_terminal
from avrnn import registry
from avrnn.training import denormals, lightning_noise, trainer_settings
from avrnn.training.callbacks import (DenormalPolicy, PriorAudioSamples, RandomState, SaveEveryMinutes, StoreConfig,
                                      progress_bar)
from avrnn.models.vrnn import VRNNConfig
from avrnn.training.module import PROGRESS_BAR_ELBO, AVRNNModule
from avrnn.training.phases import batches_per_iteration
from avrnn.training.progress_lines import ProgressLines
from avrnn.training import run_folder
from avrnn.training.resume import (check_resume, check_same_corpus, check_same_splits, earlier_file, run_differences,
                                     run_folder_checkpoint, say_resuming)
from avrnn.training.stops import RunStopped, StopAtBoundary, StopSignals
from avrnn.training.run_summary import summarize_run
from avrnn.training.precision import bf16_hint, supported_precision

log = logging.getLogger("avrnn.training")  # the name before the layout change: log lines and users' logging settings keep it
MONITOR = "val/elbo_per_timestep"
BEST = "val/best_elbo_per_timestep"  # the best checkpoint's MONITOR: what sweeps and Optuna maximise


def plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True)


def data_options(cfg: DictConfig) -> dict:
    """The data config as plain data with absolute paths (also stored in checkpoints)."""
    data = plain(cfg.data)
    data["root"] = str(Path(data["root"]).expanduser().resolve())
    if data["cache_dir"]:
        data["cache_dir"] = str(Path(data["cache_dir"]).expanduser().resolve())
    return data


def build_datamodule(cfg: DictConfig) -> SpeechDataModule:
    return SpeechDataModule(
        data_options(cfg),
        seed=cfg.seed,
        batches_per_iteration=batches_per_iteration(plain(cfg.critic), plain(cfg.ablation), plain(cfg.training)),
        iterations_per_epoch=cfg.training.iterations_per_epoch,
        audio_splits=(),  # training reads features only (evaluation, which scores reconstructions, keeps them all)
    )


def build_module(cfg: DictConfig, normalization: dict | None = None, data: dict | None = None) -> AVRNNModule:
    """The LightningModule of a config (plain data only, so that checkpoints hold no objects)."""
    registry.trust(registry.targets_in([plain(cfg.critic), plain(cfg.model)]))  # the user's config: import them
    return AVRNNModule(model=plain(cfg.model), critic=plain(cfg.critic), ablation=plain(cfg.ablation),
                       training=plain(cfg.training), normalization=normalization, data=data)


def build_trainer(cfg: DictConfig, output_dir: Path, steps_per_iteration: int,
                  extra_callbacks: Sequence[pl.Callback] = ()) -> pl.Trainer:
    lightning_noise.quiet()  # before the Trainer: its tip is logged as it is built
    # Two callbacks: Lightning 2.6 refreshes `save_last` only when a top-k checkpoint was saved in
    # the same step, so a run whose validation bound stopped improving would keep a stale last.ckpt.
    # named by the iteration it holds: Lightning's epoch counter runs one ahead after a stop mid-epoch
    best = ModelCheckpoint(dirpath=output_dir / "checkpoints", monitor=MONITOR, mode="max", save_top_k=1,
                           filename="best-iter{iteration:06.0f}", auto_insert_metric_name=False)
    # last.ckpt: at every epoch end, and optionally every N iterations and every N minutes.
    last = dict(dirpath=output_dir / "checkpoints", filename="last", enable_version_counter=False)
    callbacks = [best, ModelCheckpoint(**last), PriorAudioSamples(), RandomState(cfg.seed), DenormalPolicy(cfg.flush_denormal),
                 *extra_callbacks]
    shows, bar = progress_display(cfg, terminal=on_terminal())
    if bar and not any(isinstance(c, ProgressBar) for c in callbacks):
        callbacks.append(progress_bar())  # iterations out of training.max_iterations
    callbacks += shows
    if cfg.training.checkpoint_every_iterations:
        # Lightning's step counter counts optimizer steps: steps_per_iteration per iteration
        callbacks.append(ModelCheckpoint(**last, every_n_train_steps=cfg.training.checkpoint_every_iterations
                                         * steps_per_iteration))
    if cfg.training.checkpoint_every_minutes:
        callbacks.append(SaveEveryMinutes(output_dir / "checkpoints" / "last.ckpt", cfg.training.checkpoint_every_minutes))
    logger = TensorBoardLogger(save_dir=str(output_dir), name="tensorboard", version="", default_hp_metric=False)
    kwargs = plain(cfg.trainer)
    kwargs["enable_progress_bar"] = bar or any(isinstance(c, ProgressBar) for c in callbacks)
    kwargs["default_root_dir"] = kwargs.get("default_root_dir") or str(output_dir)
    kwargs["precision"] = supported_precision(kwargs.get("precision"), kwargs.get("accelerator"))
    if kwargs.get("accelerator") in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator={kwargs['accelerator']} needs a CUDA GPU and torch sees none; use "
                          "trainer=cpu (DDP on CPUs: trainer=ddp trainer.accelerator=cpu trainer.devices=2)")
    kwargs["plugins"] = [*(kwargs.get("plugins") or []), AtomicCheckpointIO(), *cluster_plugins()]
    try:
        return pl.Trainer(**kwargs, logger=logger, callbacks=callbacks)
    except (MisconfigurationException, ValueError) as error:  # e.g. an unknown strategy or precision name
        refused = trainer_settings.refusal(error, kwargs, "set-up")
        message = " ".join(str(error).split())
        raise refused or ConfigError(f"pytorch_lightning.Trainer refused the trainer.* settings: {message}") from error


def progress_display(cfg: DictConfig, terminal: bool) -> tuple[list[pl.Callback], bool]:
    """(callbacks, whether to show a bar): on a terminal the bar (unless trainer.enable_progress_bar=false);
    elsewhere (a log file: SLURM, nohup, a pipe) progress lines every training.log_every_seconds instead
    (avrnn.training.progress_lines), and the bar only where trainer.enable_progress_bar=true asks for it."""
    requested = cfg.trainer.get("enable_progress_bar")
    every = cfg.training.get("log_every_seconds")
    lines = [ProgressLines(every)] if every and not terminal else []
    return lines, requested is True or (terminal and requested is not False)


def multiple_processes() -> bool:
    """Whether this process is one of several of one run (DDP started by SLURM, torchrun or Lightning)."""
    return any(int(os.environ.get(key, "1") or 1) > 1 for key in ("WORLD_SIZE", "SLURM_NTASKS"))


def cluster_plugins() -> list:
    """Under SLURM, Lightning's own auto-requeue (a SIGUSR1 handler that saves an hpc checkpoint and calls
    scontrol requeue) stays off: submitit requeues (hydra/launcher=slurm, max_num_timeout), the run
    saves at an iteration boundary (avrnn.training.stops), and two requeue mechanisms would fight."""
    from lightning_fabric.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


METRICS_UNITS = ("*_per_timestep: nats per timestep (train/: the last iteration's; val/: the last validation's; "
                 "val/best_*: the best checkpoint's; test/: the tested checkpoint's); log_jacobian: nats per timestep "
                 "to add to a bound for the bound on the unnormalised features (bounds_are_on says what they are); "
                 "js_divergence: nats; critic_loss, adversarial_loss: nats under critic=gan, the critic's own scale "
                 "under the WGAN critics; wasserstein, gradient_penalty: the critic's own scale; critic_distance: the "
                 "name and unit of the critic's distance estimate (its objective's own, where it is a user's; a mean "
                 "over sequences); grad_norm/<phase>/<block>: the L2 norm of the block's gradient in that phase; "
                 "update_norm/<phase>/<block>: the L2 norm of its optimizer step; lr/<phase>: the phase's learning "
                 "rate; kl_weight: the KL term's weight (0 to 1); faults/skipped_<phase>_steps: steps skipped for a "
                 "non-finite loss or gradient; iteration, iterations: the training iterations done; "
                 "test_checkpoint_iteration: the iteration of the checkpoint tested")


def check_launch(trainer: pl.Trainer) -> None:
    """Lightning's DDP starts the other processes by re-running the command line; inside a Hydra
    multirun that line is the whole sweep, so each extra process would start a sweep of its own and
    pair its jobs with the wrong ones of rank 0 (seen: silently, with an explicit hydra.sweep.dir)."""
    strategy = trainer.strategy
    relaunches = (isinstance(getattr(strategy, "launcher", None), _SubprocessScriptLauncher)
                  and not strategy.cluster_environment.creates_processes_externally)
    if trainer.world_size > 1 and relaunches and hydra_job.in_multirun():
        raise ConfigError(
            f"trainer.devices x trainer.num_nodes = {trainer.world_size} processes cannot start inside a local "
            "multirun (-m): Lightning would re-run the whole sweep in each process; run each job without -m, or "
            "sweep with hydra/launcher=slurm, where SLURM starts one process per device")


def train(cfg: DictConfig, callbacks: Sequence[pl.Callback] = ()) -> dict[str, float]:
    """Train one model; return the final logged metrics (floats), MONITOR and BEST included.
    `callbacks` are added to the Trainer's (for use from Python, e.g. early stopping).
    A stop signal ends it with RunStopped (avrnn.training.stops) after saving at an iteration boundary; its
    one-line message goes into the run's log file (Hydra's) and is the exception's, which src/train.py prints."""
    validate(cfg)
    check_synthetic_root(cfg, hydra_job.overrides())
    for idle in VRNNConfig.from_dict(plain(cfg.model)).sizes_without_effect() if run_folder.is_rank_zero() else []:
        log.warning("%s", idle)
    trainer_settings.check(plain(cfg.trainer), cfg.training.test_after_training)
    signals = StopSignals().install()
    try:
        metrics = _train(cfg, callbacks, signals)
        if signals.received:  # after the last boundary (the final test under DDP, metrics.json): all is saved
            raise RunStopped(signals.received, f"stopped by {signal.Signals(signals.received).name} as the run "
                                               f"ended: it finished and saved everything ({Path(cfg.paths.output_dir)})")
        return metrics
    except RunStopped as stop:  # into the run's log; the terminal gets it once, from avrnn.cli.run (or the exception)
        if run_folder.is_rank_zero():
            run_folder.write_to_log_files(stop.message, Path(cfg.paths.output_dir), logging.WARNING)
        signals.chain_previous()  # e.g. submitit's requeue, now that the work is saved
        raise
    except OSError as error:  # a full disk: name the run folder's filesystem and the checkpoints kept (checked)
        checkpoints = Path(cfg.paths.output_dir).resolve() / "checkpoints"
        reported = files.as_write_failure(error, checkpoints, kept=describe_kept)
        if reported is error:
            raise
        raise reported from error
    finally:
        signals.restore()


def _train(cfg: DictConfig, callbacks: Sequence[pl.Callback], signals: StopSignals) -> dict[str, float]:
    apply_num_threads(cfg.num_threads)
    denormals.apply(cfg.flush_denormal)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)  # said below, once the run is past its checks
    output_dir = Path(cfg.paths.output_dir).resolve()
    for folder in (output_dir, output_dir / "checkpoints"):
        files.remove_stale_temporaries(folder)  # of a process killed mid-write
    ckpt_path = resolve_ckpt_path(cfg.ckpt_path, output_dir)
    checkpoint = None
    if ckpt_path is None:  # a requeued job reruns its command: resume from its own folder's last.ckpt
        ckpt_path, checkpoint = run_folder_checkpoint(output_dir, plain(cfg), stored_config)
        if ckpt_path is None:  # a fresh run: not into a folder that holds another run's outputs
            run_folder.check_fresh_start(output_dir, plain(cfg), run_folder.earlier_config(output_dir, earlier_file),
                                         run_differences)
        finished = (checkpoint is not None and cfg.training.max_iterations is not None
                    and checkpoint.get("avrnn_iteration", 0) >= cfg.training.max_iterations)
        if finished and (output_dir / "metrics.json").is_file():
            log.info("%s holds this run, finished (%s, metrics.json): nothing to do", output_dir,
                     counted(checkpoint["avrnn_iteration"], "iteration"))
            return {key: value for key, value in json.loads((output_dir / "metrics.json").read_text()).items()
                    if isinstance(value, (int, float))}
        if checkpoint is not None:
            say_resuming(output_dir, checkpoint.get("avrnn_iteration", 0))
    else:
        checkpoint = load_checkpoint(ckpt_path)  # refuse unsafe or corrupt files with one line, before Lightning
        check_resume(stored_config(checkpoint), plain(cfg), ckpt_path, checkpoint.get("avrnn_iteration", 0))
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    if signals.received and not multiple_processes():  # under DDP the ranks agree at on_train_start instead
        raise RunStopped(signals.received, f"stopped by {signal.Signals(signals.received).name} before its first iteration (while "
                                           f"reading the corpus): nothing was trained, nothing saved"
                                           + (f"; {ckpt_path} is kept as it was" if ckpt_path else ""))
    splits = datamodule.split_membership()
    if checkpoint is not None:  # the training statistics first (their line names both roots), then each split
        hyper = checkpoint.get("hyper_parameters") or {}
        check_same_corpus(hyper.get("normalization"), datamodule.statistics,
                          (hyper.get("data") or {}).get("root"), data_options(cfg)["root"])
        stored = checkpoint.get("avrnn_splits")
        earlier = stored and any("content" not in entry for entry in stored.values())
        check_same_splits(stored, datamodule.earlier_split_membership() if earlier else splits, ckpt_path)
    module = build_module(cfg, normalization=datamodule.statistics, data=data_options(cfg))
    run_folder.record_settings(output_dir, plain(cfg))  # checked: what writes this folder's logs from here on
    store = StoreConfig(plain(cfg), splits)
    stops = StopAtBoundary(signals, output_dir / "checkpoints" / "last.ckpt")
    trainer = build_trainer(cfg, output_dir, len(module.phases), [*callbacks, store, stops])
    check_launch(trainer)
    if trainer.is_global_zero:
        log.info("seed %d: torch, numpy, Python and the data loader workers seeded", cfg.seed)
    record_precision(cfg, str(trainer.precision), output_dir if trainer.is_global_zero else None)
    store.config["trainer"]["precision"] = str(trainer.precision)
    hint = bf16_hint(trainer.precision, cfg.trainer.get("accelerator"), cfg.data.batch_size) \
        if trainer.is_global_zero else None
    if hint:
        log.info(hint)
    settings = plain(cfg.trainer)
    if cfg.training.validate_before_training and ckpt_path is None:
        with trainer_settings.checked_by_lightning(settings, "the validation before training"):
            trainer.validate(module, datamodule=datamodule, verbose=False)  # the curves' starting point
    with trainer_settings.checked_by_lightning(settings, "training"), warnings.catch_warnings():
        if ckpt_path is not None:  # in its own folder its checkpoints are expected; elsewhere Lightning says so
            lightning_noise.resuming(own_folder=Path(ckpt_path).resolve().parent == output_dir / "checkpoints")
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    metrics = {key: float(value) for key, value in trainer.callback_metrics.items()
               if key != PROGRESS_BAR_ELBO}  # the progress bar's copy of train/elbo_per_timestep
    best_score = trainer.checkpoint_callback.best_model_score
    if best_score is not None:
        metrics[BEST] = float(best_score)
    trained_iterations = module.iteration
    if cfg.training.test_after_training and not trainer.fast_dev_run:
        best = trainer.checkpoint_callback.best_model_path or None
        kept = (f"training finished and its checkpoints are kept in {output_dir / 'checkpoints'}: the same command "
                f"without that setting and with hydra.run.dir={output_dir} runs only the test")
        with trainer_settings.checked_by_lightning(settings, "the test after training", kept):
            tested = trainer.test(module, datamodule=datamodule, ckpt_path=best, weights_only=True, verbose=False)
        metrics.update({key: float(value) for key, value in (tested[0] if tested else {}).items()})
        summary = {**metrics, "units": METRICS_UNITS, "iterations": trained_iterations,
                   "test_checkpoint_iteration": module.iteration,
                   "test_checkpoint": best or "final weights", "precision": str(trainer.precision),
                   "denormals": denormals.state()}
        if module.critic is not None:  # which logged number is the critic's estimate, and in what unit
            summary.update(critic_distance={"name": module.objective.distance_name,
                                            "unit": module.objective.distance_unit})
        if module.representation is not None:  # what the bounds are on (as evaluate.py's metrics.json says)
            summary.update(bounds_are_on=module.representation.bound_on,
                           log_jacobian=module.representation.log_jacobian_per_timestep(),
                           frames_scored=module.representation.frames_scored)
        if trainer.is_global_zero:
            files.write_text(output_dir / "metrics.json", json.dumps(summary, indent=2))
            summarize_run(trainer.logger, plain(cfg), metrics, output_dir, trained_iterations)
        tested = (f"best {MONITOR} = {metrics[BEST]:.3f} nats/timestep (checkpoint of iteration {module.iteration}, "
                  "tested)" if BEST in metrics else "no validation ran (the final weights tested)")
        if trainer.is_global_zero:  # one line, not one per DDP process
            log.info("finished %s; %s; test ELBO %.3f, reconstruction %.3f, KL %.3f nats/timestep; outputs in %s",
                     counted(trained_iterations, "iteration"), tested,
                     metrics.get("test/elbo_per_timestep", float("nan")), metrics.get("test/rec_per_timestep", float("nan")),
                     metrics.get("test/kl_per_timestep", float("nan")), output_dir)
    elif trainer.is_global_zero:
        log.info("finished %s; best %s = %.3f nats/timestep (not tested: training.test_after_training="
                 "false); outputs in %s", counted(trained_iterations, "iteration"), MONITOR,
                 metrics.get(BEST, float("nan")), output_dir)
    return metrics


def stored_config(checkpoint: dict) -> dict:
    """The resolved config a checkpoint trained with; from checkpoints of earlier versions, the
    config groups their hyper-parameters hold."""
    if "avrnn_config" in checkpoint:
        return upgrade_data_and_model(checkpoint["avrnn_config"])
    hyper = upgrade_data_and_model(checkpoint.get("hyper_parameters") or {})
    if "critic" in hyper and "ablation" in hyper:
        hyper["critic"], hyper["ablation"] = upgrade_hyper_parameters(hyper["critic"], hyper["ablation"])
    return {key: hyper[key] for key in ("model", "critic", "ablation", "training", "data") if key in hyper}


def record_precision(cfg: DictConfig, precision: str, output_dir: Path | None) -> None:
    """The precision the run trains in, in its config and (output_dir given: rank 0) in the run folder's
    .hydra/config.yaml (where Hydra saved the requested one: bf16 falls back to fp32 on a CPU without it,
    null means 32-true)."""
    if cfg.trainer.get("precision") == precision:
        return
    cfg.trainer.precision = precision
    saved = output_dir / ".hydra" / "config.yaml" if output_dir is not None else None
    if saved is not None and saved.exists():
        stored = OmegaConf.load(saved)
        stored.trainer.precision = precision
        files.write_text(saved, OmegaConf.to_yaml(stored))
