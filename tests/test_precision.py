"""bf16 where the machine has it, fp32 with one log line where it does not (CPUs without bf16)."""

import logging
import os
import platform
import subprocess
import sys

import pytorch_lightning as pl
import pytest
import torch

from avrnn.training import precision
from avrnn.training.precision import cpu_bf16_works, supported_precision
from avrnn.training.fit import train

needs_cpu_bf16 = pytest.mark.skipif(
    not cpu_bf16_works(), reason="this CPU has no oneDNN bf16 (a bf16 LSTM cannot run under CPU autocast)")


class RecordPrecision(pl.Callback):
    def on_train_start(self, trainer, module):
        self.precision = trainer.precision


@needs_cpu_bf16
def test_bf16_autocast_trains_on_cpu(make_cfg):
    """trainer=gpu's precision (bf16-mixed) through every phase, on the CPU's autocast."""
    record = RecordPrecision()
    metrics = train(make_cfg("trainer.precision=bf16-mixed", "trainer.fast_dev_run=2", "critic=wgan_gp"),
                    callbacks=[record])
    assert record.precision == "bf16-mixed"
    assert torch.isfinite(torch.tensor(metrics["train/elbo_per_timestep"]))


class RecordBoundDtypes(pl.Callback):
    """Wraps the VRNN's forward: (training?, autocast on?, dtype of the RNN states h) of every call."""

    def __init__(self):
        self.calls = []

    def on_fit_start(self, trainer, module):
        forward = module.vrnn.forward

        def recorded(*args, **kwargs):
            out = forward(*args, **kwargs)
            self.calls.append((module.training, torch.is_autocast_enabled("cpu"), out.h.dtype))
            return out
        module.vrnn.forward = recorded


@needs_cpu_bf16
def test_bf16_mixed_trains_in_bf16_and_validates_and_tests_in_fp32(make_cfg):
    record = RecordBoundDtypes()
    train(make_cfg("trainer.precision=bf16-mixed", "model=vrnn", "critic=none", "training.max_iterations=2",
                   "training.iterations_per_epoch=2"), callbacks=[record])
    training = {(autocast, dtype) for is_training, autocast, dtype in record.calls if is_training}
    evaluation = {(autocast, dtype) for is_training, autocast, dtype in record.calls if not is_training}
    assert training == {(True, torch.bfloat16)}
    assert evaluation == {(False, torch.float32)}  # validation and the test of the best checkpoint


@pytest.mark.parametrize("requested", ["bf16-mixed", "bf16-true", "16-mixed"])
@pytest.mark.parametrize("accelerator", ["cpu", "auto"])
def test_bf16_on_a_cpu_without_it_trains_in_fp32_with_one_log_line(make_cfg, monkeypatch, caplog, requested,
                                                                  accelerator):
    """The probe faked to fail, so this runs (and can fail) on every machine."""
    if accelerator == "auto" and not precision.runs_on_cpu("auto"):
        pytest.skip("accelerator=auto finds a GPU here")
    monkeypatch.setattr(precision, "cpu_bf16_works", lambda: False)
    record = RecordPrecision()
    with caplog.at_level(logging.WARNING, logger="avrnn.precision"):
        metrics = train(make_cfg(f"trainer.precision={requested}", f"trainer.accelerator={accelerator}",
                                 "trainer.fast_dev_run=2", "critic=wgan_gp"), callbacks=[record])
    assert record.precision == "32-true"
    assert torch.isfinite(torch.tensor(metrics["train/elbo_per_timestep"]))
    lines = [r.getMessage() for r in caplog.records if r.name == "avrnn.precision"]
    assert len(lines) == 1 and f"trainer.precision={requested} trains in fp32 (32-true)" in lines[0]


def test_precisions_without_bf16_and_capable_cpus_are_left_alone(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_works", lambda: False)
    for kept in ("32-true", "32", "64-true", None, "16-true"):
        assert supported_precision(kept, "cpu") == kept
    monkeypatch.setattr(precision, "cpu_bf16_works", lambda: True)
    for kept in ("bf16-mixed", "bf16-true", "16-mixed"):
        assert supported_precision(kept, "cpu") == kept


def test_the_probe_draws_no_random_numbers():
    cpu_bf16_works.cache_clear()
    before = torch.get_rng_state()
    cpu_bf16_works()
    assert torch.equal(before, torch.get_rng_state())


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="ONEDNN_MAX_CPU_ISA=AVX2 is an x86 setting")
def test_the_probe_fails_where_onednn_has_no_bf16():
    """ONEDNN_MAX_CPU_ISA=AVX2 makes oneDNN behave like a CPU without bf16 (AMD EPYC without
    AVX-512): the probe's LSTM then raises, as the critic's did there, and the probe says False."""
    code = ("import torch; from avrnn.training.precision import cpu_bf16_works; "
            "print(torch.ops.mkldnn._is_mkldnn_bf16_supported(), cpu_bf16_works())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "False"]


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="ONEDNN_MAX_CPU_ISA=AVX2 is an x86 setting")
def test_bf16_training_from_the_command_line_on_a_cpu_without_bf16(tmp_path, corpus_dir, tiny):
    """The user's failure as reported (AMD EPYC, no AVX-512), reproduced with ONEDNN_MAX_CPU_ISA=AVX2:
    trainer=gpu's bf16-mixed on the CPU used to crash in the critic's LSTM at the first validation."""
    result = subprocess.run(
        [sys.executable, "src/train.py", *tiny, "trainer.precision=bf16-mixed", "training.max_iterations=2",
         f"data.root={corpus_dir}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), capture_output=True, text=True,
        timeout=600, env={**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trainer.precision=bf16-mixed trains in fp32 (32-true)" in result.stdout + result.stderr
    assert (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize("native,batch,requested,hinted", [(True, 64, "32-true", True), (True, 2, "32-true", False),
                                                           (False, 64, "32-true", False),
                                                           pytest.param(True, 64, "bf16-mixed", False,
                                                                        marks=needs_cpu_bf16)])
def test_a_one_line_bf16_hint_where_it_pays(make_cfg, monkeypatch, caplog, native, batch, requested, hinted):
    monkeypatch.setattr(precision, "cpu_bf16_native", lambda: native)
    monkeypatch.setattr(precision, "cpu_bf16_matmul_speedup", lambda: 4.0)
    monkeypatch.setattr(precision, "cpu_bf16_works", lambda: True)
    with caplog.at_level(logging.INFO, logger="avrnn.training"):
        train(make_cfg(f"data.batch_size={batch}", f"trainer.precision={requested}", "trainer.fast_dev_run=1"))
    lines = [r.getMessage() for r in caplog.records if "computes bf16 natively" in r.getMessage()]
    assert len(lines) == int(hinted)
    if hinted:
        assert lines[0].startswith("this CPU computes bf16 natively (a bf16 matrix product 4.0x fp32): at batch 64")
