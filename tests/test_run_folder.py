"""One run per folder (avrnn.training.run_folder): a fresh run never mixes its outputs with another run's."""

import pytest

from avrnn.config import ConfigError
from avrnn.training import run_folder
from avrnn.training.fit import train
from avrnn.training.resume import run_differences


def snapshot(folder):
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_the_readmes_second_run_in_the_same_folder_is_refused_and_touches_nothing(run_in_process, tmp_path,
                                                                                   corpus_dir, tiny, root):
    """The input of the field report: hydra.run.dir=logs/mine twice, another seed and learning rate, no
    ckpt_path; here with the first run's last.ckpt removed (so that no resume can be offered) and with it."""
    run = tmp_path / "mine"
    common = [*tiny, f"data.root={corpus_dir}", f"hydra.run.dir={run}"]
    assert run_in_process("train.py", *common).returncode == 0
    (run / "checkpoints" / "last.ckpt").unlink()
    before = snapshot(run)
    second = run_in_process("train.py", *common, "seed=7", "model.optimizer.lr=0.001")
    assert second.returncode == 2
    best = sorted((run / "checkpoints").glob("best-*.ckpt"))[0]
    assert second.last_line == (
        f"error: {run} already holds the outputs of another run (its settings differ: model.optimizer.lr=0.001 (it "
        f"has 0.0003), seed=7 (it has 1234)): {best.name}, metrics.json and 4 TensorBoard event files; a new run there "
        f"would mix its logs and checkpoints with them; give this run another folder (hydra.run.dir=...), or resume "
        f"from one of its checkpoints (ckpt_path={best}; it has no last.ckpt, so ckpt_path=last cannot)")
    after = snapshot(run)
    (log_name,) = [name for name in after if name.endswith(".log")]  # train.log (in-process: the module's name)
    earlier_log, log = before.pop(log_name).decode(), after.pop(log_name).decode()
    assert log.startswith(earlier_log)  # the job's log records the attempt too, after the earlier run's lines,
    attempt = log[len(earlier_log):].splitlines()  # from its command, so that its error is not read as theirs
    train_py = root / "src" / "train.py"
    assert attempt[0].endswith(f"[avrnn][INFO] - command: python {train_py} {' '.join(common)} seed=7 "
                               "model.optimizer.lr=0.001")
    assert attempt[-1].endswith(f"[avrnn][ERROR] - {second.last_line}")
    assert earlier_log.splitlines()[0].endswith(f"[avrnn][INFO] - command: python {train_py} {' '.join(common)}")
    assert after == before and ".hydra/config.yaml" in after  # Hydra's overwritten .hydra/ files put back


def test_only_rank_zero_of_a_run_slurm_starts_writes_the_folders_hydra_files(run_in_process, tmp_path, monkeypatch,
                                                                             corpus_dir, tiny):
    """srun starts each task of a DDP run as a whole command, each a Hydra run in the same folder. A task > 0
    that wrote .hydra/ could do so before rank 0 kept the folder's earlier files, which a refusal then could not
    put back; only rank 0 writes them (and puts them back)."""
    from lightning_fabric.utilities.rank_zero import rank_zero_only

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    earlier = {name: f"earlier: {name}\n".encode() for name in ("config.yaml", "hydra.yaml", "overrides.yaml")}
    for name, content in earlier.items():
        (run / ".hydra" / name).write_bytes(content)
    stamps = {path.name: path.stat().st_mtime_ns for path in (run / ".hydra").iterdir()}
    refused = [*tiny, f"data.root={corpus_dir}", f"hydra.run.dir={run}", "model=vrnn", "critic=wgan"]
    monkeypatch.setattr(rank_zero_only, "rank", 1)  # as lightning_fabric reads it from SLURM_PROCID at import
    result = run_in_process("train.py", *refused)
    assert result.returncode == 2 and result.last_line.startswith("error: model=vrnn is the KL-only ELBO baseline")
    assert {path.name: path.stat().st_mtime_ns for path in (run / ".hydra").iterdir()} == stamps  # not written at all
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    assert run_in_process("train.py", *refused).returncode == 2
    assert {path.name: path.read_bytes() for path in (run / ".hydra").iterdir()} == earlier  # rank 0 put them back


def test_a_slurm_task_other_than_the_first_still_reads_the_earlier_config_it_kept(tmp_path, monkeypatch):
    """It writes no .hydra/ files (output_subdir set to null), but decides as rank 0 does (run_folder:
    the tasks must all refuse or none), from the copy it kept, under whatever output_subdir it was."""
    from lightning_fabric.utilities.rank_zero import rank_zero_only
    from omegaconf import OmegaConf

    from avrnn.training.resume import KeepEarlierRunConfig, earlier_file

    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "config.yaml").write_text("seed: 7\n")
    config = OmegaConf.create({"hydra": {"output_subdir": "meta", "run": {"dir": str(tmp_path)}}})
    OmegaConf.set_readonly(config, True)  # as Hydra hands it over
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    KeepEarlierRunConfig().on_run_start(config)
    assert config.hydra.output_subdir is None
    assert earlier_file(tmp_path) == b"seed: 7\n" and earlier_file(tmp_path / "other") is None


def make_outputs(folder, checkpoints=(), events=0, metrics=False):
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "tensorboard").mkdir()
    for name in checkpoints:
        (folder / "checkpoints" / name).write_bytes(b"weights")
    for number in range(events):
        (folder / "tensorboard" / f"events.out.tfevents.1.host.{number}").write_bytes(b"event %d" % number)
    (folder / "tensorboard" / "hparams.yaml").write_text("model: {}\n")
    if metrics:
        (folder / "metrics.json").write_text("{}")


SETTINGS = {"seed": 1, "model": {"z_dim": 4}, "paths": {"output_dir": "a"}}


def test_an_earlier_attempt_of_the_same_run_that_saved_no_checkpoint_is_set_aside(tmp_path, caplog):
    make_outputs(tmp_path, events=2)
    moved = {path.name: path.read_bytes() for path in (tmp_path / "tensorboard").glob("events.*")}
    same_but_folder = {**SETTINGS, "paths": {"output_dir": "b"}}  # how it runs: not which run
    with caplog.at_level("WARNING", logger="avrnn.training"):
        run_folder.check_fresh_start(tmp_path, SETTINGS, same_but_folder, run_differences)
    attempt = tmp_path / "tensorboard" / "attempt-1"
    assert {path.name: path.read_bytes() for path in attempt.iterdir()} == moved
    assert not list((tmp_path / "tensorboard").glob("events.*"))
    assert (tmp_path / "tensorboard" / "hparams.yaml").is_file()
    assert f"its logs are moved to {attempt}" in caplog.text
    make_outputs_again = tmp_path / "tensorboard" / "events.out.tfevents.2.host.0"
    make_outputs_again.write_bytes(b"second attempt")
    run_folder.check_fresh_start(tmp_path, SETTINGS, SETTINGS, run_differences)
    assert (tmp_path / "tensorboard" / "attempt-2" / make_outputs_again.name).read_bytes() == b"second attempt"


@pytest.mark.parametrize("outputs, earlier, words", [
    (dict(events=2), None, "the outputs of another run: 2 TensorBoard event files; "),
    (dict(events=1), {**SETTINGS, "seed": 2}, "the outputs of another run (its settings differ: seed=1 (it has 2)): "
                                              "1 TensorBoard event file; "),
    (dict(checkpoints=["best-iter000004.ckpt"]), SETTINGS,
     "the outputs of a run of these settings without a last.ckpt to resume from: best-iter000004.ckpt; "),
    (dict(metrics=True, events=3), SETTINGS, "without a last.ckpt to resume from: metrics.json and 3 TensorBoard "),
    (dict(checkpoints=[f"best-iter00000{n}.ckpt" for n in range(5)]), None,
     ": best-iter000000.ckpt, best-iter000001.ckpt, best-iter000002.ckpt and 2 more checkpoints; "),
    (dict(checkpoints=[f"best-iter00000{n}.ckpt" for n in range(4)]), None,
     ": best-iter000000.ckpt, best-iter000001.ckpt, best-iter000002.ckpt and 1 more checkpoint; "),
])
def test_a_folder_with_another_runs_outputs_is_refused_untouched(tmp_path, outputs, earlier, words):
    make_outputs(tmp_path, **outputs)
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError) as refused:
        run_folder.check_fresh_start(tmp_path, SETTINGS, earlier, run_differences)
    assert str(refused.value).startswith(f"{tmp_path} already holds the outputs of ")
    assert words in str(refused.value)
    assert "give this run another folder (hydra.run.dir=...)" in str(refused.value)
    assert ("ckpt_path=" in str(refused.value)) == bool(outputs.get("checkpoints"))
    assert snapshot(tmp_path) == before


def test_an_empty_or_new_folder_is_no_other_run(tmp_path):
    run_folder.check_fresh_start(tmp_path / "new", SETTINGS, None, run_differences)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "train.log").write_text("Hydra's log of an attempt that failed before training\n")
    run_folder.check_fresh_start(tmp_path, SETTINGS, None, run_differences)


def test_every_process_decides_alike_and_only_rank_zero_moves_files(tmp_path, monkeypatch):
    """Under DDP a refusal on rank 0 alone would leave the other ranks waiting for it: all refuse alike."""
    from lightning_fabric.utilities.rank_zero import rank_zero_only

    make_outputs(tmp_path, events=1)
    for rank in (1, 0):
        monkeypatch.setattr(rank_zero_only, "rank", rank)
        with pytest.raises(ConfigError, match="already holds the outputs of another run: 1 TensorBoard event file; "):
            run_folder.check_fresh_start(tmp_path, SETTINGS, None, run_differences)
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    run_folder.check_fresh_start(tmp_path, SETTINGS, SETTINGS, run_differences)  # an earlier attempt of this run
    assert len(list((tmp_path / "tensorboard").glob("events.*"))) == 1 and not list(tmp_path.rglob("attempt-*"))
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    run_folder.check_fresh_start(tmp_path, SETTINGS, SETTINGS, run_differences)
    assert not list((tmp_path / "tensorboard").glob("events.*"))
    assert len(list((tmp_path / "tensorboard" / "attempt-1").glob("events.*"))) == 1


def test_from_python_a_folder_whose_run_lost_its_last_checkpoint_is_refused(make_cfg, tmp_path):
    train(make_cfg("training.test_after_training=false"))
    (tmp_path / "run" / "checkpoints" / "last.ckpt").unlink()
    before = snapshot(tmp_path / "run")
    with pytest.raises(ConfigError, match=r"already holds the outputs of another run \(its settings differ: seed=5 "
                                          r"\(it has 1234\)\): best-iter000003.ckpt and 2 TensorBoard event files; "):
        train(make_cfg("training.test_after_training=false", "seed=5"))
    assert snapshot(tmp_path / "run") == before


def test_a_sweep_job_stopped_in_its_first_validation_starts_over_when_the_sweep_runs_again(run_in_process, monkeypatch,
                                                                                          tmp_path, tiny, corpus_dir):
    """A multirun job (Hydra rewrites its .hydra/ before the job starts, so only the run's own record of its
    settings says who wrote the event files) stopped before any checkpoint: the same command runs it again."""
    import os
    import signal

    from avrnn.training.module import AVRNNModule

    original, sent = AVRNNModule.validation_step, []

    def stopping(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if not sent:
            sent.append(os.kill(os.getpid(), signal.SIGTERM))
        return out

    monkeypatch.setattr(AVRNNModule, "validation_step", stopping)
    sweep = tmp_path / "sweep"
    command = ["train.py", "-m", "seed=1", *tiny, "training.iterations_per_epoch=2", "training.max_iterations=2",
               "training.test_after_training=false", f"data.root={corpus_dir}", f"hydra.sweep.dir={sweep}"]
    assert run_in_process(*command).returncode == 143
    (job,) = sweep.glob("0_*")
    events = {path.name: path.read_bytes() for path in (job / "tensorboard").glob("events.*")}
    assert events and not list(job.glob("checkpoints/*.ckpt"))
    monkeypatch.setattr(AVRNNModule, "validation_step", original)
    again = run_in_process(*command)
    assert again.returncode == 0, again.stderr[-2000:]
    moved = job / "tensorboard" / "attempt-1"
    assert {path.name: path.read_bytes() for path in moved.glob("events.*")} == events
    assert (moved / "run_settings.yaml").is_file() and (job / "checkpoints" / "last.ckpt").is_file()
    # a different job in that folder (another seed) is still refused, in multirun too
    (job / "checkpoints" / "last.ckpt").unlink()
    configs = {path.name: path.read_bytes() for path in (job / ".hydra").glob("*.yaml")}
    other = run_in_process(*command[:2], f'hydra.sweep.subdir="{job.name}"', "seed=2", *command[3:])
    assert other.returncode == 2
    assert {path.name: path.read_bytes() for path in (job / ".hydra").glob("*.yaml")} == configs  # put back
    assert len(configs) == 3
    assert ("already holds the outputs of another run (its settings differ: seed=2 (it has 1)): best-iter000002.ckpt "
            "and 2 TensorBoard event files; a new run there would mix its logs and checkpoints with them; give this "
            "run another folder (hydra.sweep.dir=...)") in other.last_line, other.last_line


def test_a_line_for_the_run_log_reaches_it_through_a_linked_folder(tmp_path):
    """write_to_log_files (a stop's line, an error's) finds the run's log when the folder is named through a
    symbolic link (logs/ linked to a scratch disk), whichever side names it so."""
    import logging

    real = tmp_path / "scratch" / "run"
    real.mkdir(parents=True)
    (tmp_path / "logs").symlink_to(tmp_path / "scratch")
    for handler_folder, given in ((tmp_path / "logs" / "run", real), (real, tmp_path / "logs" / "run")):
        handler = logging.FileHandler(handler_folder / "train.log")
        logging.getLogger().addHandler(handler)
        try:
            run_folder.write_to_log_files(f"stopped by SIGTERM (given {given.name})", given, logging.WARNING)
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()
    assert (real / "train.log").read_text().count("stopped by SIGTERM") == 2
