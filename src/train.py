"""Train A-VRNN or the VRNN baseline: `python src/train.py model=avrnn critic=wgan` (see README)."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from avrnn.cli import run
from avrnn.config import register_configs
from avrnn.training.sweeps import objective
from avrnn.training.fit import BEST, train

register_configs()
CONF = str(Path(__file__).resolve().parents[1] / "conf")  # absolute: the entry point also runs in-process (tests)


@hydra.main(version_base="1.3", config_path=CONF, config_name="config")
def main(cfg: DictConfig) -> float:
    """Returns the best validation ELBO per timestep (NaN if none): the objective of
    hparams_search=*, where a trial without a finite one raises TrialFailed (Optuna: FAILED)."""
    return objective(train(cfg), BEST)


if __name__ == "__main__":
    run(main)
