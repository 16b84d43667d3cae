"""Score a checkpoint: `python src/evaluate.py ckpt_path=...` (ELBO, IWAE-k, FIVO-k; see README)."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from avrnn.cli import run
from avrnn.config import register_configs
from avrnn.evaluation.scoring import evaluate

register_configs()  # the typed schema conf/evaluate.yaml names
CONF = str(Path(__file__).resolve().parents[1] / "conf")  # absolute: the entry point also runs in-process (tests)


@hydra.main(version_base="1.3", config_path=CONF, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


main.optional_data = True  # conf/evaluate.yaml: no data unless data=... is given (avrnn.cli.run checks)


if __name__ == "__main__":
    run(main)
