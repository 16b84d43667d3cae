"""Train A-VRNN or the VRNN baseline: `python src/train.py model=avrnn critic=wgan` (see README)."""

import sys

import hydra
from omegaconf import DictConfig

from avrnn.checkpoints import CheckpointError
from avrnn.config import ConfigError, register_configs
from avrnn.data.errors import DataError
from avrnn.module import TrainingFault
from avrnn.training import MONITOR, train

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    try:
        metrics = train(cfg)
    except (ConfigError, DataError, CheckpointError, TrainingFault) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    return metrics.get(MONITOR, float("nan"))


if __name__ == "__main__":
    main()
