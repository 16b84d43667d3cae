"""Every stop saves at an iteration boundary, says so in one line and exits 128 + signal
(avrnn.training.stops); a requeued job resumes from its folder by itself; a sweep stopped by a signal
says which jobs finished."""

import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from avrnn.training.fit import train
from avrnn.training.module import AVRNNModule
from avrnn.training.stops import RunStopped, StopSignals
from avrnn.config import ConfigError

RUN = ["training.iterations_per_epoch=2", "training.validate_before_training=false", "training.max_iterations=6"]


def iteration_of(path):
    return torch.load(path, weights_only=True)["avrnn_iteration"]


def send_after(monkeypatch, method: str, signum=signal.SIGTERM, when=lambda module: True):
    """The process sends itself `signum` once, after the first call of AVRNNModule.<method> where when(module)."""
    original = getattr(AVRNNModule, method)
    sent = []

    def sending(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if not sent and when(self):
            sent.append(signum)
            os.kill(os.getpid(), signum)
        return out

    monkeypatch.setattr(AVRNNModule, method, sending)
    return sent


def test_sigterm_in_a_subprocess_saves_says_so_exits_143_and_the_rerun_resumes(root, tmp_path, corpus_dir, tiny,
                                                                               run_in_process):
    run_dir = tmp_path / "run"
    command = [*tiny, *RUN, f"data.root={corpus_dir}", f"hydra.run.dir={run_dir}", "num_threads=1"]
    stopped = subprocess.run([sys.executable, str(root / "tests" / "scripts" / "signal_at.py"), "3", "SIGTERM",
                              *command], cwd=root, capture_output=True, text=True, timeout=600)
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    line = [line for line in stopped.stderr.splitlines() if line.strip()][-1]
    given = " ".join(shlex.quote(item) for item in command if not item.startswith("hydra.run.dir="))
    assert line == (f"stopped by SIGTERM after iteration 3: saved {last} (iteration 3); resume with python "
                    f"src/train.py {given} hydra.run.dir={run_dir} ckpt_path=last")
    assert iteration_of(last) == 3
    assert (run_dir / "train.log").read_text().count("stopped by SIGTERM after iteration 3") == 1
    # once on the terminal (stdout and stderr together), and Lightning's weights_only line not beside it
    assert (stopped.stdout + stopped.stderr).count("stopped by SIGTERM") == 1
    assert "weights_only" not in stopped.stdout + stopped.stderr
    assert re.search(r"\] - seed \d+: torch, numpy, Python and the data loader workers seeded\n",
                     (run_dir / "train.log").read_text())
    assert "Seed set" not in stopped.stderr  # Lightning's line, said before any refusal, is ours after the checks
    assert not (run_dir / "metrics.json").exists()
    printed = shlex.split(line.split("resume with ", 1)[1])  # the run's own command, its folder, ckpt_path=last
    assert printed == ["python", "src/train.py", *[item for item in command if not item.startswith("hydra.run.dir=")],
                       f"hydra.run.dir={run_dir}", "ckpt_path=last"]
    # the same command again (what a requeued cluster job runs): resumes from its folder, finishes
    rerun = run_in_process("train.py", *command, "hydra.job.name=train")  # in-process: the log's name as a script's
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "holds this run's last.ckpt (iteration 3, the same settings): resuming from it" in \
        (run_dir / "train.log").read_text()
    assert iteration_of(last) == 6 and json.loads((run_dir / "metrics.json").read_text())["iterations"] == 6


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2])
def test_each_stop_signal_exits_128_plus_its_number(run_in_process, monkeypatch, recwarn, tmp_path, tiny, corpus_dir,
                                                    signum):
    """Also where an earlier sweep in the same process ended without Hydra's on_multirun_end (a failed
    one): this single run's stop line says nothing of that sweep, and its callbacks raise nothing."""
    from avrnn.training.sweeps import SweepLedger

    monkeypatch.setattr(SweepLedger, "active", True)
    monkeypatch.setattr(SweepLedger, "running", "job 3 (an earlier sweep's)")
    send_after(monkeypatch, "training_step", signum, when=lambda module: module.iteration == 2)
    result = run_in_process("train.py", *tiny, *RUN, f"data.root={corpus_dir}", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 128 + signum
    assert result.last_line.startswith(f"stopped by {signal.Signals(signum).name} after iteration 2: saved ")
    assert "sweep" not in result.last_line
    assert not [str(w.message) for w in recwarn if "Callback" in str(w.message)]
    assert iteration_of(tmp_path / "run" / "checkpoints" / "last.ckpt") == 2
    assert signal.getsignal(signum) is not None and signal.getsignal(signum) != signal.SIG_IGN  # handlers put back


def test_a_handler_installed_before_the_run_is_called_after_the_checkpoint_is_saved(make_cfg, tmp_path, monkeypatch):
    """submitit's SIGUSR2 handler (checkpoint and requeue) must find the work on disk."""
    seen = []
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: seen.append(iteration_of(last)))
    try:
        send_after(monkeypatch, "training_step", signal.SIGUSR2, when=lambda module: module.iteration == 2)
        with pytest.raises(RunStopped):
            train(make_cfg(*RUN))
        assert seen == [2]
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_a_signal_before_the_first_iteration_saves_nothing_and_keeps_what_is_there(make_cfg, tmp_path, monkeypatch):
    from avrnn.data.datamodule import SpeechDataModule

    original = SpeechDataModule.setup
    monkeypatch.setattr(SpeechDataModule, "setup", lambda self, stage=None: (original(self, stage),
                                                                             os.kill(os.getpid(), signal.SIGTERM)))
    with pytest.raises(RunStopped, match="before its first iteration .while reading the corpus.: nothing was trained"):
        train(make_cfg(*RUN))
    assert not (tmp_path / "run" / "checkpoints").exists()
    monkeypatch.undo()
    # during the untrained model's validation (validate_before_training)
    send_after(monkeypatch, "validation_step")
    with pytest.raises(RunStopped) as stopped:
        train(make_cfg(*RUN, "training.validate_before_training=true"))
    assert "before its first iteration (during a validation): nothing new was trained, nothing saved" in \
        stopped.value.message
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_signal_during_the_final_test_keeps_training_and_writes_no_metrics(make_cfg, tmp_path, monkeypatch, caplog):
    send_after(monkeypatch, "test_step")
    with pytest.raises(RunStopped, match=r"during the final test: training finished \(6 iterations\) .*metrics.json was "
                                         r"not written; score it with python src/evaluate.py"):
        train(make_cfg(*RUN))
    assert iteration_of(tmp_path / "run" / "checkpoints" / "last.ckpt") == 6
    assert not (tmp_path / "run" / "metrics.json").exists()
    # rerun in the folder (a requeued job): trains nothing more, runs the test, writes metrics.json
    monkeypatch.undo()
    metrics = train(make_cfg(*RUN))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["iterations"] == 6
    assert "test/elbo_per_timestep" in metrics
    before = (tmp_path / "run" / "metrics.json").read_bytes()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert train(make_cfg(*RUN))["iterations"] == 6  # finished: nothing to do, its metrics
    assert (tmp_path / "run" / "metrics.json").read_bytes() == before
    said = [message for message in caplog.messages if str(tmp_path / "run") in message]
    assert said == [f"{tmp_path / 'run'} holds this run, finished (6 iterations, metrics.json): nothing to do"]  # not
    # also "resuming from it" (a fresh-user trial read the two as a contradiction)


def test_a_folder_holding_another_runs_checkpoint_is_refused_untouched(make_cfg, tmp_path):
    train(make_cfg(*RUN[:2], "training.max_iterations=2", "training.test_after_training=false"))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    before = {path.name: path.read_bytes() for path in last.parent.iterdir()}
    with pytest.raises(ConfigError, match=r"already holds another run \(last.ckpt at iteration 2\) whose settings differ:"
                                          r" seed=7 \(it has 1234\); resume it with ckpt_path=last and seed=1234 in place "
                                          r"of yours \(seed cannot change mid-run\), or give this run another folder "
                                          r"\(hydra.run.dir=...\)"):
        train(make_cfg(*RUN[:2], "training.max_iterations=2", "training.test_after_training=false", "seed=7"))
    with pytest.raises(ConfigError, match=r"whose settings differ: model.optimizer.lr=1e-05 \(it has 0.0003\); resume it "
                                          r"with ckpt_path=last \(the changed settings are applied from its iteration "
                                          r"on\), or give this run another folder \(hydra.run.dir=...\)$"):
        train(make_cfg(*RUN[:2], "training.max_iterations=2", "training.test_after_training=false",
                       "model.optimizer.lr=1e-5"))
    assert {path.name: path.read_bytes() for path in last.parent.iterdir()} == before


def test_a_stopped_sweep_exits_non_zero_and_says_which_jobs_finished(run_in_process, monkeypatch, tmp_path, tiny,
                                                                    corpus_dir):
    jobs = []
    original = AVRNNModule.on_fit_start
    monkeypatch.setattr(AVRNNModule, "on_fit_start", lambda self: (jobs.append(self), original(self)))
    send_after(monkeypatch, "training_step", when=lambda module: len(jobs) == 2 and module.iteration == 1)
    sweep = tmp_path / "sweep"
    result = run_in_process("train.py", "-m", "seed=1,2,3", *tiny, *RUN[:2], "training.max_iterations=2",
                            f"data.root={corpus_dir}", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 143
    line = result.last_line
    assert line.startswith("stopped by SIGTERM after iteration 1: saved ")
    assert re.search(rf"\[sweep stopped: finished: job 0 \({sweep}/0_\S+_seed1\); stopped: job 1 \({sweep}/1_\S+_seed2\); "
                     rf"not started: 1 of 3 jobs; to go on, run the same command with hydra.sweep.dir={sweep} "
                     r"\(finished jobs are skipped, the stopped one resumes\)\]$", line), line
    assert len(jobs) == 2 and not list(sweep.glob("2_*"))
    # going on: job 0 is skipped (finished), job 1 resumes, job 2 runs
    jobs.clear()
    monkeypatch.undo()
    result = run_in_process("train.py", "-m", "seed=1,2,3", *tiny, *RUN[:2], "training.max_iterations=2",
                            f"data.root={corpus_dir}", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert [iteration_of(path) for path in sorted(sweep.glob("*/checkpoints/last.ckpt"))] == [2, 2, 2]
    assert len(list(sweep.glob("*/metrics.json"))) == 3


def test_a_sweep_stopped_after_a_failed_job_says_it_stopped_and_names_the_failure(run_in_process, monkeypatch,
                                                                                  tmp_path, tiny, corpus_dir):
    send_after(monkeypatch, "training_step")  # job 0 fails before training; job 1 is stopped in its first step
    sweep = tmp_path / "sweep"
    result = run_in_process("train.py", "-m", *tiny, *RUN[:2], "training.max_iterations=0,2", f"data.root={corpus_dir}",
                            f"hydra.sweep.dir={sweep}")
    assert result.returncode == 143
    (failed,) = [path for path in sweep.iterdir() if path.name.startswith("0_")]
    assert result.last_line.startswith("stopped by SIGTERM after iteration 1: saved "), result.last_line
    assert re.search(rf"\[the sweep had 1 failed job: job 0 \({re.escape(str(failed))}\): ConfigError: training.max_iterations must be "
                     r"positive, got 0\]$",
                     result.last_line), result.last_line


def test_stop_signals_put_the_earlier_handlers_back():
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    signals = StopSignals().install()
    assert signal.getsignal(signal.SIGTERM) == signals._handler
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGINT)
    assert signals.received == signal.SIGTERM  # the first one counts
    signals.restore()
    assert {signum: signal.getsignal(signum) for signum in before} == before


def test_under_slurm_lightnings_own_requeue_is_off_and_submitit_requeues(monkeypatch, compose_config):
    from lightning_fabric.plugins.environments import SLURMEnvironment

    from avrnn.training.fit import cluster_plugins

    assert cluster_plugins() == [] or not SLURMEnvironment.detect()
    monkeypatch.setenv("SLURM_NTASKS", "1")
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    [plugin] = cluster_plugins()
    assert isinstance(plugin, SLURMEnvironment) and plugin.auto_requeue is False
    cfg = compose_config("config", "hydra/launcher=slurm", return_hydra_config=True)
    assert cfg.hydra.launcher.max_num_timeout > 0 and cfg.hydra.launcher.signal_delay_s >= 60


def test_the_warning_signals_earlier_handler_runs_first_and_a_repeated_signal_ends_the_process():
    calls = []
    earlier = {signum: signal.signal(signum, lambda n, frame: calls.append(n))
               for signum in (signal.SIGTERM, signal.SIGUSR2)}
    try:
        signals = StopSignals().install()
        os.kill(os.getpid(), signal.SIGTERM)  # SLURM's SIGTERM may come before submitit's SIGUSR2 is handled
        os.kill(os.getpid(), signal.SIGUSR2)
        assert signals.received == signal.SIGTERM and calls == []
        signals.chain_previous()
        assert calls == [signal.SIGUSR2, signal.SIGTERM]  # the requeue is never hidden
        calls.clear()
        os.kill(os.getpid(), signal.SIGUSR2)  # the same signal again: the earlier handler takes it, at once
        assert calls == [signal.SIGUSR2] and signal.getsignal(signal.SIGUSR2) is not signals._handler
    finally:
        for signum, handler in earlier.items():
            signal.signal(signum, handler)


def test_the_resume_command_repeats_the_runs_own_overrides_quoted(monkeypatch):
    from hydra.core.hydra_config import HydraConfig

    from avrnn.training.stops import resume_command
    overrides = ["model=vrnn", "data.split_lists={train: a.txt, val: b.txt}", "hydra.run.dir=old", "ckpt_path=x"]
    assert resume_command(Path("logs/r"), overrides) == (
        "python src/train.py model=vrnn 'data.split_lists={train: a.txt, val: b.txt}' hydra.run.dir=logs/r "
        "ckpt_path=last")
    assert resume_command(Path("logs/r"), []) == "python src/train.py hydra.run.dir=logs/r ckpt_path=last"
    # outside a Hydra run (an earlier in-process run in this worker may have left Hydra's record behind)
    monkeypatch.setattr(HydraConfig, "initialized", staticmethod(lambda: False))
    assert resume_command(Path("logs/r")) == ("python src/train.py <the same overrides> hydra.run.dir=logs/r "
                                             "ckpt_path=last")  # outside a Hydra run
