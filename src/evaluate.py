"""Score a checkpoint: `python src/evaluate.py ckpt_path=...` (ELBO, IWAE-k, FIVO-k; see README)."""

import hydra
from omegaconf import DictConfig

from avrnn.cli import run
from avrnn.evaluation import evaluate


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    run(main)
