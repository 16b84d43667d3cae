"""Sweeps through Hydra's launchers and sweepers: submitit (local), joblib, Optuna, and the 60-run
TIMIT sweep's configuration."""

import itertools
import json
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from avrnn.config import validate
from avrnn.training.fit import BEST

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")  # the `sweep` extra (make install has it)


def run_folders(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["submitit_local", "parallel"])
def test_launcher_runs_two_tiny_jobs(run_script, tmp_path, corpus_dir, tiny, launcher):
    sweep = tmp_path / "sweep"
    result = run_script("train.py", "-m", f"hydra/launcher={launcher}", "seed=1,2", "num_threads=1", *tiny,
                       f"data.root={corpus_dir}", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = run_folders(sweep)
    assert [run.name[-6:] for run in runs] == ["_seed1", "_seed2"]
    metrics = [json.loads((run / "metrics.json").read_text()) for run in runs]
    assert all(m["iterations"] == 3 and m[BEST] < 0 for m in metrics)
    assert all(m["denormals"] == "flushed" for m in metrics)  # flush_denormal reaches every launcher job
    assert metrics[0]["test/elbo_per_timestep"] != metrics[1]["test/elbo_per_timestep"]  # the seeds differ


@pytest.mark.slow
def test_optuna_search_maximises_the_best_validation_elbo(run_script, tmp_path, corpus_dir, tiny):
    sweep = tmp_path / "optuna"
    result = run_script("train.py", "-m", "hparams_search=avrnn_optuna", "hydra.sweeper.n_trials=2", *tiny,
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
def test_launcher_configs_compose(compose_config, launcher, target):
    cfg = compose_config("config", f"hydra/launcher={launcher}", return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == target


def timit_sweep_runs(conf_dir: Path, data_root: Path, one_per_arm: bool):
    """The experiment=timit_sweep grid (hydra.sweeper.params), composed and validated run by run."""
    GlobalHydra.instance().clear()
    base = ["experiment=timit_sweep", f"data.root={data_root}"]
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        params = compose(config_name="config", overrides=base, return_hydra_config=True).hydra.sweeper.params
        grid = [[f"{key}={value}" for value in str(values).split(",")] for key, values in params.items()]
        runs = list(itertools.product(*grid))
        configs = []
        for overrides in ([r for r in runs if all(o in r for o in (grid[1][0], grid[2][0]))] if one_per_arm else runs):
            cfg = compose(config_name="config", overrides=[*base, *overrides])
            validate(cfg)
            configs.append(cfg)
    GlobalHydra.instance().clear()
    return grid, runs, configs


def check_timit_sweep(grid, runs, configs):
    assert [key.split("=")[0] for key, *_ in grid] == ["arm", "latent", "seed"]
    assert len(runs) == 60  # 5 arms x 4 latent sizes x 3 seeds
    assert all(cfg.data.name == "timit" and cfg.trainer.accelerator == "gpu" for cfg in configs)
    assert {(cfg.model.name, cfg.critic.name, cfg.ablation.name) for cfg in configs} == {
        ("avrnn", "wgan", "none"), ("avrnn", "gan", "none"), ("avrnn", "wgan_gp", "none"),
        ("avrnn", "wgan", "posterior_only"), ("vrnn", "none", "none")}


def test_timit_sweep_arms_compose_and_validate(tmp_path, conf_dir):
    """Each of the 5 arms once (first latent size and seed); the whole grid is a slow test."""
    grid, runs, configs = timit_sweep_runs(conf_dir, tmp_path, one_per_arm=True)
    assert len(configs) == 5
    check_timit_sweep(grid, runs, configs)


@pytest.mark.slow
def test_timit_sweep_is_60_valid_runs(tmp_path, conf_dir):
    """5 arms x 4 latent sizes x 3 seeds; every combination composes and passes validation."""
    grid, runs, configs = timit_sweep_runs(conf_dir, tmp_path, one_per_arm=False)
    assert len(configs) == 60
    check_timit_sweep(grid, runs, configs)


@pytest.mark.slow
def test_optuna_search_goes_on_after_failed_trials_and_says_when_all_failed(run_script, tmp_path, corpus_dir, tiny):
    """weight_decay=1e30 with SGD sends the weights to inf in the first step: every trial stops with
    a TrainingFault. The search must still run both trials, then end with one line."""
    sweep = tmp_path / "optuna"
    result = run_script("train.py", "-m", "hparams_search=avrnn_optuna", "hydra.sweeper.n_trials=2", *tiny,
                        "model.optimizer.name=sgd", "model.optimizer.weight_decay=1e30", "training.max_bad_steps=1",
                       f"data.root={corpus_dir}", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 2
    assert len(run_folders(sweep)) == 2
    assert (result.stdout + result.stderr).count("Failed experiment: 1 non-finite step in a row") == 2
    last = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("error: every trial of the search failed (2 trials; first: TrainingFault: 1 non-finite")


STUDY_ARMS = ["vrnn", "avrnn_paper", "avrnn_conditional", "avrnn_own", "avrnn_hybrid", "avrnn_posterior_only",
              "avrnn_literal"]


def test_every_study_arm_gets_the_same_budget_and_search_space(compose_config, tmp_path):
    """experiment=study: the same optimizer settings and iterations for every arm; the tuning searches
    the same log-uniform range for every phase's learning rate (and the adversarial optimizer)."""
    seen = set()
    for arm in STUDY_ARMS:
        search = "study_vrnn" if arm == "vrnn" else "study_avrnn"
        cfg = compose_config("config", "experiment=study", f"arm={arm}", f"hparams_search={search}",
                             "data=audio_dir", f"data.root={tmp_path}", return_hydra_config=True)
        validate(cfg)
        params = dict(cfg.hydra.sweeper.params)
        assert cfg.hydra.sweeper.n_trials == 16 and cfg.training.max_iterations == 400 and cfg.num_threads == 1
        assert cfg.model.optimizer.name == "rmsprop" and cfg.model.adversarial_optimizer.name == "rmsprop"
        lrs = {key: value for key, value in params.items() if key.endswith(".lr")}
        assert set(lrs.values()) == {"tag(log, interval(1e-5, 3e-3))"}
        if arm == "vrnn":
            assert list(params) == ["model.optimizer.lr"]
        else:
            assert set(params) == {"model.optimizer.lr", "model.adversarial_optimizer.lr", "critic.optimizer.lr",
                                   "model.adversarial_optimizer.name"}
        seen.add((cfg.model.name, cfg.critic.input, cfg.model.prior_path, cfg.model.recurrence_input,
                  cfg.ablation.name))
    assert len(seen) == len(STUDY_ARMS)  # seven different arms
    final = compose_config("config", "experiment=study", "arm=avrnn_own", "data=audio_dir", f"data.root={tmp_path}")
    assert final.training.max_iterations == 2000


def test_each_arms_tuned_setting_selects_that_arm_and_sets_only_the_searched_keys(compose_config, tmp_path):
    """conf/tuned/<arm>.yaml (the study's chosen settings): `tuned=<arm>` gives the arm's config with
    exactly the keys its search tuned changed, so the finals are one command."""
    for arm in STUDY_ARMS:
        common = ("config", "experiment=study", "data=audio_dir", f"data.root={tmp_path}")
        plain_arm = compose_config(*common, f"arm={arm}")
        search = compose_config(*common, f"arm={arm}", f"hparams_search=study_{'vrnn' if arm == 'vrnn' else 'avrnn'}",
                                return_hydra_config=True).hydra.sweeper.params
        tuned = compose_config(*common, f"tuned={arm}")
        validate(tuned)
        changed = {key for key in search if OmegaConf.select(tuned, key) != OmegaConf.select(plain_arm, key)}
        for key in search:  # untouched keys aside, the two configs are the same
            OmegaConf.update(tuned, key, OmegaConf.select(plain_arm, key))
        assert tuned == plain_arm, arm
        assert changed and changed <= set(search), (arm, changed)


def grid_search(folder, param: str) -> list[str]:
    """A grid search over one parameter's two values, as a user's own conf/hparams_search/<name>.yaml
    (found through --config-dir), with the project's sweeper."""
    (folder / "hparams_search").mkdir(parents=True)
    key, values = param.split("=", 1)
    (folder / "hparams_search" / "two_values.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /hydra/sweeper: optuna\n  - override /hydra/sweeper/sampler: grid\n"
        "hydra:\n  sweeper:\n    _target_: hydra_plugins.avrnn_optuna_sweeper.optuna_sweeper.OptunaSweeper\n"
        f"    direction: maximize\n    n_trials: 2\n    max_failure_rate: 1.0\n    params:\n      {key}: {values}\n")
    return [f"--config-dir={folder}", "hparams_search=two_values"]


def optuna_sweep(run_script, sweep, tiny, corpus_dir, *overrides, search=("hparams_search=avrnn_optuna",)):
    """run_script: a subprocess (run_script) or in-process (run_in_process) runner of an entry point."""
    result = run_script("train.py", "-m", *search, *tiny, f"data.root={corpus_dir}", f"hydra.sweep.dir={sweep}",
                        *overrides)
    assert (sweep / "optimization_results.yaml").exists(), result.stderr[-3000:]
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    trials = yaml.safe_load((sweep / "trials.yaml").read_text())["trials"]
    return result, results, trials


@pytest.mark.slow
@pytest.mark.parametrize("failing,reason", [
    ("model.std_floor=choice(0.001,-1)", "ConfigError: model.std_floor must be positive, got -1"),
    ("model.optimizer.lr=choice(1e-3,1e30)", "TrainingFault: 1 non-finite step in a row"),
    ("data.frame_size=choice(200,100000)", "DataError: "),
])
def test_a_failed_trial_is_recorded_and_the_search_goes_on(run_script, tmp_path, corpus_dir, tiny, failing, reason):
    """A grid over one good and one failing value: one COMPLETE and one FAILED trial, the search ends normally."""
    result, results, trials = optuna_sweep(run_script, tmp_path / "sweep", tiny, corpus_dir, "training.max_bad_steps=1",
                                           search=grid_search(tmp_path / "conf", failing))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (results["n_trials"], results["n_complete"], results["n_failed"]) == (2, 1, 1)
    assert results["failures"][0]["reason"].startswith(reason), results["failures"]
    (complete,) = [t for t in trials if t["state"] == "COMPLETE"]
    assert results["best_value"] == pytest.approx(complete["value"])


@pytest.mark.slow
def test_a_search_whose_every_trial_fails_ends_in_one_line_with_a_results_file(run_script, tmp_path, corpus_dir, tiny):
    """Validation every 2 epochs of a 1-epoch run: no trial has an objective (NaN), none is told to Optuna as a
    value. (trainer.limit_val_batches=0 is refused before the first trial.)"""
    result, results, trials = optuna_sweep(run_script, tmp_path / "sweep", tiny, corpus_dir, "hydra.sweeper.n_trials=2",
                                           "trainer.check_val_every_n_epoch=2")
    assert result.returncode == 2
    assert "\x1b[" not in result.stderr + result.stdout  # no terminal: no colour codes (Optuna's own handler wrote them)
    assert "A new study created in memory" in result.stdout + result.stderr  # its lines still there, through Hydra's
    last = result.stderr.strip().splitlines()[-1]
    assert last.endswith("narrow hydra.sweeper.params or fix the failing setting, then run it again"), last
    assert last.startswith("error: every trial of the search failed (2 trials; first: TrialFailed: this trial has "
                           "no usable objective: no validation ran")
    assert results["best_value"] is None and (results["n_complete"], results["n_failed"]) == (0, 2)
    assert [t["state"] for t in trials] == ["FAIL", "FAIL"]


def test_a_search_with_validation_turned_off_is_refused_before_its_first_trial(run_in_process, tmp_path, corpus_dir,
                                                                            tiny):
    """The field case: trainer.limit_val_batches=0 made every trial fail, each after it trained (20 by default)."""
    sweep = tmp_path / "sweep"
    result = run_in_process("train.py", "-m", "hparams_search=avrnn_optuna", *tiny, f"data.root={corpus_dir}",
                            f"hydra.sweep.dir={sweep}", "trainer.limit_val_batches=0")
    assert result.returncode == 2
    assert result.last_line == ("error: trainer.limit_val_batches=0 turns validation off, and a search's objective is "
                                "the best validation ELBO: every trial would fail after training; drop "
                                "trainer.limit_val_batches")
    assert not sweep.exists() or not [path for path in sweep.iterdir() if path.name[0].isdigit()]  # no trial ran


def test_a_persistent_study_run_again_continues_the_search(run_in_process, tmp_path, corpus_dir, tiny, monkeypatch):
    """The field report: the README's persistent study failed to start (pip's SQLAlchemy 2); started again it
    re-ran the first trials' parameters into the same folders, and a killed trial stayed RUNNING for good.
    Here a study with one trial, then three left RUNNING (a dead process on this host, one that recorded
    none, one on another machine), then the same command again."""
    import optuna
    from optuna.trial import TrialState

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    common = ("hydra.sweeper.n_trials=1", f"hydra.sweeper.storage={storage}", "training.max_iterations=1",
              "training.test_after_training=false")
    first, _, _ = optuna_sweep(run_in_process, tmp_path / "sweep", tiny, corpus_dir, *common)
    assert first.returncode == 0, first.stderr[-3000:]
    study = optuna.load_study(study_name="avrnn", storage=storage)
    dead, unrecorded, remote = (study.ask() for _ in range(3))
    study._storage.set_trial_system_attr(dead._trial_id, "avrnn_process", f"{__import__('socket').gethostname()}:999999")
    study._storage.set_trial_system_attr(remote._trial_id, "avrnn_process", "another-machine:123")
    from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl

    configure = OptunaSweeperImpl._configure_trials

    def and_another_sweeper_asks(self, *args, **kwargs):  # between this sweep's ask and its launch
        optuna.load_study(study_name="avrnn", storage=storage).ask()
        return configure(self, *args, **kwargs)
    monkeypatch.setattr(OptunaSweeperImpl, "_configure_trials", and_another_sweeper_asks)
    from hydra_plugins.avrnn_optuna_sweeper import optuna_sweeper

    monkeypatch.setattr(optuna_sweeper, "JUST_ASKED_SECONDS", 0.0)  # the unrecorded trial was asked just now
    second, results, listed = optuna_sweep(run_in_process, tmp_path / "sweep", tiny, corpus_dir, *common)
    assert second.returncode == 0, second.stderr[-3000:]
    assert [t["trial"] for t in listed] == [4] and results["n_trials"] == 1  # this command's; the study holds all
    trials = optuna.load_study(study_name="avrnn", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL, TrialState.RUNNING,
                                         TrialState.COMPLETE, TrialState.RUNNING]
    assert "avrnn_process" not in trials[5].system_attrs  # the other sweeper's trial: not claimed by this one
    assert trials[1].system_attrs["fail_reason"] == ("marked failed when the study was continued: its process "
                                                     f"({__import__('socket').gethostname()}:999999) ended while it ran")
    assert "no process was recorded for it" in trials[2].system_attrs["fail_reason"]
    host = __import__("socket").gethostname()
    assert trials[4].system_attrs["avrnn_process"] == f"{host}:{__import__('os').getpid()}"  # this (in-process) sweep
    assert trials[3].system_attrs["avrnn_process"] == "another-machine:123"  # another sweeper's trial, not claimed
    assert trials[4].params != trials[0].params  # not the seeded sampler's first draw again
    numbers = sorted(int(path.name.split("_")[0]) for path in (tmp_path / "sweep").iterdir() if path.name[0].isdigit())
    assert numbers == [0, 4]  # the second command's trial in a folder of its own, numbered after the study's
    assert "continuing the Optuna study 'avrnn'" in second.stdout + second.stderr


def test_an_unstamped_trial_asked_for_a_moment_ago_may_be_another_live_sweepers():
    import datetime
    import types

    from hydra_plugins.avrnn_optuna_sweeper.optuna_sweeper import JUST_ASKED_SECONDS, just_asked

    now = datetime.datetime.now()
    assert just_asked(types.SimpleNamespace(datetime_start=now - datetime.timedelta(seconds=2)))
    assert not just_asked(types.SimpleNamespace(datetime_start=now - datetime.timedelta(seconds=JUST_ASKED_SECONDS + 1)))
    assert not just_asked(types.SimpleNamespace(datetime_start=None))
