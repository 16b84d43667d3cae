"""What a run shows at its end, in TensorBoard and in its folder: figures on which the converged part
reads, a last log line with the best validation bound and the test bounds, a progress bar counting
iterations, and an HParams table of the settings the run really has."""

import json
import logging
import re

import matplotlib.axes
import numpy as np
import pytest
import pytorch_lightning as pl
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from avrnn.analysis import figures as plots
from avrnn.training.callbacks import IterationRichBar, IterationTQDMBar
from avrnn.analysis.figures import CONVERGED_SHARE, converged_limits
from avrnn.training.fit import BEST, METRICS_UNITS, train


def second_half_share(steps, values, limits):
    late = values[steps >= steps.max() / 2]
    return (late.max() - late.min()) / (limits[1] - limits[0])


def test_a_vrnn_like_curve_gets_an_axis_on_which_its_second_half_reads():
    steps = np.arange(1, 2001, dtype=float)
    values = 50 - 1.5e6 * np.exp(-steps / 30) + np.sin(steps / 50)  # -1.5e6 at the start, ~50 +- 1 converged
    limits = converged_limits([(steps, values)], steps.max())
    assert limits is not None and second_half_share(steps, values, limits) >= CONVERGED_SHARE
    assert limits[0] > -10 and limits[1] < 100  # the early values leave the axis
    flat_start = np.linspace(-100, 50, 2000)  # already readable on its whole range: matplotlib's own limits
    assert converged_limits([(steps, flat_start)], steps.max()) is None


def test_the_run_figures_use_the_converged_limits(tmp_path, monkeypatch):
    """A run folder whose TensorBoard holds a VRNN-like ELBO curve: Fig. 2 gets limits on which its
    second half spans at least 30% of the axis."""
    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path / "run"
    writer = SummaryWriter(str(run / "tensorboard"))
    for step in range(0, 2000, 10):
        elbo = 50 - 1.5e6 * np.exp(-step / 30) + np.sin(step / 50)
        writer.add_scalar("train/elbo_per_timestep", elbo, step)
        writer.add_scalar("train/rec_per_timestep", -elbo - 2, step)
    writer.close()
    applied = []
    real_set_ylim = matplotlib.axes.Axes.set_ylim

    def set_ylim(axis, *args, **kwargs):
        applied.append(args)
        return real_set_ylim(axis, *args, **kwargs)
    monkeypatch.setattr(matplotlib.axes.Axes, "set_ylim", set_ylim)
    written = plots.plot_run(run, every=100)
    assert [p.name for p in written] == ["fig2_bounds.png"]  # no critic or KL curves in this log
    (limits,) = [args for args in applied if len(args) == 2]  # ours (matplotlib's own calls pass keywords)
    steps = np.arange(0, 2000, 10, dtype=float)
    elbo = 50 - 1.5e6 * np.exp(-steps / 30) + np.sin(steps / 50)
    blocks, means = plots.block_average(steps.astype(int), elbo, 100)
    both = np.concatenate([means, means + 2])  # the ELBO and -reconstruction (= ELBO + 2 here) share the axis
    assert second_half_share(np.concatenate([blocks, blocks]).astype(float), both, limits) >= CONVERGED_SHARE
    assert limits[0] > 0  # the start, near -1.5e6, is off the axis


def training_family(key: str, saved: dict) -> str:
    """A key of training's metrics.json as its units string names it: the split left out, * for a bound's
    name, <phase> and <block> for the names of phases and blocks."""
    family = re.sub(r"^(train|val|test)/", "", key)
    if family.endswith("_per_timestep"):
        return "*_per_timestep"
    family = re.sub(r"^faults/skipped_\w+_steps$", "faults/skipped_<phase>_steps", family)
    family = re.sub(r"^lr/[^/]+$", "lr/<phase>", family)
    return re.sub(r"^(grad_norm|update_norm)/[^/]+/[^/]+$", r"\1/<phase>/<block>", family)


def test_the_training_units_check_refuses_a_number_it_does_not_name(units_check):
    saved = {"units": METRICS_UNITS, "train/grad_norm/critic/omega": 1.0, "lr/critic": 0.1, "iteration": 3.0,
             "faults/skipped_critic_steps": 0.0, "val/best_elbo_per_timestep": -1.0, "train/wasserstein": 0.1}
    units_check(saved, training_family)
    for unnamed in ("train/norm", "train/grad_norm", "lr", "train/loss", "phase"):
        with pytest.raises(AssertionError, match=unnamed):
            units_check({**saved, unnamed: 1.0}, training_family)


def test_the_last_log_line_reports_the_best_validation_and_the_test_bounds(make_cfg, caplog, tmp_path, units_check):
    with caplog.at_level(logging.INFO, logger="avrnn.training"):
        metrics = train(make_cfg("training.max_iterations=6", "training.iterations_per_epoch=2"))
    last = [r.getMessage() for r in caplog.records if r.name == "avrnn.training"][-1]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    units_check(saved, training_family)
    assert "train/elbo" not in saved  # the progress bar's copy of train/elbo_per_timestep
    assert f"best val/elbo_per_timestep = {metrics[BEST]:.3f} nats/timestep (checkpoint of iteration" in last
    assert f"test ELBO {metrics['test/elbo_per_timestep']:.3f}, reconstruction {metrics['test/rec_per_timestep']:.3f}"\
        in last


class BarState(pl.Callback):
    def on_train_epoch_end(self, trainer, module):
        bar = trainer.progress_bar_callback
        if isinstance(bar, IterationRichBar):
            task = bar.progress.tasks[bar.train_progress_bar_id]
            self.state = (task.description.strip(), task.completed, task.total)
        else:
            self.state = (bar.train_progress_bar.desc.strip(": "), bar.train_progress_bar.n, bar.train_progress_bar.total)


@pytest.mark.parametrize("bar", [IterationRichBar, IterationTQDMBar])
def test_the_progress_bar_counts_iterations_out_of_max_iterations(make_cfg, bar):
    state = BarState()
    train(make_cfg("training.max_iterations=4", "training.iterations_per_epoch=2", "trainer.enable_progress_bar=true"),
          callbacks=[bar(), state])
    assert state.state == ("iterations", 4, 4)  # not "Epoch 1/-2"


def hparams_of(run) -> dict:
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"tensors": 0})
    events.Reload()
    content = events.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    return dict(session.session_start_info.hparams)


@pytest.mark.parametrize("overrides", [("model=vrnn", "critic=none"), ("ablation.adversarial_phases=false",)])
def test_the_hparams_table_of_a_run_without_a_critic_lists_no_critic_setting(make_cfg, tmp_path, overrides):
    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=2", *overrides))
    hparams = hparams_of(run)
    assert not [key for key in hparams if key.startswith("critic.") or "adversarial_optimizer" in key]
    assert "ablation.adversarial_phases" in hparams and hparams["trainer.precision"].string_value == "32-true"
    assert hparams["flush_denormal"].number_value == 1  # TensorBoard stores a bool as a number


def test_a_run_of_one_iteration_says_one_iteration(make_cfg, caplog, tmp_path):
    """Counts read as a person writes them: "finished 1 iteration", also where a finished run is run again."""
    cfg = make_cfg("training.max_iterations=1", "training.iterations_per_epoch=1", f"paths.output_dir={tmp_path / 'run'}")
    with caplog.at_level(logging.INFO, logger="avrnn.training"):
        train(cfg)
        train(cfg)
    said = [r.getMessage() for r in caplog.records if r.name == "avrnn.training"]
    assert any(line.startswith("finished 1 iteration; best val/elbo_per_timestep") for line in said), said[-3:]
    assert said[-1] == f"{tmp_path / 'run'} holds this run, finished (1 iteration, metrics.json): nothing to do"
