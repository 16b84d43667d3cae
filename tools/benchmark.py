"""Benchmark: frames/s of the VRNN and A-VRNN training steps against a per-step reference port,
a fused GRU and the machine's matmul rate. Prints a table and writes bench.json (current folder).
Run by src/bench.py (`make bench`); the VRNN's step is avrnn.models.phase_losses.elbo_loss, as in training.

    python src/bench.py                      # the default sizes: batch 64 and 4, T = 200 (= make bench)
    python src/bench.py --sizes 16x100 --repeats 9

frames/s = B * T / seconds per training step (forward, backward, optimizer step); for A-VRNN one
iteration = reconstruction + critic (n_critic = 1) + adversarial phase, each on a batch of B x T.
Medians over --repeats timed steps after --warmup untimed ones. The three ratios with targets are
medians over pairs of neighbouring measurements: each VRNN step against the matmul rate measured
just before and after it, against a reference step run just before it, and each A-VRNN iteration
against a VRNN step run right after it. On a GPU it also times bf16 autocast and CUDA graphs
(training.cuda_graphs), alone and together (keys vrnn_bf16_fps, ...).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import re
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from avrnn.command_line import one_line_errors
from avrnn.data.progress import duration
from avrnn.training import denormals
from avrnn.config import register_configs
from avrnn.training.cuda_graphs import GraphedBackward
from avrnn.models import VRNN, loop_linear, phase_losses
from avrnn.models.reference import reference_terms
from avrnn.training.precision import cpu_bf16_matmul_speedup, cpu_bf16_native
from avrnn.training.fit import build_module

SIZES = dict(input_size=200, hidden_size=256, z_dim=64, x_features=256, z_features=256, mlp_hidden=256)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak so far (Linux: KiB)


def timed(step, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    step()
    sync(device)
    return time.perf_counter() - start


def repeat_seconds(step, warmup: int, repeats: int, device: torch.device) -> list[float]:
    for _ in range(warmup):
        step()
    return [timed(step, device) for _ in range(repeats)]


def median_seconds(step, warmup: int, repeats: int, device: torch.device) -> float:
    return statistics.median(repeat_seconds(step, warmup, repeats, device))


# --- whether a timing can be trusted ----------------------------------------------------------------
SPREAD_LIMIT = 0.5  # (max - min) / median of a timing's repeats; quiet cores stay well under it
IDLE_MARGIN = 0.5  # cores: fewer idle than threads - this, and OpenMP threads wait on a descheduled partner


def spread(seconds: list[float]) -> float:
    """(max - min) / median of a timing's repeats (0 for fewer than two)."""
    return (max(seconds) - min(seconds)) / statistics.median(seconds) if len(seconds) > 1 else 0.0


def idle_cores(interval: float = 1.0) -> float:
    """Of the cores this process may run on (its CPU set: SLURM, a container, taskset), how many other
    processes left idle over `interval` seconds (this one sleeps meanwhile)."""
    import psutil

    busy = psutil.cpu_percent(interval=interval, percpu=True)
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else range(len(busy))
    return sum(100.0 - busy[core] for core in allowed if core < len(busy)) / 100.0


def distrust(repeats: dict[str, list[float]], idle: float | None, threads: int) -> list[str]:
    """Why the timings of one size cannot be taken as this machine's speed (empty: they can): a timing
    whose repeats spread over SPREAD_LIMIT of their median, or fewer idle cores than threads when the
    size started (another job holds a core: seen, a 1 s step measured as 26 s)."""
    reasons = []
    if idle is not None and idle < threads - IDLE_MARGIN:
        reasons.append(f"{idle:.1f} idle cores for {threads} threads when it started")
    for name, seconds in repeats.items():
        if spread(seconds) > SPREAD_LIMIT:
            reasons.append(f"{name}: repeats spread {spread(seconds):.0%} of their median (over {SPREAD_LIMIT:.0%})")
    return reasons


def elbo_loss(model: VRNN, reference: bool = False):
    """loss_fn(x, mask) -> (-ELBO per timestep, terms): the VRNN's training loss
    (avrnn.models.phase_losses.elbo_loss), by the fused pass or by the per-step reference."""
    if not reference:
        return functools.partial(phase_losses.elbo_loss, model)

    def loss_fn(x, mask):
        rec, kl = reference_terms(model, x, mask)
        return phase_losses.negative_elbo(rec, kl, mask)
    return loss_fn


def elbo_step(model: VRNN, optimizer, x, mask, reference: bool, bf16: bool = False):
    loss_fn = elbo_loss(model, reference)

    def step():
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, _ = loss_fn(x, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return step


def graphed_elbo_step(model: VRNN, optimizer, x, mask, bf16: bool = False):
    """The VRNN step with forward and backward replayed as a CUDA graph (training.cuda_graphs)."""
    graphed = GraphedBackward(elbo_loss(model, reference=False), list(model.parameters()), "elbo")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            graphed(x, mask)
        optimizer.step()
    return step


def gru_step(batch: int, steps: int, device: torch.device):
    gru = torch.nn.GRU(SIZES["x_features"] + SIZES["z_features"], SIZES["hidden_size"], batch_first=True).to(device)
    inputs = torch.randn(batch, steps, SIZES["x_features"] + SIZES["z_features"], device=device)

    def step():
        out, _ = gru(inputs)
        out.sum().backward()
    return step


def matmul_meter(device: torch.device, n: int = 2048):
    """() -> the dense fp32 matmul rate in GFLOP/s right now (n x n products; 20 of them on a GPU)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    products = 20 if device.type == "cuda" else 1

    def rate() -> float:
        return 2 * n**3 * products / timed(lambda: [a @ b for _ in range(products)], device) / 1e9
    rate()
    return rate


def without_one_thread_switch(step):
    """`step` with the loop's one-thread switch off (as AVRNN_ONE_THREAD_MAX_ROWS=0 would set it)."""
    def switched_off():
        limit, loop_linear.ONE_THREAD_MAX_ROWS = loop_linear.ONE_THREAD_MAX_ROWS, 0
        try:
            step()
        finally:
            loop_linear.ONE_THREAD_MAX_ROWS = limit
    return switched_off


def alternating_seconds(first, second, warmup: int, repeats: int, device: torch.device):
    """Seconds of `first` and of `second`, run in turn (neighbouring measurements, for their ratio)."""
    for _ in range(warmup):
        first()
        second()
    pairs = [(timed(first, device), timed(second, device)) for _ in range(repeats)]
    return [a for a, _ in pairs], [b for _, b in pairs]


def paired_with_matmul(step, matmul_rate, warmup: int, repeats: int, device: torch.device):
    """Seconds of each timed step and the matmul rate measured around it (mean of just before and
    just after). On a shared host the rate moves within seconds (here 101 to 187 GFLOP/s in 20 s),
    so a step is judged against what the cores delivered at that moment, not at the run's start."""
    for _ in range(warmup):
        step()
    seconds, rates = [], []
    for _ in range(repeats):
        before = matmul_rate()
        seconds.append(timed(step, device))
        rates.append((before + matmul_rate()) / 2)
    return seconds, rates


class _SameBatch(Dataset):
    def __init__(self, length: int):
        self.length = length

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        return index


class _StepTimer(pl.Callback):
    """Times each training iteration and, after it, one call of `between` (the VRNN step), so that
    the A-VRNN / VRNN ratio compares neighbouring measurements."""

    def __init__(self, device, between=None):
        self.device, self.between, self.times, self.between_times, self.start = device, between, [], [], 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        sync(self.device)
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        sync(self.device)
        self.times.append(time.perf_counter() - self.start)
        if self.between is not None:
            self.between_times.append(timed(self.between, self.device))


def avrnn_config(conf_dir: Path, *overrides: str):
    """The default training config (model=avrnn critic=wgan) at the benchmark's sizes."""
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        sizes = [f"model.{key}={value}" for key, value in SIZES.items() if key != "input_size"]
        cfg = compose(config_name="config", overrides=[f"data.frame_size={SIZES['input_size']}", *sizes,
                                                       "data.root=unused", *overrides])
    GlobalHydra.instance().clear()
    return cfg


def avrnn_seconds(conf_dir: Path, batch: int, steps: int, device: torch.device, warmup: int, repeats: int,
                  cuda_graphs: bool = False, precision: str = "32-true", between=None, keep: list | None = None):
    """One full A-VRNN iteration through Lightning (what training really runs), n_critic = 1: the
    median seconds; with `between`, also the median ratio to the time of `between` run after each;
    `keep` receives every timed iteration's seconds."""
    module = build_module(avrnn_config(conf_dir, f"training.cuda_graphs={cuda_graphs}",
                                       f"training.max_iterations={warmup + repeats}"))
    assert module.phases == ["reconstruction", "critic", "adversarial"], module.phases  # times what A-VRNN runs
    x = torch.randn(batch, steps, SIZES["input_size"])
    batches = [(x, torch.ones(batch, steps))] * 3
    loader = DataLoader(_SameBatch(warmup + repeats), batch_size=1, collate_fn=lambda _: batches)
    timer = _StepTimer(device, between)
    trainer = pl.Trainer(accelerator=device.type, devices=1, max_epochs=1, logger=False, callbacks=[timer],
                         precision=precision,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, train_dataloaders=loader)
    seconds = statistics.median(timer.times[warmup:])
    if keep is not None:
        keep.extend(timer.times[warmup:])
    if between is None:
        return seconds
    return seconds, statistics.median(a / b for a, b in zip(timer.times[warmup:], timer.between_times[warmup:]))


def dvae_config_fps(conf_dir: Path, sizes: list[tuple[int, int]], device: torch.device, warmup: int, repeats: int,
                    peer_fps: dict[int, float]) -> dict:
    """frames/s of one training step (the fused -ELBO, backward, Adam) of experiment=dvae_vrnn on one CPU thread
    (or the GPU), per size; with `peer_fps` (T -> the DVAE benchmark code's training frames/s on the same CPU and
    thread, measured by running it: docs/dvae-parity.md), the speed-up over it."""
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=dvae_vrnn", "data.root=unused"])
    GlobalHydra.instance().clear()
    from omegaconf import OmegaConf
    from avrnn.models.vrnn import VRNNConfig

    threads, result = torch.get_num_threads(), {}
    torch.set_num_threads(1)
    try:
        for batch, steps in sizes:
            torch.manual_seed(0)
            model = VRNN(VRNNConfig.from_dict(OmegaConf.to_container(cfg.model, resolve=True))).to(device)
            optimizer = torch.optim.Adam(model.parameters(), lr=cfg.model.optimizer.lr)
            x = torch.randn(batch, steps, model.config.input_size, device=device).pow(2)  # powers
            seconds = repeat_seconds(elbo_step(model, optimizer, x, torch.ones(batch, steps, device=device), False),
                                     warmup, repeats, device)
            fps = batch * steps / statistics.median(seconds)
            entry = {"frames_per_s": fps, "spread": spread(seconds)}
            if steps in peer_fps:
                entry.update(peer_frames_per_s=peer_fps[steps], speedup_over_peer=fps / peer_fps[steps])
            result[f"{batch}x{steps}"] = entry
    finally:
        torch.set_num_threads(threads)
    return result


def run_size(conf_dir: Path, batch: int, steps: int, device: torch.device, warmup: int, repeats: int,
             matmul_rate, idle: float | None = None, say=print) -> dict:
    """Every timing of one size (B x T), with whether it can be trusted (`distrust`; `idle`: idle cores
    when it started); `say` tells what is being measured."""
    torch.manual_seed(0)
    model = VRNN(**SIZES).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(batch, steps, SIZES["input_size"], device=device)
    mask = torch.ones(batch, steps, device=device)
    frames = batch * steps
    with FlopCounterMode(display=False) as counter:
        elbo_step(model, optimizer, x, mask, reference=True)()
    flops_per_frame = counter.get_total_flops() / frames
    record = {"batch": batch, "T": steps, "frames_per_step": frames, "model_flops_per_frame": flops_per_frame}
    vrnn_step = elbo_step(model, optimizer, x, mask, False)
    say(f"  {batch} x {steps}: the VRNN step, paired with the matmul rate ({repeats} repeats)")
    vrnn_seconds, matmul_rates = paired_with_matmul(vrnn_step, matmul_rate, warmup, repeats, device)
    say(f"  {batch} x {steps}: the A-VRNN iteration through Lightning")
    avrnn_repeats: list[float] = []
    avrnn, avrnn_over_vrnn = avrnn_seconds(conf_dir, batch, steps, device, warmup, repeats, between=vrnn_step,
                                           keep=avrnn_repeats)
    say(f"  {batch} x {steps}: the per-step reference and the GRU floor")
    reference_seconds, vrnn_after_reference = alternating_seconds(
        elbo_step(model, optimizer, x, mask, True), vrnn_step, warmup, repeats, device)
    gru_seconds = repeat_seconds(gru_step(batch, steps, device), warmup, repeats, device)
    timings = {
        "reference": statistics.median(reference_seconds),
        "vrnn": statistics.median(vrnn_seconds),
        "gru_floor": statistics.median(gru_seconds),
        "avrnn": avrnn,
    }
    repeated = {"reference": reference_seconds, "vrnn": vrnn_seconds, "avrnn": avrnn_repeats, "gru_floor": gru_seconds}
    record["repeat_spread"] = {name: spread(seconds) for name, seconds in repeated.items()}
    record["idle_cores_at_start"] = idle
    record["untrusted"] = distrust(repeated, idle, torch.get_num_threads() if device.type == "cpu" else 1)
    if device.type == "cpu" and cpu_bf16_native():  # native bf16: bf16-mixed beside fp32, paired
        say(f"  {batch} x {steps}: bf16-mixed beside fp32 (this CPU has native bf16)")
        bf16_seconds, fp32_seconds = alternating_seconds(elbo_step(model, optimizer, x, mask, False, bf16=True),
                                                         vrnn_step, warmup, repeats, device)
        timings["vrnn_bf16"] = statistics.median(bf16_seconds)
        record["vrnn_bf16_speedup"] = statistics.median(f / b for b, f in zip(bf16_seconds, fp32_seconds))
        timings["avrnn_bf16"], record["avrnn_bf16_over_vrnn_time"] = avrnn_seconds(
            conf_dir, batch, steps, device, warmup, repeats, precision="bf16-mixed", between=vrnn_step)
        record["avrnn_bf16_speedup"] = avrnn_over_vrnn / record["avrnn_bf16_over_vrnn_time"]  # both against fp32 VRNN
    if device.type == "cuda":  # the GPU options (docs/performance.md): bf16 autocast and CUDA graphs
        say(f"  {batch} x {steps}: the GPU options (bf16 autocast, CUDA graphs)")
        timings.update({
            "vrnn_bf16": median_seconds(elbo_step(model, optimizer, x, mask, False, bf16=True), warmup, repeats,
                                        device),
            "vrnn_graphed": median_seconds(graphed_elbo_step(model, optimizer, x, mask), warmup, repeats, device),
            "vrnn_graphed_bf16": median_seconds(graphed_elbo_step(model, optimizer, x, mask, bf16=True), warmup,
                                                repeats, device),
            "avrnn_bf16": avrnn_seconds(conf_dir, batch, steps, device, warmup, repeats, precision="bf16-mixed"),
            "avrnn_graphed": avrnn_seconds(conf_dir, batch, steps, device, warmup, repeats, cuda_graphs=True),
            "avrnn_graphed_bf16": avrnn_seconds(conf_dir, batch, steps, device, warmup, repeats, cuda_graphs=True,
                                                precision="bf16-mixed"),
        })
    for name, seconds in timings.items():
        record[f"{name}_fps"] = frames / seconds
        record[f"{name}_seconds_per_step"] = seconds
    record["vrnn_gflops"] = flops_per_frame * record["vrnn_fps"] / 1e9
    record["reference_gflops"] = flops_per_frame * record["reference_fps"] / 1e9
    record["matmul_gflops_around_vrnn"] = statistics.median(matmul_rates)
    # ratios: medians over pairs of neighbouring measurements (see paired_with_matmul)
    record["vrnn_fraction_of_matmul"] = statistics.median(
        flops_per_frame * frames / seconds / 1e9 / rate for seconds, rate in zip(vrnn_seconds, matmul_rates))
    record["vrnn_speedup_over_reference"] = statistics.median(
        r / v for r, v in zip(reference_seconds, vrnn_after_reference))
    record["avrnn_over_vrnn_time"] = avrnn_over_vrnn
    if device.type == "cpu" and torch.get_num_threads() > 1 and batch <= loop_linear.ONE_THREAD_MAX_ROWS:
        # the one-thread switch was measured on one CPU; this says whether it pays on the one at hand
        say(f"  {batch} x {steps}: the one-thread switch on and off")
        with_switch, without_switch = alternating_seconds(vrnn_step, without_one_thread_switch(vrnn_step), warmup,
                                                          repeats, device)
        record["one_thread_switch_speedup"] = statistics.median(b / a for a, b in zip(with_switch, without_switch))
    record["peak_memory_mb"] = peak_memory_mb(device)
    return record


def ratio_in_this_process(conf_dir: Path, batch: int, steps: int, device: torch.device, warmup: int,
                          repeats: int) -> dict:
    """The A-VRNN iteration's time over the VRNN step's, measured in this process (one of --processes)."""
    torch.manual_seed(0)
    model = VRNN(**SIZES).to(device)
    x = torch.randn(batch, steps, SIZES["input_size"], device=device)
    vrnn_step = elbo_step(model, torch.optim.Adam(model.parameters(), lr=1e-4), x, torch.ones(batch, steps,
                                                                                              device=device), False)
    seconds, ratio = avrnn_seconds(conf_dir, batch, steps, device, warmup, repeats, between=vrnn_step)
    return {"avrnn_over_vrnn_time": ratio, "avrnn_fps": batch * steps / seconds}


def across_processes(args, processes: int) -> dict:
    """--ratio-only in `processes` fresh processes, one after the other: how far the A-VRNN / VRNN ratio
    moves from process to process (each ratio is paired within its process, so host speed cancels)."""
    command = [sys.executable, sys.argv[0], "--ratio-only", "--sizes", args.sizes, "--warmup", str(args.warmup),
               "--repeats", str(args.repeats), "--device", args.device,
               *(["--ieee-denormals"] if args.ieee_denormals else [])]
    per_process = []
    for _ in tqdm(range(processes), desc="A-VRNN / VRNN in separate processes", unit="process"):
        result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        if result.returncode:
            raise RuntimeError(f"bench --ratio-only failed: {result.stderr[-2000:]}")
        per_process.append(json.loads(result.stdout.strip().splitlines()[-1]))
    summary = {}
    for size in per_process[0]:
        ratios = [record[size]["avrnn_over_vrnn_time"] for record in per_process]
        median = statistics.median(ratios)
        summary[size] = {"avrnn_over_vrnn_time": ratios, "median": median, "min": min(ratios), "max": max(ratios),
                         "spread": (max(ratios) - min(ratios)) / median,
                         "avrnn_fps": [record[size]["avrnn_fps"] for record in per_process]}
    return summary


ODD_RATES = (16001, 44099, 7999)  # Hz, read at 16 kHz: coprime with it, the costly case of a polyphase kernel


def _resident_peak_mb() -> float:
    """This process's peak resident memory (VmHWM) in MB, Linux; nan elsewhere."""
    try:
        with open("/proc/self/status") as status:
            return next(float(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM"))
    except (OSError, StopIteration):
        return float("nan")


def _reset_resident_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # resets VmHWM to the current resident size (Linux)
        return True
    except OSError:
        return False


def resampling_cost(seconds: float = 10.0) -> dict:
    """Seconds and peak memory of resampling `seconds` of audio at each odd rate to 16 kHz
    (avrnn.data.audio.resample, as data loading does)."""
    from avrnn.data.audio import resample

    result = {}
    for rate in ODD_RATES:
        wave = torch.randn(int(seconds * rate)).numpy() * 0.1
        reset = _reset_resident_peak()
        before = _resident_peak_mb()
        start = time.perf_counter()
        out = resample(wave, rate, 16000)
        elapsed = time.perf_counter() - start
        result[str(rate)] = {"seconds": elapsed, "audio_seconds": seconds, "output_samples": len(out),
                             "peak_memory_increase_mb": _resident_peak_mb() - before if reset else None}
    return result


HEADER = (f"{'B x T':>9} {'reference':>10} {'vrnn':>10} {'avrnn':>10} {'gru floor':>10}  (frames/s)"
          f" {'vrnn GFLOP/s':>13} {'of matmul':>9} {'speed-up':>8} {'avrnn/vrnn':>10} {'peak MB':>8}  trust")


UNDER_LOAD = " [UNTRUSTED: measured under load; rerun on quiet cores before acting on it]"


def row(r: dict) -> str:
    """One size's line of the table; `UNTRUSTED` where `distrust` found a reason (listed below the table)."""
    return (f"{r['batch']:>4} x {r['T']:<3} {r['reference_fps']:>10.0f} {r['vrnn_fps']:>10.0f} {r['avrnn_fps']:>10.0f} "
            f"{r['gru_floor_fps']:>10.0f}             {r['vrnn_gflops']:>13.1f} {r['vrnn_fraction_of_matmul']:>9.0%} "
            f"{r['vrnn_speedup_over_reference']:>7.2f}x {r['avrnn_over_vrnn_time']:>9.2f}x {r['peak_memory_mb']:>8.0f}  "
            + ("UNTRUSTED" if r["untrusted"] else "ok"))


def targets(runs: list[dict], processes: dict, dvae: dict | None = None) -> dict:
    """The speed issue's targets, each with its measured value and whether it is met (None: not measured
    here). fp32: not slower than the AMD EPYC figures of that issue."""
    by_size = {f"{r['batch']}x{r['T']}": r for r in runs}

    def at(size, key):
        return by_size.get(size, {}).get(key)

    def trusted(name):  # the sizes a check reads: the one it names (a whole word: 4x200 is not 64x200), or all
        sizes = [size for size in by_size if re.search(rf"(?<![\w.]){re.escape(size)}\b", name)] or list(by_size)
        return not any(by_size[size]["untrusted"] for size in sizes)
    checks = {
        "avrnn_over_vrnn spread across processes <= 0.10 (every size)":
            max((p["spread"] for p in processes.values()), default=None),
        "vrnn_bf16_speedup at 64x200 >= 1.8 (native bf16 only)": at("64x200", "vrnn_bf16_speedup"),
        "vrnn_fraction_of_matmul at 64x200 >= 0.61": at("64x200", "vrnn_fraction_of_matmul"),
        "vrnn_speedup_over_reference at 4x200 >= 2.5": at("4x200", "vrnn_speedup_over_reference"),
        "avrnn_over_vrnn_time <= 2.3 (every size)": max((r["avrnn_over_vrnn_time"] for r in runs), default=None),
        "dvae_vrnn speedup_over_peer >= 1.5 (every size given --peer-fps)":
            min((r["speedup_over_peer"] for r in (dvae or {}).values() if "speedup_over_peer" in r), default=None),
    }
    result = {}
    for name, value in checks.items():
        bound = float(name.split("= ")[1].split()[0])
        met = None if value is None else value <= bound if "<=" in name else value >= bound
        result[name] = {"value": value, "met": met, "trusted": trusted(name)}
    return result


def main(conf_dir: Path) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="64x200,4x200", help="comma-separated BATCHxT (default: 64x200,4x200)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default="bench.json")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--processes", type=int, default=5,
                        help="also time the A-VRNN / VRNN ratio in this many fresh processes (0: not)")
    parser.add_argument("--ieee-denormals", action="store_true",
                        help="keep IEEE subnormal floats (training's flush_denormal=false); default: flushed")
    # experiment=dvae_vrnn's batches: 128 sequences of 16 frames (the parity run on spoken digits) and of 50 (the
    # benchmark's own sequence length), 513 STFT bins; timed on one thread, as the parity runs train
    parser.add_argument("--dvae-sizes", default="128x16,128x50", help="BATCHxT of the experiment=dvae_vrnn step")
    parser.add_argument("--peer-fps", default="",
                        help="T:FPS,...: the DVAE benchmark code's training frames/s at sequence length T, measured "
                             "on this CPU and one thread (docs/dvae-parity.md), e.g. 16:5016,50:3369; the "
                             "experiment=dvae_vrnn step is then checked against 1.5x it")
    parser.add_argument("--ratio-only", action="store_true", help=argparse.SUPPRESS)  # one of --processes
    args = one_line_errors(parser, "python src/bench.py --help").parse_args()
    device = torch.device(args.device)
    denormal_state = denormals.apply(not args.ieee_denormals)
    sizes = [tuple(int(v) for v in size.lower().split("x")) for size in args.sizes.split(",")]
    if args.ratio_only:
        print(json.dumps({f"{b}x{t}": ratio_in_this_process(conf_dir, b, t, device, args.warmup, args.repeats)
                          for b, t in sizes}))
        return
    say = functools.partial(print, flush=True)
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)  # its start-up lines, once per Trainer
    warnings.filterwarnings("ignore", message=".*val_dataloader.*")  # the timed Trainer has no validation data
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    threads = torch.get_num_threads() if device.type == "cpu" else 1
    idle = idle_cores() if device.type == "cpu" else None
    say(f"bench: {name}, torch {torch.__version__}; timing sizes {args.sizes} (B x T), {args.warmup} warm-up and "
        f"{args.repeats} timed repeats each" + (f", then the A-VRNN / VRNN ratio in {args.processes} fresh processes"
                                                if args.processes else "")
        + (f"; {idle:.1f} of its {len(os.sched_getaffinity(0))} cores idle" if idle is not None else ""))
    if idle is not None and idle < threads - IDLE_MARGIN:
        say(f"bench: warning: {idle:.1f} idle cores for {threads} threads: another job is running, and timings now "
            "measure the contention, not the CPU; they are marked untrusted (stop the other job, or run with "
            "OMP_NUM_THREADS / fewer threads)")
    rate = matmul_meter(device)
    rates = []

    def matmul_rate() -> float:
        rates.append(rate())
        return rates[-1]
    runs, started = [], time.perf_counter()
    for index, (batch, steps) in enumerate(sizes):
        done, remaining = sum(b * t for b, t in sizes[:index]), sum(b * t for b, t in sizes[index:])
        elapsed = time.perf_counter() - started
        left = f"; about {duration(elapsed / done * remaining)} left for the sizes (by frames)" if done else ""
        say(f"bench: size {index + 1} of {len(sizes)}, {batch} x {steps}{left}")
        size_idle = idle if index == 0 else idle_cores() if device.type == "cpu" else None
        runs.append(run_size(conf_dir, batch, steps, device, args.warmup, args.repeats, matmul_rate, size_idle, say))
        if index == 0:
            say(HEADER)
        say(row(runs[-1]))
    processes = across_processes(args, args.processes) if args.processes else {}
    say("bench: experiment=dvae_vrnn's training step, one thread")
    try:
        peer_fps = {int(t): float(f) for t, f in (item.split(":") for item in args.peer_fps.split(",") if item)}
    except ValueError:
        parser.error(f"--peer-fps={args.peer_fps!r}: give T:FPS pairs, e.g. 16:5016,50:3369")
    dvae_sizes = [tuple(int(v) for v in size.lower().split("x")) for size in args.dvae_sizes.split(",")]
    dvae = dvae_config_fps(conf_dir, dvae_sizes, device, args.warmup, args.repeats, peer_fps)
    say("bench: resampling 10 s of audio at odd rates")
    resampling = resampling_cost()
    matmul = statistics.median(rates)
    bf16 = cpu_bf16_matmul_speedup() if device.type == "cpu" else None
    untrusted = {f"{r['batch']}x{r['T']}": r["untrusted"] for r in runs if r["untrusted"]}
    result = {"device": name, "torch": torch.__version__, "matmul_gflops": matmul, "sizes": SIZES,
              "denormals": denormal_state, "cpu_bf16_matmul_speedup": bf16,
              "cpu_bf16": None if device.type != "cpu" else "native" if cpu_bf16_native() else
              "emulated" if bf16 is not None else "none",
              "units": "frames/s = B*T / seconds per training step; GFLOP/s = model FLOPs per frame x frames/s",
              "trusted": not untrusted, "untrusted": untrusted, "idle_cores_at_start": idle, "threads": threads,
              **{k: runs[0][k] for k in ("reference_fps", "vrnn_fps", "avrnn_fps", "gru_floor_fps", "vrnn_gflops")},
              "runs": runs, "avrnn_over_vrnn_across_processes": processes, "dvae_vrnn": dvae,
              "targets": targets(runs, processes, dvae),
              "resampling_to_16000": resampling}
    with open(args.output, "w") as handle:
        json.dump(result, handle, indent=2)
    print(f"device {name}, torch {torch.__version__}, dense fp32 matmul {matmul:.0f} GFLOP/s "
          f"(median; {min(rates):.0f} to {max(rates):.0f} over the run); denormals {denormal_state}")
    print(HEADER)
    for r in runs:
        print(row(r))
    for size, entry in dvae.items():
        print(f"experiment=dvae_vrnn {size} (one thread): {entry['frames_per_s']:.0f} frames/s" + (
            f", {entry['speedup_over_peer']:.2f}x the DVAE benchmark code's {entry['peer_frames_per_s']:.0f}"
            if "speedup_over_peer" in entry else " (--peer-fps T:FPS compares it with the benchmark's code)"))
    for size, reasons in untrusted.items():
        print(f"UNTRUSTED {size}: {'; '.join(reasons)}: these figures measure this machine's load, not its speed; "
              "rerun on quiet cores")
    if device.type == "cpu":
        if result["cpu_bf16"] == "native":
            print(f"native CPU bf16 (a bf16 matmul {bf16:.1f}x fp32): trainer.precision=bf16-mixed, frames/s "
                  "(x the fp32 step of the same model, paired):")
            for r in runs:
                print(f"{r['batch']:>4} x {r['T']:<3} vrnn {r['vrnn_bf16_fps']:.0f} ({r['vrnn_bf16_speedup']:.2f}x), "
                      f"avrnn {r['avrnn_bf16_fps']:.0f} ({r['avrnn_bf16_speedup']:.2f}x)" + UNDER_LOAD * bool(r["untrusted"]))
        else:
            print(f"this CPU has no native bf16 ({result['cpu_bf16']}"
                  + (f": a bf16 matmul runs at {bf16:.2f}x fp32" if bf16 is not None else ": oneDNN cannot run it")
                  + "): bf16-mixed not timed; train in fp32")
    gpu_options = [k[:-4] for k in runs[0] if k.endswith("_fps") and k.split("_")[0] in ("vrnn", "avrnn")
                   and k not in ("vrnn_fps", "avrnn_fps")]
    if gpu_options and device.type == "cuda":
        print("GPU options, frames/s (x the eager fp32 step of the same model):")
        for r in runs:
            cells = [f"{k} {r[k + '_fps']:.0f} ({r[k + '_fps'] / r[k.split('_')[0] + '_fps']:.2f}x)" for k in gpu_options]
            print(f"{r['batch']:>4} x {r['T']:<3} " + ", ".join(cells))
    for r in runs:
        if "one_thread_switch_speedup" in r:
            print(f"{r['batch']:>4} x {r['T']:<3} one-thread switch (AVRNN_ONE_THREAD_MAX_ROWS, docs/performance.md): "
                  f"the VRNN step takes {1 / r['one_thread_switch_speedup']:.2f}x the time with it as without (above 1: "
                  "set AVRNN_ONE_THREAD_MAX_ROWS=0)" + UNDER_LOAD * bool(r["untrusted"]))
    for size, p in processes.items():
        print(f"{size:>9} A-VRNN / VRNN in {len(p['avrnn_over_vrnn_time'])} processes: median {p['median']:.2f}x, "
              f"{p['min']:.2f}x to {p['max']:.2f}x (spread {p['spread']:.0%} of the median)")
    for rate, cost in resampling.items():
        memory = "n/a" if cost["peak_memory_increase_mb"] is None else f"{cost['peak_memory_increase_mb']:.0f} MB"
        print(f"resampling {cost['audio_seconds']:.0f} s of audio {rate} -> 16000 Hz: {cost['seconds']:.3f} s, "
              f"peak memory +{memory}")
    for target, check in result["targets"].items():
        value = "not measured here" if check["value"] is None else f"{check['value']:.3g}"
        verdict = "" if check["met"] is None else " (met" if check["met"] else " (NOT met"
        verdict += "" if not verdict else ")" if check["trusted"] else "; UNTRUSTED: measured under load)"
        print(f"target {target}: {value}{verdict}")
    print(f"wrote {args.output}")
