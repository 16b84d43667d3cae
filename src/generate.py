"""Write WAV samples and reconstructions: `python src/generate.py ckpt_path=... n=8 seconds=3`."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from avrnn.cli import run
from avrnn.config import register_configs
from avrnn.evaluation.sampling import generate

register_configs()  # the typed schema conf/generate.yaml names
CONF = str(Path(__file__).resolve().parents[1] / "conf")  # absolute: the entry point also runs in-process (tests)


@hydra.main(version_base="1.3", config_path=CONF, config_name="generate")
def main(cfg: DictConfig) -> None:
    generate(cfg)


main.optional_data = True  # conf/generate.yaml: no data unless data=... is given (avrnn.cli.run checks)


if __name__ == "__main__":
    run(main)
