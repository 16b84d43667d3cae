"""Write WAV samples and reconstructions: `python src/generate.py ckpt_path=... n=8 seconds=3`."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from avrnn.cli import run
from avrnn.evaluation.sampling import generate

CONF = str(Path(__file__).resolve().parents[1] / "conf")  # absolute: the entry point also runs in-process (tests)


@hydra.main(version_base="1.3", config_path=CONF, config_name="generate")
def main(cfg: DictConfig) -> None:
    generate(cfg)


if __name__ == "__main__":
    run(main)
