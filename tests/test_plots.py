"""src/plot.py: the paper's Fig. 2 / Fig. 3 and a KL panel from a run's TensorBoard logs."""

import numpy as np
import pytest

from avrnn.plots import block_average, plot_run
from avrnn.training import train


def test_block_average_means_each_block_of_iterations():
    steps, values = np.arange(10), np.arange(10, dtype=float)
    x, y = block_average(steps, values, 4)
    assert x.tolist() == [4, 8, 12] and y.tolist() == [1.5, 5.5, 8.5]


def test_run_figures_are_written(make_cfg, tmp_path):
    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=3"))
    written = plot_run(run, every=2)
    assert sorted(p.name for p in written) == ["fig2_bounds.png", "fig3_critic.png", "kl.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") and p.stat().st_size > 10_000 for p in written)
    with pytest.raises(FileNotFoundError, match="no tensorboard/ folder"):
        plot_run(tmp_path / "nothing")
