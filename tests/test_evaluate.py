"""src/evaluate.py: a trained checkpoint scored with ELBO, IWAE-k and FIVO-k into metrics.json."""

import json

import pytest

from avrnn.checkpoints import CheckpointError
from avrnn.evaluation import evaluate
from avrnn.training import train


def test_checkpoint_is_scored_with_bounds_in_the_stated_units(make_cfg, compose_config, tmp_path):
    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=2"))
    out = tmp_path / "eval"
    metrics = evaluate(compose_config("evaluate", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "iwae_k=[2,8]",
                                        "fivo_k=[8]", f"output_dir={out}"))
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == metrics
    assert metrics["test/sequences"] == 4 and metrics["test/frames"] > 0  # the tiny corpus' test split
    per_timestep = metrics["test/elbo_per_timestep"]
    assert per_timestep == pytest.approx(metrics["test/elbo_per_sequence"] * 4 / metrics["test/frames"])
    assert per_timestep == pytest.approx(-(metrics["test/rec_per_timestep"] + metrics["test/kl_per_timestep"]))
    for key in ("test/iwae_2_per_timestep", "test/iwae_8_per_timestep", "test/fivo_8_per_timestep",
                "test/wasserstein", "test/elbo_bits_per_sample"):
        assert key in metrics, key
    # IWAE tightens with k: single draws are noisy, so only a clear violation would fail
    assert metrics["test/iwae_8_per_timestep"] > per_timestep - 0.5


def test_evaluation_refuses_an_unsafe_checkpoint(compose_config, tmp_path):
    import torch

    class Payload:
        def __reduce__(self):
            return (print, ("owned",))

    path = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"x": Payload()}}, path)
    with pytest.raises(CheckpointError, match="refusing to load"):
        evaluate(compose_config("evaluate", f"ckpt_path={path}", f"output_dir={tmp_path / 'eval'}"))
