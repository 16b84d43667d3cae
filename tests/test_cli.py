"""The entry point as users call it: python src/train.py ...

One true subprocess test (a one-line error and its exit status; tests/test_stops.py has the stop
signal's); the rest go through the same entry point in-process (avrnn.cli.run around train.py's main),
which the test below holds to the subprocess.
"""

import json
import os
import sys

import pytest


def job_log(folder) -> str:
    """The text of a run folder's log (train.log; in-process the entry point's module names it)."""
    (log_file,) = folder.glob("*.log")
    return log_file.read_text()


def test_cfg_job_resolve_prints_the_resolved_config(run_in_process):
    result = run_in_process("train.py", "model=vrnn", "--cfg", "job", "--resolve")
    assert result.returncode == 0, result.stderr
    assert "name: vrnn" in result.stdout and "input_size: 200" in result.stdout and "${" not in result.stdout


def test_bad_combination_prints_one_line_and_exits_2(run_script, tmp_path):
    result = run_script("train.py", "model=vrnn", "critic=wgan", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: model=vrnn is the KL-only ELBO baseline") and "Traceback" not in result.stderr
    assert "Seed set" not in result.stderr  # Lightning's seeding line, before the refusal, only added noise
    assert (tmp_path / "train.log").read_text().splitlines()[-1].endswith(f"[avrnn][ERROR] - {lines[-1]}")


def test_bad_combination_in_process_gives_the_same_line(run_in_process, tmp_path):
    """The in-process runner is held to the subprocess above, so the error tests below can use it."""
    result = run_in_process("train.py", "model=vrnn", "critic=wgan", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.last_line.startswith("error: model=vrnn is the KL-only ELBO baseline")


def test_multirun_sweep_writes_one_folder_per_run(run_in_process, tmp_path, corpus_dir, tiny):
    sweep = tmp_path / "multirun"
    result = run_in_process("train.py", "-m", "critic=wgan,gan", "latent=z16,z64", *tiny,
                        f"data.root={corpus_dir}", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(runs) == 4
    assert [run.split("_")[0] for run in runs] == ["0", "1", "2", "3"]  # job number first
    assert all(run.endswith("_seed1234") and len(run) < 130 for run in runs)  # seed last, names stay short
    combos = set()
    for run in runs:
        assert list((sweep / run / "tensorboard").glob("events.out.tfevents.*")), run
        overrides = (sweep / run / ".hydra" / "overrides.yaml").read_text()
        combos.add(tuple(word for word in ("critic=wgan", "critic=gan", "latent=z16", "latent=z64") if word in overrides))
    assert combos == {("critic=wgan", "latent=z16"), ("critic=wgan", "latent=z64"),
                      ("critic=gan", "latent=z16"), ("critic=gan", "latent=z64")}


def test_missing_or_wrong_data_root_is_one_line(run_in_process, tmp_path):
    result = run_in_process("train.py", "data=timit", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.last_line == "error: data=timit needs its location: add data.root=/path/to/your/corpus"
    result = run_in_process("train.py", "data=timit", f"data.root={tmp_path / 'nowhere'}", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.last_line.startswith(f"error: data.root {tmp_path / 'nowhere'} does not exist")
    # the folder the refused run left says why (the line on stderr, at the end of its train.log)
    assert job_log(tmp_path).splitlines()[-1].endswith(f"[avrnn][ERROR] - {result.last_line}")


def test_a_data_root_that_does_not_exist_without_a_data_config_is_refused(run_in_process, tmp_path, tiny):
    """The fresh-user report: `train.py data.root=/mistyped/path` generated the synthetic corpus there and
    trained on it (exit 0). Refused in one line; data=synthetic given explicitly still generates it there."""
    nowhere = tmp_path / "my-corpus"
    result = run_in_process("train.py", *tiny, f"data.root={nowhere}", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2
    assert result.last_line == (f"error: data.root={nowhere} does not exist, and without a data config the default "
                                "data=synthetic would generate its built-in corpus there: for your own audio add "
                                "data=audio_dir (any folder of audio) or data=timit and check the path; to generate "
                                "the built-in corpus there, add data=synthetic")
    assert not nowhere.exists()
    chosen = run_in_process("train.py", "data=synthetic", *tiny, f"data.root={nowhere}", "training.max_iterations=1",
                            f"hydra.run.dir={tmp_path / 'chosen'}")
    assert chosen.returncode == 0, chosen.stderr[-2000:]
    assert (nowhere / "TRAIN").is_dir()


def test_a_ddp_task_other_than_the_first_leaves_the_shared_log_to_rank_zero(run_in_process, tmp_path, monkeypatch):
    from lightning_fabric.utilities.rank_zero import rank_zero_only

    monkeypatch.setattr(rank_zero_only, "rank", 1)  # as read from SLURM_PROCID, LOCAL_RANK
    result = run_in_process("train.py", "model=vrnn", "critic=wgan", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2 and result.last_line.startswith("error: model=vrnn is the KL-only ELBO baseline")
    assert "[ERROR]" not in job_log(tmp_path)  # rank 0 writes the one line


def test_a_failed_evaluation_or_generation_says_why_in_its_log(run_in_process, tmp_path):
    for script in ("evaluate.py", "generate.py"):
        folder = tmp_path / script
        result = run_in_process(script, f"ckpt_path={tmp_path / 'absent.ckpt'}", f"hydra.run.dir={folder}")
        assert result.returncode == 2 and result.last_line.startswith("error: "), result.stderr
        assert job_log(folder).splitlines()[-1].endswith(f"[avrnn][ERROR] - {result.last_line}")


def test_a_run_folder_given_as_the_checkpoint_names_a_checkpoint_in_it(run_in_process, tmp_path):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    for name in ("best-iter000002.ckpt", "last.ckpt"):
        (tmp_path / "run" / "checkpoints" / name).write_bytes(b"")
    result = run_in_process("evaluate.py", f"ckpt_path={tmp_path / 'run'}", f"hydra.run.dir={tmp_path / 'eval'}")
    assert result.returncode == 2
    assert result.last_line == (f"error: ckpt_path={tmp_path / 'run'} is a folder, not a checkpoint file; give one of "
                                f"its checkpoints, e.g. ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}")
    (tmp_path / "empty").mkdir()
    result = run_in_process("evaluate.py", f"ckpt_path={tmp_path / 'empty'}", f"hydra.run.dir={tmp_path / 'eval2'}")
    assert result.last_line.endswith("it holds no *.ckpt (a run's checkpoints are in <run folder>/checkpoints/)")


@pytest.mark.parametrize("script", ["evaluate.py", "generate.py"])
def test_a_missing_checkpoint_setting_says_what_to_add(run_in_process, tmp_path, script):
    """It read "Missing mandatory value: ckpt_path", with no example of what to give."""
    result = run_in_process(script, f"hydra.run.dir={tmp_path / 'out'}")
    assert result.returncode == 2
    assert result.last_line == ("error: ckpt_path has no value and needs one: add ckpt_path=logs/runs/<date>/<time>/"
                                "checkpoints/best-iterNNNNNN.ckpt (or last.ckpt: a checkpoint a training run saved)")


@pytest.mark.parametrize("config, read", [({"hydra": {"job": {"num": "???"}}}, lambda c: c.hydra.job.num),
                                          ({"widths": ["???"]}, lambda c: c.widths[0])])
def test_an_empty_setting_no_one_gives_on_a_command_line_gets_no_made_up_fix(config, read):
    """Hydra's own keys and list items are not `key=value` settings: no "add hydra.job.num=<value>"."""
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue

    from avrnn.cli import outcome

    with pytest.raises(MissingMandatoryValue) as caught:
        read(OmegaConf.create(config))
    line, code = outcome(caught.value)
    assert "needs one: add" not in line and "Missing mandatory value" in line and code == 2


def test_a_job_run_by_a_launchers_worker_logs_the_command_the_user_typed(tmp_path, monkeypatch):
    """submitit (hydra/launcher=slurm) runs each job in a worker whose sys.argv is its own; the callback, built
    where the user typed the command, travels to it pickled."""
    import logging
    import pickle
    from types import SimpleNamespace

    from hydra.types import RunMode

    from avrnn.cli import AttemptInJobLog

    monkeypatch.setattr(sys, "argv", ["src/train.py", "-m", "data.root=/a b", "seed=1,2"])
    callback = pickle.dumps(AttemptInJobLog())
    monkeypatch.setattr(sys, "argv", ["/venv/submitit/core/_submit.py", "/logs/.submitit/%j"])  # the worker's
    handler = logging.FileHandler(tmp_path / "train.log")
    handler.setFormatter(logging.Formatter("%(message)s"))
    monkeypatch.setattr(logging.getLogger(), "handlers", [handler])
    for num, overrides in ((1, ["data.root=/a b", "seed=2"]), (2, [])):
        config = SimpleNamespace(hydra=SimpleNamespace(
            mode=RunMode.MULTIRUN, runtime=SimpleNamespace(output_dir=str(tmp_path)),
            job=SimpleNamespace(num=num), overrides=SimpleNamespace(task=overrides)))
        pickle.loads(callback).on_job_start(config)
    handler.close()
    assert (tmp_path / "train.log").read_text().splitlines() == [
        "command: python src/train.py -m 'data.root=/a b' seed=1,2 (job 1: 'data.root=/a b' seed=2)",
        "command: python src/train.py -m 'data.root=/a b' seed=1,2 (job 2: no overrides)"]


def test_an_unexpected_error_is_named_in_the_log_beside_its_traceback(tmp_path, monkeypatch):
    """An error without a one-line form keeps its traceback on stderr; the log gets its type and message."""
    import logging
    from types import SimpleNamespace

    from hydra.core.utils import JobStatus
    from hydra.types import RunMode

    from avrnn.cli import AttemptInJobLog

    (tmp_path / "earlier").mkdir()
    handlers = [logging.FileHandler(tmp_path / "train.log"), logging.FileHandler(tmp_path / "earlier" / "train.log")]
    for handler in handlers:
        handler.setFormatter(logging.Formatter("[%(name)s][%(levelname)s] - %(message)s"))  # Hydra's, less the time
    monkeypatch.setattr(logging.getLogger(), "handlers", handlers)  # the second: left by an earlier job's set-up
    config = SimpleNamespace(hydra=SimpleNamespace(mode=RunMode.RUN, runtime=SimpleNamespace(output_dir=str(tmp_path))))
    failed = SimpleNamespace(status=JobStatus.FAILED, _return_value=RuntimeError("shapes do not\nmatch"))
    AttemptInJobLog().on_job_end(config, failed)
    for handler in handlers:
        handler.close()
    assert (tmp_path / "train.log").read_text() == \
        "[avrnn][ERROR] - error: RuntimeError: shapes do not match (its traceback is on stderr)\n"
    assert (tmp_path / "earlier" / "train.log").read_text() == ""  # not another run's log


@pytest.mark.parametrize("override,expected", [
    ("critic=wgn", "error: In 'config': Could not find 'critic/wgn'; Available options in 'critic': gan, none, wgan, "
                   "wgan_gp"),
    # optional groups: Hydra would drop a name it cannot find and train the default model without a word
    ("arm=avrnn_hybird", "error: arm=avrnn_hybird: there is no arm called 'avrnn_hybird' ("),
    ("experiment=dvae_vrnnn", "error: experiment=dvae_vrnnn: there is no experiment called 'dvae_vrnnn' ("),
    ("tuned=vrnn,avrnn_hybird", "error: tuned=avrnn_hybird: there is no tuned called 'avrnn_hybird' ("),
    ("hparams_search=nope", "error: hparams_search=nope: there is no hparams_search called 'nope' ("),
    ("arm=null", "error: arm=null: a config group cannot be set to null; leave arm=... out (by default none is chosen)"),
    ("model.z_dim=abc", "error: Error merging override model.z_dim=abc: Value 'abc' of type 'str' could not be "
                        "converted to Integer"),
    ("model.not_a_key=1", "error: Could not override 'model.not_a_key'.: Key 'not_a_key' not in 'ModelConfig' "
                          "(allowed keys: name, input_size, z_dim,"),
    ("trainer.foo=1", "error: Could not override 'trainer.foo'.: Key 'foo' is not in struct (trainer.* takes "
                      "pytorch_lightning.Trainer arguments only)"),
    ("model.z_dim=-4", "error: model.z_dim must be positive, got -4"),
    ("trainer.gradient_clip_val=0.5", "error: trainer.gradient_clip_val=0.5 is not supported with manual "
                                      "optimization; use training.grad_clip_norm"),
    ("trainer.accumulate_grad_batches=2", "error: trainer.accumulate_grad_batches=2 is not supported with manual "
                                          "optimization; raise data.batch_size instead"),
])
def test_bad_configuration_stops_with_one_line(run_in_process, tmp_path, override, expected):
    result = run_in_process("train.py", override, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.last_line.startswith(expected)
    if "there is no" in expected:  # and it lists the names there are
        assert "; choose one of " in result.last_line


def test_unwritable_output_folder_is_one_line(run_in_process, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = run_in_process("train.py", f"hydra.run.dir={blocker / 'run'}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.last_line.startswith(f"error: Not a directory {blocker / 'run'}; "
                                       "free disk space or choose a writable folder")


@pytest.mark.parametrize("script", ["train.py", "evaluate.py", "generate.py"])
@pytest.mark.parametrize("override,fix", [
    ("data.root=/corpora/k=v", "'data.root=\"/corpora/k=v\"'"),  # an = inside a path
    ("data.root=/corpora/a,b(1)", "'data.root=\"/corpora/a,b(1)\"'"),
])
def test_an_override_hydra_cannot_parse_gets_one_line_with_the_quoted_fix(run_in_process, script, override, fix):
    result = run_in_process(script, "ckpt_path=x.ckpt", override)
    assert result.returncode == 2
    assert result.last_line.startswith(f"error: cannot parse the override '{override}' (")
    assert result.last_line.endswith(f"quote its value for Hydra, inside single quotes for the shell: {fix}")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_one_line_error_in_a_sweep_says_which_job(run_in_process, tmp_path, corpus_dir, tiny, root):
    result = run_in_process("train.py", "-m", "seed=1,2", *tiny, f"data.root={corpus_dir}", "training.max_iterations=0",
                            f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.last_line]  # Hydra's own job line is folded into ours
    line, sweep = result.last_line, tmp_path / "sweep"
    folders = sorted(path for path in sweep.iterdir() if path.name[0].isdigit())
    assert line == ("error: the sweep ended with 2 failed jobs: "  # every failed job, its folder and its reason
                    f"job 0 ({folders[0]}): ConfigError: training.max_iterations must be positive, got 0; "
                    f"job 1 ({folders[1]}): ConfigError: training.max_iterations must be positive, got 0")
    assert folders[0].name.endswith("_seed1") and folders[1].name.endswith("_seed2")
    (log,) = folders[1].glob("*.log")  # the job's log begins with the sweep's command and which job it is
    command = (f"[avrnn][INFO] - command: python {root / 'src' / 'train.py'} -m seed=1,2 {' '.join(tiny)} "
               f"data.root={corpus_dir} training.max_iterations=0 hydra.sweep.dir={sweep} (job 1: seed=2 ")
    first = log.read_text().splitlines()[0]
    assert command in first and first.endswith(")"), first  # the job's overrides as Hydra's sweeper wrote them
    # the same folder, another command: only its own job is named, not the earlier command's
    again = run_in_process("train.py", "-m", "seed=3", *tiny, f"data.root={corpus_dir}", "training.max_iterations=0",
                           f"hydra.sweep.dir={sweep}")
    (third,) = [path for path in sweep.iterdir() if path.name.endswith("_seed3")]
    assert again.last_line == ("error: the sweep ended with 1 failed job: "
                               f"job 0 ({third}): ConfigError: training.max_iterations must be positive, got 0")


def test_the_failed_jobs_line_names_three_and_counts_the_rest(tmp_path):
    from avrnn.training.sweeps import failed_jobs_line

    records = tmp_path / ".jobs"
    records.mkdir()
    for job in range(5):
        (records / f"{job}.json").write_text(json.dumps({"job": job, "folder": f"f{job}", "status": "failed",
                                                         "reason": f"E: {job}", "ended": 100.0 + job}))
        os.utime(records / f"{job}.json", (100.0 + job, 100.0 + job))  # written at 100 + job s
    assert failed_jobs_line(tmp_path) == ("5 failed jobs: job 0 (f0): E: 0; job 1 (f1): E: 1; job 2 (f2): E: 2; and 2 "
                                          f"more (each job's log ends with its reason; records in {records})")
    assert failed_jobs_line(tmp_path, since=103.0) == "2 failed jobs: job 3 (f3): E: 3; job 4 (f4): E: 4"
    assert failed_jobs_line(tmp_path, since=105.0) is None


def test_a_jobs_record_is_timed_by_the_sweep_folders_clock_not_the_nodes(tmp_path):
    """A SLURM node whose clock is behind the submitting machine's: its job's record still counts for the
    command that launched it, and an earlier command's record does not."""
    from avrnn.training.sweeps import command_started, failed_jobs_line

    records = tmp_path / ".jobs"
    records.mkdir()
    earlier = records / "0.json"
    earlier.write_text(json.dumps({"job": 0, "folder": "f0", "status": "failed", "reason": "E: 0", "ended": 1e10}))
    os.utime(earlier, (1000.0, 1000.0))  # written by an earlier command
    since = command_started(tmp_path)
    assert since is not None and since > 1000.0
    (records / "1.json").write_text(json.dumps({"job": 1, "folder": "f1", "status": "failed", "reason": "E: 1",
                                                "ended": 5.0}))  # the node's clock says 1970
    assert failed_jobs_line(tmp_path, since) == "1 failed job: job 1 (f1): E: 1"


@pytest.mark.parametrize("script, settings", [
    ("evaluate.py", ["iwae_k", "fivo_k", "split", "speech_quality", "max_particle_frames", "trusted_targets"]),
    ("generate.py", ["n", "seconds", "reconstructions", "griffin_lim_iterations"])])
def test_the_help_of_a_checkpoint_command_lists_only_the_corpora_it_takes(run_in_process, root, script, settings):
    """Hydra's default help lists every config group (model, critic, arm, ...), none of which a command
    that reads its model from a checkpoint takes; its help names what it does take, each data config,
    and says what its own settings do (above the config, which gives only their values)."""
    import re

    result = run_in_process(script, "--help")
    said = result.stdout.split("== Config ==")[0]
    assert all(re.search(rf"(^|[\s;]){name}[:,]", said) for name in settings), said  # "name:" or "name, other:"
    assert result.returncode == 0
    corpora = ", ".join(sorted(path.stem for path in (root / "conf" / "data").glob("*.yaml")))
    assert f"add data=<one of: {corpora}> data.root=<folder>" in " ".join(result.stdout.split())
    assert "ckpt_path: ???" in result.stdout  # the config, as Hydra's help shows it
    assert "critic:" not in result.stdout and "== Configuration groups ==" not in result.stdout
