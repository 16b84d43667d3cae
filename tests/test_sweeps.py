"""Sweeps through Hydra's launchers and sweepers: submitit (local), joblib, Optuna, and the 60-run
TIMIT sweep's configuration."""

import itertools
import json
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from avrnn.config import validate
from avrnn.training import BEST
from conftest import CONF, TINY
from test_cli import run_train

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")  # the `sweep` extra (make install has it)


def run_folders(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))


@pytest.mark.parametrize("launcher", ["submitit_local", "parallel"])
def test_launcher_runs_two_tiny_jobs(tmp_path, corpus_dir, launcher):
    sweep = tmp_path / "sweep"
    result = run_train("-m", f"hydra/launcher={launcher}", "seed=1,2", "num_threads=1", *TINY,
                       f"data.root={corpus_dir}", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = run_folders(sweep)
    assert [run.name[-6:] for run in runs] == ["_seed1", "_seed2"]
    metrics = [json.loads((run / "metrics.json").read_text()) for run in runs]
    assert all(m["iterations"] == 3 and m[BEST] < 0 for m in metrics)
    assert metrics[0]["test/elbo_per_timestep"] != metrics[1]["test/elbo_per_timestep"]  # the seeds differ


def test_optuna_search_maximises_the_best_validation_elbo(tmp_path, corpus_dir):
    sweep = tmp_path / "optuna"
    result = run_train("-m", "hparams_search=avrnn_optuna", "hydra.sweeper.n_trials=2", *TINY,
                       f"data.root={corpus_dir}", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    trials = [json.loads((run / "metrics.json").read_text()) for run in run_folders(sweep)]
    assert len(trials) == 2
    assert best["best_value"] == pytest.approx(max(t[BEST] for t in trials))
    assert set(best["best_params"]) == {"model.optimizer.lr", "model.adversarial_optimizer.lr",
                                        "critic.optimizer.lr", "critic.clip_value"}


@pytest.mark.parametrize("launcher,target", [
    ("parallel", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
    ("slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"),
])
def test_launcher_configs_compose(launcher, target):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    assert cfg.hydra.launcher._target_ == target


def test_timit_sweep_is_60_valid_runs(tmp_path):
    """5 arms x 4 latent sizes x 3 seeds; every combination composes and passes validation."""
    GlobalHydra.instance().clear()
    base = ["experiment=timit_sweep", f"data.root={tmp_path}"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        params = compose(config_name="config", overrides=base, return_hydra_config=True).hydra.sweeper.params
        grid = [[f"{key}={value}" for value in str(values).split(",")] for key, values in params.items()]
        runs = list(itertools.product(*grid))
        assert len(runs) == 60
        arms = set()
        for overrides in runs:
            cfg = compose(config_name="config", overrides=[*base, *overrides])
            validate(cfg)
            assert cfg.data.name == "timit" and cfg.trainer.accelerator == "gpu"
            arms.add((cfg.model.name, cfg.critic.name, cfg.ablation.name))
    GlobalHydra.instance().clear()
    assert arms == {("avrnn", "wgan", "none"), ("avrnn", "gan", "none"), ("avrnn", "wgan_gp", "none"),
                    ("avrnn", "wgan", "posterior_only"), ("vrnn", "none", "none")}


def test_optuna_search_goes_on_after_failed_trials_and_says_when_all_failed(tmp_path, corpus_dir):
    """weight_decay=1e30 with SGD sends the weights to inf in the first step: every trial stops with
    a TrainingFault. The search must still run both trials, then end with one line."""
    sweep = tmp_path / "optuna"
    result = run_train("-m", "hparams_search=avrnn_optuna", "hydra.sweeper.n_trials=2", *TINY,
                       "model.optimizer.name=sgd", "model.optimizer.weight_decay=1e30", "training.max_bad_steps=1",
                       f"data.root={corpus_dir}", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 2
    assert len(run_folders(sweep)) == 2
    assert (result.stdout + result.stderr).count("Failed experiment: 1 non-finite steps in a row") == 2
    last = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("error: every trial of the hyper-parameter search failed")
