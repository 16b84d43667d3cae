"""src/plot.py: the paper's Fig. 2 / Fig. 3 and a KL panel from a run's TensorBoard logs."""

import numpy as np
import pytest

from avrnn.analysis.figures import block_average, plot_run
from avrnn.training.fit import train


def test_block_average_means_each_block_of_iterations():
    steps, values = np.arange(10), np.arange(10, dtype=float)
    x, y = block_average(steps, values, 4)
    assert x.tolist() == [4, 8, 12] and y.tolist() == [1.5, 5.5, 8.5]


@pytest.mark.parametrize("overrides, figures", [
    ((), ["fig2_bounds.png", "fig3_critic.png", "kl.png"]),
    (("model=vrnn", "critic=none"), ["fig2_bounds.png", "kl.png"]),  # no critic: no Fig. 3
])
def test_run_figures_are_written(make_cfg, tmp_path, overrides, figures):
    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=3", "training.figures=true", *overrides))
    assert sorted(p.name for p in (run / "plots").iterdir()) == figures  # drawn by the run itself
    drawn = {p.name: p.read_bytes() for p in (run / "plots").iterdir()}
    assert {p.name: p.read_bytes() for p in plot_run(run)} == drawn  # plot.py's default redraws the same figures
    written = plot_run(run, every=2)
    assert sorted(p.name for p in written) == figures
    assert all(p.read_bytes().startswith(b"\x89PNG") and p.stat().st_size > 10_000 for p in written)
    with pytest.raises(FileNotFoundError, match="no tensorboard/ folder"):
        plot_run(tmp_path / "nothing")


def write_events(folder, name: str, logged: dict[int, float]) -> None:
    """One event file named `name` in `folder` holding train/elbo_per_timestep at the steps of `logged`."""
    import time

    from torch.utils.tensorboard import SummaryWriter

    scratch = folder.parent / f"writing-{name}"
    writer = SummaryWriter(str(scratch))
    for step, value in logged.items():
        writer.add_scalar("train/elbo_per_timestep", value, step)
    writer.close()
    folder.mkdir(parents=True, exist_ok=True)
    (written,) = scratch.glob("events.out.tfevents.*")
    written.rename(folder / name)
    time.sleep(0.01)  # the next file's events carry a later wall time


def test_scalars_are_read_in_the_order_written_and_a_step_logged_again_keeps_its_last_value(tmp_path):
    """Two event files of one second whose names sort against their writing order (the writer counter's 10
    before its 9), the second re-logging step 2 as a resume from an older checkpoint does."""
    from avrnn.analysis.figures import read_scalars

    folder = tmp_path / "run" / "tensorboard"
    write_events(folder, "events.out.tfevents.1700000000.host.1.9", {1: 1.0, 2: 2.0})
    write_events(folder, "events.out.tfevents.1700000000.host.1.10", {2: 5.0, 3: 3.0})
    steps, values = read_scalars(tmp_path / "run")["train/elbo_per_timestep"]
    assert steps.tolist() == [1, 2, 3] and values.tolist() == [1.0, 5.0, 3.0]


def test_a_resumed_attempt_that_has_not_caught_up_drops_the_first_attempts_later_points(tmp_path):
    """The first attempt logged steps 1-5 and was stopped after saving at 2; the resumed one was stopped
    again at 4: the curve is the one that went on, not the first attempt's 5 after the second's 4."""
    from avrnn.analysis.figures import read_scalars

    folder = tmp_path / "run" / "tensorboard"
    write_events(folder, "events.out.tfevents.1700000000.host.1.1", {s: float(s) for s in range(1, 6)})
    write_events(folder, "events.out.tfevents.1700000100.host.2.0", {3: 30.0, 4: 40.0})
    steps, values = read_scalars(tmp_path / "run")["train/elbo_per_timestep"]
    assert steps.tolist() == [1, 2, 3, 4] and values.tolist() == [1.0, 2.0, 30.0, 40.0]


def test_a_finished_run_leaves_its_hparams_and_figures_in_tensorboard(make_cfg, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=3", "critic.input=conditional",
                   "training.figures=true"))
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    assert sorted(events.Tags()["images"]) == ["figures/fig2_bounds", "figures/fig3_critic", "figures/kl"]
    content = events.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = dict(session.session_start_info.hparams)
    assert hparams["critic.input"].string_value == "conditional" and hparams["model.optimizer.lr"].number_value > 0
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert "hp/val/best_elbo_per_timestep" in [m.name.tag for m in experiment.metric_infos]
    assert sorted(p.name for p in (run / "plots").iterdir()) == ["fig2_bounds.png", "fig3_critic.png", "kl.png"]


def test_a_run_without_figures_still_leaves_its_hparams(make_cfg, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=3", "training.figures=false"))
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    assert events.Tags()["images"] == [] and not (run / "plots").exists()
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")
