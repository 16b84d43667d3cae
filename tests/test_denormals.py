"""flush_denormal: subnormal floats flushed to zero on every computing thread, or IEEE kept."""

import logging
import subprocess
import sys

import pytest
import torch

from avrnn.training import denormals
from avrnn.training.fit import train

needs_flush = pytest.mark.skipif(not torch.set_flush_denormal(True), reason="this CPU cannot flush denormals")


@pytest.fixture
def two_threads():
    """torch with 2 intra-op threads whose pool already exists (as in a process that computed before)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    torch.full((1 << 20,), 1.0).mul(2.0)  # starts the worker pool
    yield
    torch.set_num_threads(before)
    denormals.apply(True)  # the default, for the tests that follow


@needs_flush
def test_apply_reaches_every_intra_op_thread(two_threads):
    assert denormals.apply(False) == "IEEE"
    assert denormals.subnormal_survival() == 1.0  # 1e-20 * 1e-20 = 1e-40 stays on both threads
    assert denormals.apply(True) == "flushed"
    assert denormals.subnormal_survival() == 0.0  # and is 0 on both
    assert float(torch.tensor(1e-20) * torch.tensor(1e-20)) == 0.0  # the calling thread too


@needs_flush
def test_flag_set_on_the_calling_thread_only_leaves_an_existing_worker_unflushed():
    """Why apply() goes further than torch.set_flush_denormal: measured in a fresh process."""
    code = ("import torch; from avrnn.training import denormals; torch.set_num_threads(2); torch.full((1 << 20,), 1.).mul(2.);"
            "torch.set_flush_denormal(True); print(denormals.state()); denormals.apply(True); print(denormals.state())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["mixed", "flushed"]


@needs_flush
@pytest.mark.parametrize("flush,state", [(True, "flushed"), (False, "IEEE")])
def test_training_applies_the_switch_and_says_which_is_in_force(make_cfg, two_threads, caplog, flush, state):
    with caplog.at_level(logging.INFO, logger="avrnn.denormals"):
        train(make_cfg("num_threads=2", f"flush_denormal={str(flush).lower()}", "trainer.fast_dev_run=1"))
    assert denormals.state() == state and torch.get_num_threads() == 2
    lines = [r.getMessage() for r in caplog.records if r.name == "avrnn.denormals"]
    assert len(lines) == 1 and lines[0].startswith(f"denormal floats: {'flushed to zero' if flush else 'IEEE'}")


def test_flush_denormal_is_in_the_evaluate_and_generate_configs(compose_config):
    for name in ("config", "evaluate", "generate"):
        assert compose_config(name, "ckpt_path=x").flush_denormal is True


@pytest.mark.parametrize("dtype,view,mantissa_bits", [(torch.float32, torch.int32, 23), (torch.float64, torch.int64, 52),
                                                     (torch.bfloat16, torch.int16, 7), (torch.float16, torch.int16, 10)])
def test_count_subnormal_reads_the_bits(dtype, view, mantissa_bits):
    """Built from bit patterns: a conversion would flush the subnormals where flushing is on."""
    sign, mantissa = -(1 << (torch.iinfo(view).bits - 1)), (1 << mantissa_bits) - 1
    infinity = ((1 << (torch.iinfo(view).bits - 1)) - 1) & ~mantissa  # exponent bits all set
    patterns = [0, sign, 1 << mantissa_bits, 1, mantissa, sign | 1, sign | mantissa, infinity, infinity | 1]
    values = torch.tensor(patterns, dtype=view).view(dtype)
    assert float(values[2]) == torch.finfo(dtype).tiny  # the smallest normal is not counted
    assert denormals.count_subnormal(values) == 4  # 1, mantissa, and both negated
