"""`make bench` end to end (in-process) on a tiny size: the JSON it writes has the keys the issue asks for."""

import json
import math

import torch

REQUIRED = ("reference_fps", "vrnn_fps", "avrnn_fps", "gru_floor_fps", "matmul_gflops", "vrnn_gflops", "device",
            "sizes", "runs")


def test_bench_writes_one_record_per_size(run_in_process, tmp_path):
    output = tmp_path / "bench.json"
    result = run_in_process("bench.py", "--sizes", "2x6,3x4", "--warmup", "0", "--repeats", "2", "--output",
                            str(output), "--device", "cpu")
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
