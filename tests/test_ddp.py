"""Distributed training: 2-process CPU DDP (gloo), data sharding, and the combinations refused."""

import json
import math
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from avrnn.config import ConfigError, validate
from avrnn.data.datamodule import EpochBatchSampler
from avrnn.training.fit import build_datamodule, train
DDP_CPU = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]  # the README's CPU DDP command


@pytest.mark.parametrize("crop_frames", [8, None])
def test_sampler_shards_are_disjoint_equal_and_cover_the_single_process_order(crop_frames):
    lengths = [10, 30, 12, 50, 9, 40, 22]
    whole = EpochBatchSampler(lengths, 3, batches=8, seed=5, crop_frames=crop_frames).epoch_batches()
    shards = [EpochBatchSampler(lengths, 3, batches=4, seed=5, crop_frames=crop_frames, rank=rank,
                                world_size=2).epoch_batches() for rank in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 4  # DDP needs the same number of steps everywhere
    assert shards[0] == whole[0::2] and shards[1] == whole[1::2]


def test_eval_loaders_score_every_utterance_exactly_once_over_processes(make_cfg):
    datamodule = build_datamodule(make_cfg())
    datamodule.prepare_data()
    datamodule.setup("fit")
    seen = []
    for rank in (0, 1):
        datamodule.trainer = SimpleNamespace(global_rank=rank, world_size=2)
        seen += [int(mask.sum()) for _, mask in datamodule.eval_dataloader("test")]
    datamodule.trainer = None
    assert sum(seen) == sum(len(f) for f in datamodule.frames["test"])  # every frame once, no padding repeats


def test_a_split_smaller_than_the_processes_is_scored_whole_by_each_and_the_bound_is_unchanged(make_cfg):
    """The field report: CPU DDP over 2 processes with a one-utterance validation split; rank 1 had no
    batch (Lightning: "zero length"), rank 0 waited for it in the reduction. Each process now scores the
    split whole: sums and frame counts double, their ratio (nats per timestep) is the one process's."""
    datamodule = build_datamodule(make_cfg())
    datamodule.prepare_data()
    datamodule.setup("fit")
    datamodule.frames["val"] = datamodule.frames["val"][:1]
    datamodule.frames["test"] = datamodule.frames["test"][:3]
    shards = {}
    for rank in (0, 1, 2):
        datamodule.trainer = SimpleNamespace(global_rank=rank, world_size=3)
        shards[rank] = {split: [float(mask.sum()) for _, mask in datamodule.eval_dataloader(split)]
                        for split in ("val", "test")}
    datamodule.trainer = None
    one = len(datamodule.frames["val"][0])
    assert [shards[rank]["val"] for rank in (0, 1, 2)] == [[one]] * 3  # whole, on every process
    assert sorted(sum(shards[rank]["test"]) for rank in (0, 1, 2)) == sorted(len(f) for f in datamodule.frames["test"])


@pytest.mark.slow
def test_ddp_two_cpu_processes_keep_identical_parameters(tmp_path, corpus_dir, tiny, root):
    """fast_dev_run of model=avrnn critic=wgan on 2 gloo processes; rank files come from a callback.
    fast_dev_run counts optimizer steps: 9 = 3 iterations of reconstruction, critic, adversarial."""
    out = tmp_path / "ranks"
    out.mkdir()
    result = subprocess.run(
        [sys.executable, str(root / "tests" / "scripts" / "ddp_probe.py"), str(out), *tiny, *DDP_CPU,
         "model=avrnn", "critic=wgan", "trainer.fast_dev_run=9", f"data.root={corpus_dir}",
         f"paths.output_dir={tmp_path / 'run'}"],
        cwd=root, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(out / f"rank{rank}.pt") for rank in (0, 1)]
    assert all(r["world_size"] == 2 and r["iteration"] == 3 for r in ranks)
    assert all(r["precision"] == "32-true" for r in ranks)  # CPU DDP trains in fp32 by default
    assert all(r["denormals"] == "flushed" for r in ranks)  # every rank, its intra-op threads included
    assert ranks[0]["first_batch_sum"] != ranks[1]["first_batch_sum"]  # each process trains on its own shard
    for name, start in ranks[0]["start"].items():
        assert torch.equal(ranks[0]["end"][name], ranks[1]["end"][name]), name  # all-reduced, clipped alike
    changed = {name.split(".")[0] for name, start in ranks[0]["start"].items()
               if not torch.equal(start, ranks[0]["end"][name])}
    assert changed == {"vrnn", "critic"}  # every phase stepped
    critic = [p for name, p in ranks[0]["end"].items() if name.startswith("critic.")]
    assert max(float(p.abs().max()) for p in critic) <= ranks[0]["clip"] + 1e-7


@pytest.mark.slow
def test_ddp_from_the_command_line_writes_one_run_folder(run_script, tmp_path, corpus_dir, tiny):
    """Lightning re-runs src/train.py for rank 1 with the same Hydra run folder."""
    run = tmp_path / "run"
    result = run_script("train.py", *tiny, *DDP_CPU, "training.max_iterations=2", f"data.root={corpus_dir}",
                       f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["iterations"] == 2 and metrics["test/elbo_per_timestep"] < 0
    assert (run / "checkpoints" / "last.ckpt").exists() and (run / "train_ddp_process_1.log").exists()
    said = result.stdout + result.stderr
    assert said.count("finished 2 iterations") == 1, said[-3000:]  # one final line, not one per process


@pytest.mark.slow
def test_ddp_with_a_one_utterance_validation_split_trains_and_validates(run_script, tmp_path, corpus_dir, tiny):
    """The field report's command: before, rank 1 failed on a zero-length loader and rank 0 on a closed gloo
    connection."""
    run = tmp_path / "run"
    result = run_script("train.py", *tiny, *DDP_CPU, "data.val_fraction=0.1", "training.max_iterations=2",
                        f"data.root={corpus_dir}", f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "data /" in result.stdout + result.stderr and "val 1 utterance / " in result.stdout + result.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert math.isfinite(metrics["val/best_elbo_per_timestep"]) and metrics["iterations"] == 2


def test_multirun_with_ddp_is_refused_with_what_to_use_instead(run_in_process, tmp_path, corpus_dir, tiny):
    result = run_in_process("train.py", "-m", "seed=1,2", *tiny, *DDP_CPU, f"data.root={corpus_dir}",
                            f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert result.returncode == 2
    assert result.last_line.startswith("error: the sweep ended with 2 failed jobs: job 0 (")
    assert ("ConfigError: trainer.devices x trainer.num_nodes = 2 processes cannot start inside a local multirun"
            in result.last_line and "hydra/launcher=slurm" in result.last_line)


@pytest.mark.parametrize("trainer", ["gpu", "ddp"])
def test_gpu_trainer_configs_compose(make_cfg, trainer):
    cfg = make_cfg(f"trainer={trainer}")
    validate(cfg)
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "bf16-mixed"
    assert cfg.trainer.use_distributed_sampler is False
    if trainer == "ddp":
        assert cfg.trainer.strategy == "ddp_find_unused_parameters_true" and cfg.trainer.num_nodes == 1
    assert make_cfg(f"trainer={trainer}", "trainer.accelerator=cpu").trainer.precision == "32-true"
    assert make_cfg(f"trainer={trainer}", "trainer.accelerator=cpu",
                    "trainer.precision=bf16-mixed").trainer.precision == "bf16-mixed"  # asked for: kept


def test_distributed_sampler_injection_is_refused(make_cfg):
    with pytest.raises(ConfigError, match="use_distributed_sampler must stay false"):
        validate(make_cfg("trainer.use_distributed_sampler=true"))


def test_num_threads_sets_torch_threads(make_cfg):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # not already 1 (make test's workers run one thread each)
        train(make_cfg("num_threads=1", "trainer.fast_dev_run=1"))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ConfigError, match="num_threads must be positive"):
        validate(make_cfg("num_threads=0"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_gpu_trainer_without_a_gpu_says_what_to_use(make_cfg):
    with pytest.raises(ConfigError, match=r"trainer.accelerator=gpu needs a CUDA GPU and torch sees none; "
                                          r"use trainer=cpu"):
        train(make_cfg("trainer=gpu"))


@pytest.mark.parametrize("override,names", [("trainer.strategy=bogus", "invalid strategy name"),
                                            ("trainer.precision=17", "Precision 17 is invalid")])
def test_trainer_settings_lightning_refuses_become_config_errors(make_cfg, override, names):
    with pytest.raises(ConfigError, match=f"^{re.escape(override)} was refused by pytorch_lightning during set-up: "
                                          f".*{names}"):
        train(make_cfg(override))


@pytest.mark.slow
def test_ddp_processes_agree_on_the_stop_when_only_rank_0_gets_the_signal(tmp_path, corpus_dir, tiny, root):
    """SIGTERM reaches rank 0 only (its own test hook; rank 1 is relaunched without it): both processes stop
    after the same iteration, last.ckpt is saved there once, and the run exits 143 (no deadlock)."""
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, str(root / "tests" / "scripts" / "signal_at.py"), "2", "SIGTERM", *tiny, *DDP_CPU,
         "training.max_iterations=6", "training.iterations_per_epoch=2", "training.validate_before_training=false",
         f"data.root={corpus_dir}", f"hydra.run.dir={run_dir}"],
        cwd=root, capture_output=True, text=True, timeout=600)
    assert result.returncode == 143, result.stderr[-3000:]
    assert "stopped by SIGTERM after iteration 2: saved" in result.stderr
    assert (result.stdout + result.stderr).count("stopped by SIGTERM") == 1  # said once, not once per process
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["avrnn_iteration"] == 2
