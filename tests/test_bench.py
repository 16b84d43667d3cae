"""`make bench` end to end (in-process) on a tiny size: the JSON it writes has the keys the issue asks for."""

import json
import math

import pytest
import torch

from avrnn.training.precision import cpu_bf16_native

REQUIRED = ("reference_fps", "vrnn_fps", "avrnn_fps", "gru_floor_fps", "matmul_gflops", "vrnn_gflops", "device",
            "sizes", "runs")


def test_bench_writes_one_record_per_size(run_in_process, tmp_path):
    output = tmp_path / "bench.json"
    result = run_in_process("bench.py", "--sizes", "2x6,3x4", "--warmup", "0", "--repeats", "2", "--output",
                            str(output), "--device", "cpu", "--processes", "0")
    assert result.returncode == 0, result.stderr[-2000:]
    bench = json.loads(output.read_text())
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
    assert all(set(check) == {"value", "met"} for check in bench["targets"].values())
    for rate, cost in bench["resampling_to_16000"].items():  # odd rates: memory does not grow with the ratio
        assert cost["output_samples"] == 160000, rate  # 10 s at 16 kHz
        assert cost["peak_memory_increase_mb"] is None or cost["peak_memory_increase_mb"] < 64, (rate, cost)
    assert set(bench["resampling_to_16000"]) == {"16001", "44099", "7999"}


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
