"""`make bench` end to end (in-process) on a tiny size: the JSON it writes has the keys the issue asks for."""

import json
import math

import pytest
import torch

from avrnn.training.precision import cpu_bf16_native

REQUIRED = ("reference_fps", "vrnn_fps", "avrnn_fps", "gru_floor_fps", "matmul_gflops", "vrnn_gflops", "device",
            "sizes", "runs")


@pytest.fixture
def benchmark_module(root, monkeypatch):
    monkeypatch.syspath_prepend(str(root / "tools"))
    import benchmark  # tools/benchmark.py, the module src/bench.py runs

    return benchmark


def test_bench_writes_one_record_per_size(run_in_process, tmp_path, benchmark_module, monkeypatch):
    """Run as if another job held the cores (0.4 idle cores at every check): each row is printed as soon as
    its size is measured, and marked untrusted, in the table and in bench.json, with the reason."""
    monkeypatch.setattr(benchmark_module, "idle_cores", lambda interval=1.0: 0.4)
    output = tmp_path / "bench.json"
    result = run_in_process("bench.py", "--sizes", "2x6,3x4", "--warmup", "0", "--repeats", "2", "--output",
                            str(output), "--device", "cpu", "--processes", "0", "--dvae-sizes", "2x3,2x4",
                            "--peer-fps", "3:1e12")
    assert result.returncode == 0, result.stderr[-2000:]
    bench = json.loads(output.read_text())
    lines = result.stdout.splitlines()
    first_row = next(i for i, line in enumerate(lines) if line.startswith("   2 x 6 "))
    second_size = next(i for i, line in enumerate(lines) if line.startswith("bench: size 2 of 2, 3 x 4; about "))
    assert first_row < second_size  # printed as soon as measured, with how long the rest will take
    assert lines[first_row].endswith("UNTRUSTED") and "0.4 of" in lines[0]
    threads = bench["threads"]
    assert bench["trusted"] is False and bench["idle_cores_at_start"] == 0.4
    for run in bench["runs"]:
        assert run["untrusted"][0] == f"0.4 idle cores for {threads} threads when it started"
        assert set(run["repeat_spread"]) == {"reference", "vrnn", "avrnn", "gru_floor"}
    assert bench["untrusted"] == {f"{r['batch']}x{r['T']}": r["untrusted"] for r in bench["runs"]}
    assert f"UNTRUSTED 2x6: 0.4 idle cores for {threads} threads when it started" in result.stdout
    assert all(check["trusted"] is False for check in bench["targets"].values())
    assert all(key in bench for key in REQUIRED)
    assert [(r["batch"], r["T"]) for r in bench["runs"]] == [(2, 6), (3, 4)]
    for run in bench["runs"]:
        for key in ("reference_fps", "vrnn_fps", "avrnn_fps", "gru_floor_fps", "vrnn_fraction_of_matmul",
                    "vrnn_speedup_over_reference", "avrnn_over_vrnn_time", "model_flops_per_frame"):
            assert math.isfinite(run[key]) and run[key] > 0, key
        assert not any("graphed" in key for key in run)  # the GPU options are timed on a GPU only
    assert bench["vrnn_fps"] == bench["runs"][0]["vrnn_fps"]
    assert bench["device"].startswith("cpu") and bench["matmul_gflops"] > 0
    assert "of matmul" in result.stdout and f"wrote {output}" in result.stdout
    assert torch.__version__ == bench["torch"]
    threads = int(bench["device"].split("(")[1].split()[0])
    for run in bench["runs"]:  # batches of 2 and 3 are under the one-thread switch's limit (8)
        assert (run.get("one_thread_switch_speedup", 0) > 0) == (threads > 1)
    assert bench["denormals"] == "flushed" and "denormals flushed" in result.stdout
    native = cpu_bf16_native()
    assert bench["cpu_bf16"] == ("native" if native else "emulated" if bench["cpu_bf16_matmul_speedup"] else "none")
    for run in bench["runs"]:  # bf16-mixed beside fp32 where the CPU has it natively, and only there
        assert ("vrnn_bf16_speedup" in run and "avrnn_bf16_speedup" in run) == native
    assert ("native CPU bf16" in result.stdout) == native and ("no native bf16" in result.stdout) != native
    assert all(set(check) == {"value", "met", "trusted"} for check in bench["targets"].values())
    for rate, cost in bench["resampling_to_16000"].items():  # odd rates: memory does not grow with the ratio
        assert cost["output_samples"] == 160000, rate  # 10 s at 16 kHz
        assert cost["peak_memory_increase_mb"] is None or cost["peak_memory_increase_mb"] < 64, (rate, cost)
    assert set(bench["resampling_to_16000"]) == {"16001", "44099", "7999"}
    dvae = bench["dvae_vrnn"]  # experiment=dvae_vrnn's step against the benchmark code's figure given for T = 3
    assert set(dvae) == {"2x3", "2x4"} and all(entry["frames_per_s"] > 0 for entry in dvae.values())
    assert dvae["2x3"]["speedup_over_peer"] == pytest.approx(dvae["2x3"]["frames_per_s"] / 1e12)
    assert "speedup_over_peer" not in dvae["2x4"] and "--peer-fps T:FPS compares it" in result.stdout
    check = bench["targets"]["dvae_vrnn speedup_over_peer >= 1.5 (every size given --peer-fps)"]
    assert check["value"] == dvae["2x3"]["speedup_over_peer"] and check["met"] is False


@pytest.mark.slow
def test_bench_times_the_avrnn_over_vrnn_ratio_in_separate_processes(run_script, tmp_path):
    output = tmp_path / "bench.json"
    result = run_script("bench.py", "--sizes", "2x6", "--warmup", "0", "--repeats", "2", "--output", str(output),
                        "--device", "cpu", "--processes", "2", "--ieee-denormals")
    assert result.returncode == 0, result.stderr[-2000:]
    bench = json.loads(output.read_text())
    across = bench["avrnn_over_vrnn_across_processes"]["2x6"]
    assert len(across["avrnn_over_vrnn_time"]) == 2 and across["min"] <= across["median"] <= across["max"]
    assert across["spread"] == pytest.approx((across["max"] - across["min"]) / across["median"])
    assert bench["denormals"] == "IEEE"
    spread = bench["targets"]["avrnn_over_vrnn spread across processes <= 0.10 (every size)"]
    assert spread["value"] == across["spread"] and spread["met"] == (across["spread"] <= 0.10)


def test_a_timing_is_distrusted_for_a_wide_spread_or_busy_cores(benchmark_module):
    quiet = {"vrnn": [1.0, 1.1, 1.05], "avrnn": [2.0, 2.1, 2.2]}
    assert benchmark_module.distrust(quiet, idle=2.0, threads=2) == []
    assert benchmark_module.distrust(quiet, idle=1.6, threads=2) == []  # within IDLE_MARGIN
    assert benchmark_module.distrust(quiet, idle=1.0, threads=2) == ["1.0 idle cores for 2 threads when it started"]
    contended = {"vrnn": [1.0, 26.0, 1.1], "avrnn": [2.0, 2.1, 2.2]}  # a descheduled OpenMP partner, once
    assert benchmark_module.distrust(contended, idle=None, threads=2) == [
        "vrnn: repeats spread 2273% of their median (over 50%)"]
    assert benchmark_module.spread([3.0]) == 0.0


def test_a_target_is_untrusted_only_where_the_size_it_reads_is(benchmark_module):
    """The default sizes: 4x200 untrusted, 64x200 trusted (a substring match would mark 64x200's targets)."""
    runs = [{"batch": 64, "T": 200, "untrusted": [], "vrnn_fraction_of_matmul": 0.7, "avrnn_over_vrnn_time": 2.0,
             "vrnn_bf16_speedup": 2.0},
            {"batch": 4, "T": 200, "untrusted": ["1.0 idle cores for 2 threads when it started"],
             "vrnn_speedup_over_reference": 3.0, "avrnn_over_vrnn_time": 2.1}]
    checks = benchmark_module.targets(runs, {})
    assert checks["vrnn_fraction_of_matmul at 64x200 >= 0.61"]["trusted"] is True
    assert checks["vrnn_bf16_speedup at 64x200 >= 1.8 (native bf16 only)"]["trusted"] is True
    assert checks["vrnn_speedup_over_reference at 4x200 >= 2.5"]["trusted"] is False
    assert checks["avrnn_over_vrnn_time <= 2.3 (every size)"]["trusted"] is False  # reads both sizes


def test_idle_cores_counts_only_the_cores_this_process_may_use(benchmark_module, monkeypatch):
    import psutil

    monkeypatch.setattr(psutil, "cpu_percent", lambda interval, percpu: [100.0, 0.0, 25.0, 0.0])  # 4 cores
    monkeypatch.setattr(benchmark_module.os, "sched_getaffinity", lambda pid: {0, 2})  # this job: cores 0 and 2
    assert benchmark_module.idle_cores(0.0) == pytest.approx(0.75)  # core 0 busy, core 2 three-quarters idle
