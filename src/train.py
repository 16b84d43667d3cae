"""Train A-VRNN or the VRNN baseline: `python src/train.py model=avrnn critic=wgan` (see README)."""

import hydra
from omegaconf import DictConfig

from avrnn.cli import run
from avrnn.config import register_configs
from avrnn.training import BEST, train

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Returns the best validation ELBO per timestep (NaN if none): the objective of
    hparams_search=avrnn_optuna, where NaN marks a failed trial."""
    return train(cfg).get(BEST, float("nan"))


if __name__ == "__main__":
    run(main)
