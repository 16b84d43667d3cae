"""Which `trainer.precision` this machine can train in: bf16 falls back to fp32 where it cannot run.

CPUs differ from the one CI runs on: oneDNN on a CPU without native bf16 (e.g. AMD EPYC without
AVX-512) cannot build an LSTM under bf16 autocast ("could not create a primitive descriptor"), and
emulates bf16 elsewhere (a bf16 LSTM step measured 20x slower than fp32 with ONEDNN_MAX_CPU_ISA=AVX2).
So the capability is probed by what fails, a cached try-run of a tiny LSTM, not by a private flag,
and both bf16 modes train in fp32 there, with one log line.
"""

from __future__ import annotations

import functools
import logging

import torch

log = logging.getLogger("avrnn.precision")  # the name before the layout change: log lines and users' logging settings keep it

# What reaches bf16 on a CPU: the bf16 modes, and 16-bit mixed, which Lightning turns into bf16-mixed
# on a CPU by itself (CPU autocast has no fp16).
CPU_BF16_PRECISIONS = {"bf16-mixed", "bf16-true", "bf16", "16-mixed", "16"}
CUDA_ACCELERATORS = ("gpu", "cuda")


@functools.lru_cache(maxsize=None)
def cpu_bf16_works() -> bool:
    """True when an LSTM runs forward and backward under CPU bf16 autocast on this machine.

    The try-run draws no numbers from the global generator (a run's seed stays meaningful)."""
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        lstm = torch.nn.LSTM(4, 8)
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out, _ = lstm(torch.ones(3, 2, 4))
            out.float().sum().backward()
        except RuntimeError as error:  # oneDNN: "could not create a primitive descriptor ..."
            log.debug("CPU bf16 probe failed: %s", error)
            return False
    return True


def runs_on_cpu(accelerator) -> bool:
    """Whether Lightning will put the run on the CPU: asked for, or what `auto` finds."""
    if accelerator == "cpu":
        return True
    if accelerator in (None, "auto"):
        return not (torch.cuda.is_available() or torch.backends.mps.is_available())
    return False


def default_precision(accelerator) -> str:
    """trainer=gpu|ddp's precision: bf16 autocast on a GPU, fp32 on a CPU (CPU bf16 is missing on
    some CPUs, emulated and slow on others; ask for it explicitly where you know it pays). Used by the
    `avrnn_default_precision` resolver."""
    on_cuda = accelerator in CUDA_ACCELERATORS or (accelerator in (None, "auto") and torch.cuda.is_available())
    return "bf16-mixed" if on_cuda else "32-true"


def supported_precision(precision, accelerator):
    """`precision`, or 32-true with one log line where this machine cannot train in bf16."""
    text = str(precision)
    if (accelerator in CUDA_ACCELERATORS and text.startswith("bf16") and torch.cuda.is_available()
            and not torch.cuda.is_bf16_supported()):
        log.warning("%s does not support bf16: trainer.precision=%s trains in fp32 (32-true) instead",
                    torch.cuda.get_device_name(), precision)
        return "32-true"
    if runs_on_cpu(accelerator) and text in CPU_BF16_PRECISIONS and not cpu_bf16_works():
        log.warning("this CPU has no bf16 support (oneDNN cannot run a bf16 LSTM; e.g. AMD EPYC without AVX-512): "
                    "trainer.precision=%s trains in fp32 (32-true) instead", precision)
        return "32-true"
    return precision


NATIVE_BF16_MATMUL_SPEEDUP = 1.5  # a bf16 product this much faster than fp32: the CPU computes bf16 natively


@functools.lru_cache(maxsize=None)
def cpu_bf16_matmul_speedup(n: int = 1024, repeats: int = 5) -> float | None:
    """The rate of an n x n bf16 matrix product over that of fp32 on this CPU (median of `repeats`
    paired timings), or None where bf16 cannot run here (cpu_bf16_works). Native bf16 (AVX-512-BF16,
    AMX) measured 4.4x at n = 2048 on an AMD EPYC; emulated bf16 is no faster than fp32. Draws no
    numbers from the global generator."""
    if not cpu_bf16_works():
        return None
    import time

    with torch.random.fork_rng(devices=[]):
        a32, b32 = torch.randn(n, n), torch.randn(n, n)
    a16, b16 = a32.bfloat16(), b32.bfloat16()

    def seconds(a, b) -> float:
        start = time.perf_counter()
        a @ b
        return time.perf_counter() - start
    seconds(a32, b32), seconds(a16, b16)  # warm-up
    ratios = sorted(seconds(a32, b32) / seconds(a16, b16) for _ in range(repeats))
    return ratios[len(ratios) // 2]


def cpu_bf16_native() -> bool:
    """Whether this CPU computes bf16 products natively (measured: cpu_bf16_matmul_speedup)."""
    speedup = cpu_bf16_matmul_speedup()
    return speedup is not None and speedup >= NATIVE_BF16_MATMUL_SPEEDUP


BF16_HINT_MIN_BATCH = 64  # measured 2.1x (VRNN step) and 1.8x (A-VRNN iteration) at 64 x 200; 1.1-1.2x at 16 x 40


def bf16_hint(precision: str, accelerator, batch_size: int) -> str | None:
    """One line suggesting bf16-mixed where it pays: an fp32 run on a CPU with native bf16 at a batch of
    at least BF16_HINT_MIN_BATCH. fp32 stays the default so that every CPU computes the same numbers
    (bf16 changes a run's trajectory; docs/performance.md)."""
    if str(precision) != "32-true" or not runs_on_cpu(accelerator) or batch_size < BF16_HINT_MIN_BATCH:
        return None
    if not cpu_bf16_native():
        return None
    return (f"this CPU computes bf16 natively (a bf16 matrix product {cpu_bf16_matmul_speedup():.1f}x fp32): at batch "
            f"{batch_size}, trainer.precision=bf16-mixed may train about 2x faster (measured 2.1x for the VRNN step "
            "and 1.8x for the A-VRNN iteration at 64 x 200; docs/performance.md); fp32 stays the default so that "
            "every CPU computes the same numbers")
