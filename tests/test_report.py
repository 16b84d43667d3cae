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
    run = next(path for path in sweep.iterdir() if (path / "metrics.json").is_file())
    with pytest.raises(FileNotFoundError, match=f"^{run} is one run's folder \\(its metrics.json is there\\); "):
        report(run)
    for path in sweep.glob("*/metrics.json"):  # as a sweep stopped before any job finished
        path.unlink()
    with pytest.raises(FileNotFoundError) as none_yet:
        report(sweep)
    assert str(none_yet.value).startswith(f"no run of the sweep {sweep} has results yet: ")
    assert str(none_yet.value).endswith("; and 1 more")


def test_failed_jobs_are_named_at_the_end_in_their_logs_and_in_the_report(run_in_process, tmp_path, tiny):
    """The field report: 2 of 4 jobs of a sweep given a mistyped folder (here 2 of 3); the sweep named one of them, their
    logs ended without the error, and report.py reported the surviving seeds as if they were all."""
    import numpy as np
    import soundfile as sf

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rng = np.random.default_rng(0)
    for index in range(8):
        sf.write(str(corpus / f"{index}.wav"), (0.1 * rng.standard_normal(3200)).astype("float32"), 16000)
    sweep = tmp_path / "sweep"
    model = [item for item in tiny if not item.startswith("data.synthetic")]
    result = run_in_process("train.py", "-m", *model, "data=audio_dir", "training.max_iterations=1",
                            f"data.root={corpus},{tmp_path / 'typo'},{tmp_path / 'typo'}", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 2
    folders = {int(path.name.split("_")[0]): path for path in sweep.iterdir() if path.name[0].isdigit()}
    why = f"DataError: data.root {tmp_path / 'typo'} does not exist; set data.root to a folder laid out as any folder"
    line = result.last_line
    assert line.startswith(f"error: the sweep ended with 2 failed jobs: job 1 ({folders[1]}): {why}"), line
    assert f"; job 2 ({folders[2]}): {why}" in line
    for number in (1, 2):
        logs = "".join(path.read_text() for path in folders[number].glob("*.log"))
        assert f"this job of the sweep failed: {why}" in logs
    written = report(sweep)
    text = written[0].read_text()
    assert text.startswith("**Not every run of this sweep has results (below); the means are over the 1 run that "
                           "has.**")
    assert f"- {folders[1].name}: failed: {why}" in text and f"- {folders[2].name}: failed: {why}" in text
    import shutil
    shutil.rmtree(folders[2])
    assert "- 1 of the sweep's 3 jobs never started (no folder)" in report(sweep)[0].read_text()
