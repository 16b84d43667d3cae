"""Write WAV samples and reconstructions: `python src/generate.py ckpt_path=... n=8 seconds=3`."""

import hydra
from omegaconf import DictConfig

from avrnn.cli import run
from avrnn.generation import generate


@hydra.main(version_base="1.3", config_path="../conf", config_name="generate")
def main(cfg: DictConfig) -> None:
    generate(cfg)


if __name__ == "__main__":
    run(main)
