"""Score a checkpoint: `python src/evaluate.py ckpt_path=...` (ELBO, IWAE-k, FIVO-k; see README)."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from avrnn.cli import run
from avrnn.evaluation.scoring import evaluate

CONF = str(Path(__file__).resolve().parents[1] / "conf")  # absolute: the entry point also runs in-process (tests)


@hydra.main(version_base="1.3", config_path=CONF, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    run(main)
