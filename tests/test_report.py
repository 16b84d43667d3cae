"""src/report.py on a real (tiny) sweep: two configurations x two seeds."""

import csv

import pytest

from avrnn.analysis.sweep_report import report


def test_sweep_report_rows_and_seed_statistics(run_in_process, tmp_path, corpus_dir, tiny):
    sweep = tmp_path / "sweep"
    result = run_in_process("train.py", "-m", "experiment=cmp_avrnn_wgan,cmp_vrnn", "seed=1,2", *tiny,
                            f"data.root={corpus_dir}", "training.max_iterations=2", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-2000:]
    written = report(sweep)
    rows = list(csv.DictReader(open(sweep / "report.csv")))
    assert len(rows) == 4 and {r["seed"] for r in rows} == {"1", "2"}
    assert {r["config"] for r in rows} == {"experiment=cmp_avrnn_wgan", "experiment=cmp_vrnn"}
    assert all(float(r["test/elbo_per_timestep"]) < 0 for r in rows)
    text = (sweep / "report.md").read_text()
    wgan = [float(r["val/elbo_per_timestep"]) for r in rows if r["config"] == "experiment=cmp_avrnn_wgan"]
    mean = sum(wgan) / 2
    assert f"| experiment=cmp_avrnn_wgan | 2 | {mean:.2f} +/- " in text
    assert written[2].read_bytes().startswith(b"\x89PNG")
    with pytest.raises(FileNotFoundError, match="no <run>/metrics.json"):
        report(tmp_path)
