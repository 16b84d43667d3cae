"""Runs without a terminal (SLURM, nohup, `make train > run.log`) write progress lines at a fixed pace
and one line per validation; with a terminal the bar stays."""

import logging
from types import SimpleNamespace

import pytest
import torch

from pytorch_lightning.trainer.states import TrainerFn

from avrnn.training.fit import progress_display, train
from avrnn.training.progress_lines import ProgressLines, duration


class FakeClock:
    """Advances `step` seconds at every reading."""

    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def lines(caplog, prefix: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "avrnn.training" and r.getMessage().startswith(prefix)]


def stub_run(max_iterations=12, best=None):
    metrics = {"train/elbo_per_timestep": torch.tensor(-1.5), "train/rec_per_timestep": torch.tensor(1.25),
               "train/kl_per_timestep": torch.tensor(0.25)}
    trainer = SimpleNamespace(is_global_zero=True, sanity_checking=False, callback_metrics=metrics,
                              checkpoint_callback=SimpleNamespace(best_model_score=best),
                              state=SimpleNamespace(fn=TrainerFn.FITTING))
    module = SimpleNamespace(iteration=0, hparams=SimpleNamespace(training={"max_iterations": max_iterations}))
    return trainer, module


def test_progress_lines_come_at_the_set_pace_with_rate_eta_and_the_training_bounds(caplog):
    caplog.set_level(logging.INFO, logger="avrnn.training")
    trainer, module = stub_run(max_iterations=12)
    callback = ProgressLines(25, clock=FakeClock(10))  # 10 s per iteration, a line at most every 25 s
    callback.on_train_start(trainer, module)  # t = 10
    for _ in range(12):
        module.iteration += 1
        callback.on_train_batch_end(trainer, module, None, None, 0)
    assert lines(caplog, "training:") == ["training: from iteration 0 to 12; a progress line every 25s "
                                          "(training.log_every_seconds)"]
    # readings at t = 20, 30, ...: a line where 30 s have passed since the last one (iterations 3, 6, 9, 12)
    assert lines(caplog, "progress:") == [
        f"progress: iteration {i}/12 ({i / 12:.0%}), 0.1 it/s, ETA {eta}; last batch: ELBO -1.500, rec 1.250, KL 0.250 "
        "nats/timestep" for i, eta in ((3, "1m30s"), (6, "1m00s"), (9, "30s"), (12, "0s"))]


def test_a_resumed_run_measures_its_rate_from_where_it_resumed(caplog):
    caplog.set_level(logging.INFO, logger="avrnn.training")
    trainer, module = stub_run(max_iterations=1000)
    module.iteration = 900
    callback = ProgressLines(5, clock=FakeClock(10))
    callback.on_train_start(trainer, module)
    module.iteration += 2
    callback.on_train_batch_end(trainer, module, None, None, 0)
    (line,) = lines(caplog, "progress:")
    assert line.startswith("progress: iteration 902/1000 (90%), 0.2 it/s, ETA 8m10s;")


@pytest.mark.parametrize("rank_zero", [True, False])
def test_only_rank_zero_writes(caplog, rank_zero):
    caplog.set_level(logging.INFO, logger="avrnn.training")
    trainer, module = stub_run()
    trainer.is_global_zero = rank_zero
    callback = ProgressLines(1, clock=FakeClock(10))
    callback.on_train_start(trainer, module)
    module.iteration = 1
    callback.on_train_batch_end(trainer, module, None, None, 0)
    trainer.callback_metrics["val/elbo_per_timestep"] = torch.tensor(-1.0)
    callback.on_validation_end(trainer, module)
    written = [r.getMessage().split(":")[0] for r in caplog.records if r.name == "avrnn.training"]
    assert written == (["training", "progress", "validation after iteration 1"] if rank_zero else [])


def test_each_validation_gets_a_line_saying_whether_it_is_the_best_so_far(caplog):
    caplog.set_level(logging.INFO, logger="avrnn.training")
    trainer, module = stub_run(best=torch.tensor(-2.0))  # resumed: the checkpoint callback's best checkpoint so far
    callback = ProgressLines(30, clock=FakeClock(1))
    callback.on_train_start(trainer, module)
    for iteration, elbo in ((10, -2.5), (20, -1.75), (30, -1.9), (40, float("nan"))):
        module.iteration = iteration
        trainer.callback_metrics.update({"val/elbo_per_timestep": torch.tensor(elbo),
                                         "val/rec_per_timestep": torch.tensor(1.5),
                                         "val/kl_per_timestep": torch.tensor(0.25)})
        callback.on_validation_end(trainer, module)
    trainer.sanity_checking = True  # Lightning's sanity check is not a validation of the run
    callback.on_validation_end(trainer, module)
    assert lines(caplog, "validation") == [
        "validation after iteration 10: ELBO -2.500, rec 1.500, KL 0.250 nats/timestep (not the best; best checkpoint so far "
        "-2.000)",
        "validation after iteration 20: ELBO -1.750, rec 1.500, KL 0.250 nats/timestep (best checkpoint so far)",
        "validation after iteration 30: ELBO -1.900, rec 1.500, KL 0.250 nats/timestep (not the best; best checkpoint so far "
        "-1.750)",
        "validation after iteration 40: ELBO nan, rec 1.500, KL 0.250 nats/timestep (not the best; best checkpoint so far -1.750)",
    ]


def test_the_untrained_models_validation_is_reported_apart_and_sets_no_best(caplog):
    caplog.set_level(logging.INFO, logger="avrnn.training")
    trainer, module = stub_run()
    callback = ProgressLines(30, clock=FakeClock(1))
    trainer.state.fn = TrainerFn.VALIDATING  # trainer.validate before trainer.fit
    trainer.callback_metrics.update({"val/elbo_per_timestep": torch.tensor(-1.0)})
    callback.on_validation_end(trainer, module)
    trainer.state.fn = TrainerFn.FITTING
    callback.on_train_start(trainer, module)
    module.iteration = 5
    trainer.callback_metrics.update({"val/elbo_per_timestep": torch.tensor(-3.0)})
    callback.on_validation_end(trainer, module)
    assert [line.split(" nats")[0] for line in lines(caplog, "validation")] == [
        "validation before training (iteration 0): ELBO -1.000", "validation after iteration 5: ELBO -3.000"]
    assert lines(caplog, "validation after")[0].endswith("(best checkpoint so far)")


@pytest.mark.parametrize("terminal, requested, every, want_lines, want_bar", [
    (True, None, 30, False, True),  # a terminal: the bar, as before
    (True, False, 30, False, False),  # trainer.enable_progress_bar=false: nothing
    (False, None, 30, True, False),  # a log file: lines, no bar drawn once at the end
    (False, True, 30, True, True),  # a log file and the bar asked for: both
    (False, None, None, False, False),  # training.log_every_seconds=null: no lines
])
def test_a_terminal_gets_the_bar_and_a_log_file_gets_lines(make_cfg, terminal, requested, every, want_lines, want_bar):
    cfg = make_cfg(f"trainer.enable_progress_bar={'null' if requested is None else str(requested).lower()}",
                   f"training.log_every_seconds={'null' if every is None else every}")
    callbacks, bar = progress_display(cfg, terminal=terminal)
    assert bar is want_bar
    assert [type(c) for c in callbacks] == ([ProgressLines] if want_lines else [])
    if want_lines:
        assert callbacks[0].every_seconds == every


def test_a_run_whose_stdout_is_a_file_logs_progress_and_validations(make_cfg, caplog, tmp_path):
    """The whole path: pytest's captured stdout is not a terminal, so training writes lines; 1 ms apart
    means one after every iteration."""
    caplog.set_level(logging.INFO, logger="avrnn.training")
    train(make_cfg("training.log_every_seconds=0.001", "training.max_iterations=4", "training.iterations_per_epoch=2",
                   "trainer.enable_progress_bar=null"))
    progress = lines(caplog, "progress:")
    assert [line.split(",")[0] for line in progress] == [f"progress: iteration {i}/4 ({i / 4:.0%})" for i in (1, 2, 3, 4)]
    assert all("; last batch: ELBO" in line and line.endswith("nats/timestep") for line in progress)
    assert [line.split(":")[0] for line in lines(caplog, "validation")] == [
        "validation before training (iteration 0)", "validation after iteration 2", "validation after iteration 4"]


def test_durations_read_as_a_person_reads_them():
    assert [duration(s) for s in (0, 42.4, 187, 7500, float("inf"))] == ["0s", "42s", "3m07s", "2h05m", "unknown"]


def test_a_finished_run_leaves_stderr_empty_and_lightnings_lines_in_its_log(run_script, tmp_path, corpus_dir, tiny):
    """The field-case re-run: Lightning's own handler wrote "GPU available", "Restoring states from ..." to
    stderr (beside where an error or stop line goes) and never into train.log; now they go through Hydra's
    logging, as Lightning does where logging was set up before it was imported."""
    result = run_script("train.py", *tiny, f"data.root={corpus_dir}", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 0 and result.stderr == ""
    log = (tmp_path / "run" / "train.log").read_text()
    for line in ("GPU available: False, used: False",
                 f"Restoring states from the checkpoint path at {tmp_path / 'run' / 'checkpoints'}"):
        assert line in result.stdout and line in log
