"""What a finished run leaves in TensorBoard for comparing runs side by side: its settings with its
final metrics in the HParams dashboard (the metric: the best validation ELBO), and the paper's
Fig. 2 / Fig. 3 and the KL curve as images (also written as PNG to <run>/plots/)."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib.pyplot as plt
from pytorch_lightning.loggers import TensorBoardLogger

from avrnn.training.phases import builds_critic
from avrnn.analysis.figures import default_every, plot_run

log = logging.getLogger("avrnn.run_summary")  # the name before the layout change: log lines and users' logging settings keep it

# the settings a comparison varies (config keys, dotted)
HPARAMS = ("model.name", "critic.name", "critic.input", "model.prior_path", "model.recurrence_input", "ablation.name",
           "ablation.adversarial_phases", "ablation.kl_weight", "model.optimizer.name", "model.optimizer.lr",
           "model.adversarial_optimizer.name", "model.adversarial_optimizer.lr", "critic.optimizer.name",
           "critic.optimizer.lr", "critic.n_critic", "critic.clip_value", "critic.gp_weight", "model.z_dim",
           "model.hidden_size", "model.rnn", "data.name", "training.max_iterations", "trainer.precision",
           "flush_denormal", "seed")
# what only a run that builds a critic has: left out of the table where it builds none (the VRNN, no adversary)
CRITIC_HPARAMS = ("critic.name", "critic.input", "model.prior_path", "model.adversarial_optimizer.name",
                  "model.adversarial_optimizer.lr", "critic.optimizer.name", "critic.optimizer.lr", "critic.n_critic",
                  "critic.clip_value", "critic.gp_weight")
METRICS = ("val/best_elbo_per_timestep", "test/elbo_per_timestep", "test/rec_per_timestep", "test/kl_per_timestep")


def _get(config: dict, dotted: str):
    for key in dotted.split("."):
        config = config.get(key) if isinstance(config, dict) else None
    return config


def summarize_run(logger: TensorBoardLogger, config: dict, metrics: dict, output_dir: Path, iterations: int) -> None:
    """HParams entry and (training.figures) figures of one run; `config` is the resolved config as plain
    data (its trainer.precision the one the run trained in: avrnn.training.fit.record_precision)."""
    with_critic = builds_critic(config["critic"], config["ablation"])
    keys = [key for key in HPARAMS if with_critic or key not in CRITIC_HPARAMS]
    params = {key: value for key in keys if (value := _get(config, key)) is not None}
    logger.log_hyperparams(params, metrics={f"hp/{key}": float(metrics[key]) for key in METRICS if key in metrics})
    logger.experiment.flush()  # the figures are drawn from the event files written so far
    if not config["training"].get("figures", True):
        return
    for path in plot_run(output_dir, every=default_every(iterations)):
        logger.experiment.add_image(f"figures/{path.stem}", plt.imread(path)[..., :3], iterations, dataformats="HWC")
    logger.experiment.flush()
