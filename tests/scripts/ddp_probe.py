"""Run by tests/test_ddp.py: trains with the overrides given after the output folder and saves,
per DDP process, the parameters before and after training and a checksum of the first batch.
Lightning starts the second process by running this same command line again."""

import sys
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir

from avrnn.training import denormals
from avrnn.config import register_configs
from avrnn.training.fit import train

CONF = Path(__file__).resolve().parents[2] / "conf"


class SaveRankState(pl.Callback):
    def __init__(self, out: Path):
        self.out, self.record = out, {}

    @staticmethod
    def parameters(module) -> dict[str, torch.Tensor]:
        return {name: p.detach().clone() for name, p in module.named_parameters()}

    def on_train_start(self, trainer, module):  # after DDP has broadcast rank 0's weights
        self.record["start"] = self.parameters(module)

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.record.setdefault("first_batch_sum", float(sum(x.sum() for x, _ in batch)))

    def on_train_end(self, trainer, module):
        self.record.update(end=self.parameters(module), iteration=module.iteration,
                           world_size=trainer.world_size, precision=trainer.precision,
                           denormals=denormals.state(), clip=module.hparams.critic["clip_value"])
        torch.save(self.record, self.out / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    out = Path(sys.argv[1])
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=sys.argv[2:])
    train(cfg, callbacks=[SaveRankState(out)])
