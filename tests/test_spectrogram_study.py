"""The spectrogram study's staged queue (tools/study/spectrogram_study.py): grids first, then each arm's
runs at the rate its grid picked on validation."""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "study" / "spectrogram_study.py"


def load():
    spec = importlib.util.spec_from_file_location("spectrogram_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def finished_grid(study, corpus: str, arm: str, scores: dict[Fraction, tuple]) -> dict[str, dict]:
    """Rows of a finished grid: factor -> per-seed best validation ELBO (None: a failed run)."""
    return {study.grid_name(corpus, arm, f, s): {"rc": "0" if v is not None else "1",
                                                   study.PICK_METRIC: "" if v is None else str(v)}
            for f, values in scores.items() for s, v in zip(study.GRID_SEEDS, values)}


def write_csv(study, path: Path, rows: list[dict]) -> None:
    """runs.csv as collect writes it: the study's columns, one row per run."""
    import csv
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, study.COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def names(lines: list[str]) -> list[str]:
    return [entry.split()[0] for entry in lines]


def test_nothing_done_queues_every_grid_point_and_no_final():
    study = load()
    lines = study.queue({})
    assert len(lines) == len(study.CORPORA) * len(study.ARMS) * len(study.GRID) * len(study.GRID_SEEDS)
    assert all("-x" in name for name in names(lines))
    first = lines[0].split()
    assert first[0] == "fsdd-vrnn-x1_27-s101" and first[-2:] == [f"model.optimizer.lr={0.002 / 27:.6g}", "seed=101"]


def test_a_finished_grid_picks_the_best_validation_point_and_queues_its_finals_and_twin():
    study = load()
    done = finished_grid(study, "fsdd", "hybrid", {Fraction(1, 27): (1, 2), Fraction(1, 9): (9, 8),
                                                   Fraction(1, 3): (10, 5), Fraction(1): (None, 20)})
    assert study.pick("fsdd", "hybrid", done) == (list(study.GRID), Fraction(1, 9))  # mean 8.5 > 7.5; failed: -inf
    queued = {entry.split()[0]: entry for entry in study.queue(done)}
    rate = f"model.optimizer.lr={0.002 / 9:.6g}"
    for name, seeds in (("hybrid", 5), ("hybrid_twin", 5), ("hybrid_n5", 3)):
        assert [n for n in queued if n.startswith(f"fsdd-{name}-s")] == [f"fsdd-{name}-s{s}" for s in range(1, seeds + 1)]
        assert rate in queued[f"fsdd-{name}-s1"]
    assert "ablation.adversarial_phases=false" in queued["fsdd-hybrid_twin-s2"]
    assert "critic.n_critic=5" in queued["fsdd-hybrid_n5-s3"]
    assert not any(n.startswith(("fsdd-vrnn-s", "vcc-hybrid-s", "fsdd-conditional-s")) for n in queued)
    assert not any(n in done for n in queued)  # finished runs are not queued again


def test_the_arms_and_twins_are_queued_before_the_critic_strength_cells():
    study = load()
    done = {}
    for arm in study.ARMS:
        done |= finished_grid(study, "fsdd", arm, {f: (2, 2) if f == Fraction(1, 3) else (1, 1) for f in study.GRID})
    queued = [name.rsplit("-s", 1)[0] for name in names(study.queue(done)) if "-x" not in name]
    assert list(dict.fromkeys(queued)) == ["fsdd-vrnn", "fsdd-hybrid", "fsdd-hybrid_twin", "fsdd-conditional",
                                           "fsdd-conditional_twin", "fsdd-hybrid_n5", "fsdd-conditional_n5"]


def test_a_best_point_at_the_grids_edge_extends_it_before_anything_is_picked():
    study = load()
    done = finished_grid(study, "vcc", "conditional", {Fraction(1, 27): (5, 5), Fraction(1, 9): (1, 1),
                                                       Fraction(1, 3): (0, 0), Fraction(1): (-9, -9)})
    grid, picked = study.pick("vcc", "conditional", done)
    assert picked is None and Fraction(1, 81) in grid
    assert "vcc-conditional-x1_81-s101" in names(study.queue(done))
    done |= finished_grid(study, "vcc", "conditional", {Fraction(1, 81): (3, 3)})  # below x1/27: x1/27 is picked
    assert study.pick("vcc", "conditional", done)[1] == Fraction(1, 27)
    twin = next(e for e in study.queue(done) if e.startswith("vcc-conditional_twin-s1 "))
    assert "arm=vrnn" in twin and f"model.optimizer.lr={0.002 / 27:.6g}" in twin


def test_collect_keeps_earlier_sessions_rows_and_adds_this_folders(tmp_path, capsys):
    import csv
    import json
    study = load()
    earlier = tmp_path / "runs.csv"
    write_csv(study, earlier, [{"name": "fsdd-vrnn-x1-s101", "rc": 0, "val/best_elbo_per_timestep": 5.0}])
    runs = tmp_path / "runs"
    (runs / "fsdd-vrnn-x1-s102" / "evaluate").mkdir(parents=True)
    (runs / "fsdd-vrnn-x1-s102.job.json").write_text(json.dumps({"name": "fsdd-vrnn-x1-s102", "rc": 0, "eval_rc": 0}))
    (runs / "fsdd-vrnn-x1-s102" / "metrics.json").write_text(json.dumps({"val/best_elbo_per_timestep": 7.0}))
    (runs / "fsdd-vrnn-x1-s102" / "evaluate" / "metrics.json").write_text(json.dumps({"test/si_sdr_mean": 3.5}))
    (runs / "fsdd-vrnn-x1_3-s101.job.json").write_text(json.dumps({"name": "fsdd-vrnn-x1_3-s101", "rc": 1}))
    study.collect(runs, [earlier])
    written = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert [row["name"] for row in written] == ["fsdd-vrnn-x1-s101", "fsdd-vrnn-x1-s102", "fsdd-vrnn-x1_3-s101"]
    assert written[0]["val/best_elbo_per_timestep"] == "5.0" and written[1]["eval/test/si_sdr_mean"] == "3.5"
    assert written[2]["rc"] == "1" and written[2]["val/best_elbo_per_timestep"] == ""  # failed: kept, not rerun
    assert {"fsdd-vrnn-x1-s101", "fsdd-vrnn-x1_3-s101"} <= set(study.read_done([earlier], runs))


def test_the_report_pairs_arm_and_twin_by_seed_with_the_interval_widened_for_the_pick(tmp_path, capsys):
    study = load()
    path = tmp_path / "runs.csv"
    write_csv(study, path, [
        *({"name": f"fsdd-{name}-s{seed}", "rc": 0, "eval_rc": 0, "eval/test/elbo_per_timestep": value,
           "eval/test/iwae_64_per_timestep": value, "eval/test/fivo_64_per_timestep": value - 1,
           "eval/test/si_sdr_mean": 1.0, "eval/test/pesq_mean": 2.0,
           "eval/test/estoi_mean": 0.5 + (1e-16 if (seed, name) == (3, "hybrid_twin") else 0.0)}
          for seed, (arm, twin) in enumerate([(11.0, 10.0), (22.0, 20.0), (33.0, 30.0)], start=1)
          for name, value in (("hybrid", arm), ("hybrid_twin", twin))),
        {"name": "fsdd-hybrid-s4", "rc": 1}])  # a failed run: in no table
    study.report(path)
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| hybrid - hybrid_twin"))
    # differences 1, 2, 3: mean 2, t(0.975, 2) sd / sqrt(3) = 2.484; picked of 6: t(1 - 0.05/12, 2) = 10.886 -> 6.285
    assert row.startswith("| hybrid - hybrid_twin | the regulariser | 3 | +2.00 [-0.48, 4.48] (of 6: [-4.28, 8.28]) |")
    assert "| +0.00 [0.00, 0.00] (of 6: [0.00, 0.00]) |" in row  # SI-SDR equal in every seed
    assert row.endswith("| +0.000 [0.000, 0.000] (of 6: [0.000, 0.000]) |")  # ESTOI equal but for 1e-16: not -0.000
    assert "\n| hybrid | 3 (1 failed: seed 4) | 22.00 +/- 11.00 | 22.00 +/- 11.00 | 21.00 +/- 11.00 | 1.00 +/- 0.00 |" in out


def test_every_run_of_the_study_composes_and_passes_validation(compose_config, tmp_path):
    """Each corpus with each arm, twin and critic-strength cell: the command line a run gets is a valid config."""
    from avrnn.config import validate
    study = load()
    entries = [study.line(f"{corpus}-{name}-s1", overrides, Fraction(1, 9), 1)
               for corpus in study.CORPORA for name, (_, overrides, _) in study.AT_PICKED_RATE.items()]
    for entry in entries:
        name, *overrides = entry.split()
        cfg = compose_config("config", *study.corpus_overrides(name, tmp_path), *overrides)
        validate(cfg)
        assert cfg.model.optimizer.lr == float(f"{0.002 / 9:.6g}") and cfg.seed == 1
        assert cfg.data.representation.name == "stft" and cfg.model.emission == "itakura_saito"
        if name.startswith("vcc"):
            assert cfg.data.split_lists.test == "splits/test.txt" and cfg.data.root.startswith(str(tmp_path))
    names = [entry.split()[0] for entry in entries]
    assert len(names) == 2 * len(study.AT_PICKED_RATE)


def fake_python(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "python"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return script


def test_a_failed_run_gets_a_record_so_it_is_not_started_again(tmp_path):
    import json
    import os
    import subprocess
    import sys
    runs = tmp_path / "runs"
    runs.mkdir()
    env = {**os.environ, "PYTHON": str(fake_python(tmp_path, "exit 3"))}
    done = subprocess.run([sys.executable, str(SCRIPT), "one", str(tmp_path), str(runs), str(tmp_path),
                           "fsdd-vrnn-x1-s101 arm=vrnn seed=101"], env=env)
    assert done.returncode == 0
    record = json.loads((runs / "fsdd-vrnn-x1-s101.job.json").read_text())
    assert record["rc"] == 3 and record["eval_rc"] is None and record["overrides"] == "arm=vrnn seed=101"
    assert "fsdd-vrnn-x1-s101" in load().read_done([], runs)


def test_a_stopped_run_gets_no_record_and_its_stop_reaches_the_training_once(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    runs = tmp_path / "runs"
    runs.mkdir()
    seen = tmp_path / "signals"
    # a stand-in for train.py: counts the TERMs it gets, exits 143 after the first (as a stopped run does)
    body = (f'trap \'echo TERM >> {seen}; sleep 0.5; exit 143\' TERM\necho started > {seen}.up\n'
            f'while true; do sleep 0.1; done')
    env = {**os.environ, "PYTHON": str(fake_python(tmp_path, body))}
    one = subprocess.Popen([sys.executable, str(SCRIPT), "one", str(tmp_path), str(runs), str(tmp_path),
                            "fsdd-vrnn-x1-s101 arm=vrnn seed=101"], env=env)
    for _ in range(100):
        if (tmp_path / "signals.up").exists():
            break
        time.sleep(0.05)
    one.send_signal(signal.SIGTERM)
    assert one.wait(timeout=20) == 128 + signal.SIGTERM
    assert seen.read_text().split() == ["TERM"]
    assert not (runs / "fsdd-vrnn-x1-s101.job.json").exists()  # resumes next time


def test_a_grid_whose_every_point_failed_picks_nothing():
    study = load()
    done = finished_grid(study, "fsdd", "vrnn", {f: (None, None) for f in study.GRID})
    assert study.pick("fsdd", "vrnn", done) == (list(study.GRID), None)
    assert not any(entry.startswith("fsdd-vrnn-") for entry in study.queue(done))


def test_the_runner_refuses_in_one_line_what_would_fail_every_run(tmp_path):
    """A clone without the corpora beside it would fail each run in seconds and record it as failed."""
    import subprocess
    import sys
    (tmp_path / "clone" / "src").mkdir(parents=True)
    (tmp_path / "clone" / "src" / "train.py").write_text("")
    done = subprocess.run([sys.executable, str(SCRIPT), "run", str(tmp_path / "clone"), str(tmp_path / "runs"),
                           "--shared", str(tmp_path / "shared")], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"error: no corpus folder {tmp_path / 'shared' / 'data' / 'fsdd-3spk'} (--shared: ")
    assert not (tmp_path / "runs").exists()  # nothing started, nothing recorded
    missing = subprocess.run([sys.executable, str(SCRIPT), "queue", "--done", str(tmp_path / "none.csv")],
                             capture_output=True, text=True)
    assert missing.returncode == 1 and missing.stderr.startswith(f"error: --done {tmp_path / 'none.csv'}: no such file")


def test_a_run_stopped_directly_gets_no_record_either(tmp_path):
    """A training run's own stop exit (128 + TERM, INT, USR1 or USR2: it saved) means resume, not failure."""
    import os
    import subprocess
    import sys
    runs = tmp_path / "runs"
    runs.mkdir()
    env = {**os.environ, "PYTHON": str(fake_python(tmp_path, "exit 138"))}  # 128 + SIGUSR1
    done = subprocess.run([sys.executable, str(SCRIPT), "one", str(tmp_path), str(runs), str(tmp_path),
                           "fsdd-vrnn-x1-s101 arm=vrnn seed=101"], env=env)
    assert done.returncode == 138 and not (runs / "fsdd-vrnn-x1-s101.job.json").exists()


def test_a_resumed_runs_wall_time_counts_its_stopped_calls_too(tmp_path):
    import json
    import os
    import subprocess
    import sys
    runs = tmp_path / "runs"
    folder = runs / "fsdd-vrnn-x1-s101"
    folder.mkdir(parents=True)  # train.py makes it; the stand-in below does not
    kept = folder / load().STOPPED_CALLS
    entry = "fsdd-vrnn-x1-s101 arm=vrnn seed=101"
    for body, code in (("sleep 0.4; exit 143", 143), ("sleep 0.4; exit 3", 0)):  # stopped (it saved), then failed
        env = {**os.environ, "PYTHON": str(fake_python(tmp_path, body))}
        done = subprocess.run([sys.executable, str(SCRIPT), "one", str(tmp_path), str(runs), str(tmp_path), entry],
                              env=env)
        assert done.returncode == code
        if code:
            earlier = json.loads(kept.read_text())["wall_s"]
            assert earlier >= 0.4
    record = json.loads((runs / "fsdd-vrnn-x1-s101.job.json").read_text())
    assert record["earlier_wall_s"] == earlier and record["wall_s"] >= earlier + 0.4
    assert not kept.exists()


def test_an_unreadable_record_of_stopped_calls_counts_nothing_and_fails_no_run(tmp_path):
    study = load()
    (tmp_path / "torn.json").write_text('{"wall_s": 12')
    (tmp_path / "odd.json").write_text('{"seconds": 3}')
    assert [study.earlier_seconds(tmp_path / name) for name in ("torn.json", "odd.json", "absent.json")] == [0.0] * 3
    (tmp_path / "whole.json").write_text('{"wall_s": 12.5}\n')
    assert study.earlier_seconds(tmp_path / "whole.json") == 12.5


def test_a_stop_that_comes_while_a_run_is_being_started_still_reaches_it_once(tmp_path, monkeypatch):
    """The signal handler cannot pass a stop on before Popen has returned the process; call() does it then."""
    import signal
    import subprocess
    import threading
    import time
    study = load()
    seen, up = tmp_path / "signals", tmp_path / "up"
    script = tmp_path / "train.sh"
    script.write_text(f"trap 'echo TERM >> {seen}; exit 143' TERM\ntouch {up}\nwhile true; do sleep 0.1; done\n")
    real_popen = subprocess.Popen

    def starting(*args, **kwargs):  # the stop arrives after the child started, before Popen returned
        process = real_popen(*args, **kwargs)
        for _ in range(200):
            if up.exists():
                break
            time.sleep(0.05)
        child._forward(signal.SIGTERM, None)
        threading.Timer(20, process.kill).start()  # without the fix the run never ends: end it, fail below
        return process

    handlers = {sig: signal.getsignal(sig) for sig in study.STOPS}
    try:
        child = study.Child()
        monkeypatch.setattr(study.subprocess, "Popen", starting)
        assert child.call(["sh", str(script)]) == 143
    finally:
        study.Child.stopped = None
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert seen.read_text().split() == ["TERM"]


def test_every_table_of_the_spectrogram_section_of_results_md_is_the_report_of_runs_csv():
    """docs/results.md promises that one command prints its spectrogram tables: a hand edit, a row left
    out or a change to the report shows here."""
    import io
    root = SCRIPT.parents[2]
    printed = io.StringIO()
    load().report(root / "docs" / "spectrogram-study" / "runs.csv", out=printed)
    tables = [block for block in printed.getvalue().split("\n\n") if block.startswith("|")]
    section = (root / "docs" / "results.md").read_text().split("## The spectrogram representation")[1]
    section = section.split("\n## ")[0]
    in_section = [block.strip() for block in section.split("\n\n") if block.startswith("|")]
    assert len(tables) == 6  # per corpus: the rate grid, the runs at the picked rates, the paired differences
    assert in_section[:6] == [table.strip() for table in tables]
    assert len(in_section) == 7 and in_section[6].startswith("| | waveform frames")  # the representations compared
