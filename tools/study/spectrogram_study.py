"""The study's controls in the spectrogram representation (docs/spectrogram-study.md): list, run and
collect its runs.

    python tools/study/spectrogram_study.py queue [--done runs.csv ...]     # NAME OVERRIDES... per ready run
    python tools/study/spectrogram_study.py run CLONE RUNS_DIR [--done docs/spectrogram-study/runs.csv]
    python tools/study/spectrogram_study.py collect RUNS_DIR --done docs/spectrogram-study/runs.csv > merged.csv
    python tools/study/spectrogram_study.py report docs/spectrogram-study/runs.csv   # the tables of docs/results.md

Every run is `src/train.py experiment=dvae_vrnn <corpus> <arm> model.optimizer.lr=<rate> seed=<k>` from
the frozen clone CLONE, one thread, fp32, then `src/evaluate.py` on its best-validation checkpoint (IWAE-64,
FIVO-64, SI-SDR, PESQ, ESTOI). The plan is staged: first each arm's likelihood rate on a grid (seeds 101
and 102, the finals' length); once an arm's grid has finished on a corpus, its rate is the grid point
with the highest mean best-validation ELBO (a best point at the grid's edge adds the next point beyond
it first), and its finals, its twin and its critic-strength cell at that rate become ready (seeds 1-5
or 1-3). `queue` lists what is ready and not done (done: a run folder with a job record here, or a
row of a --done CSV); `run` keeps two jobs going, re-reading the queue as runs finish, and skips
finished runs, so the same command resumes a study.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

from avrnn.data import files  # records written whole or not at all

BASE_RATE = 0.002  # the benchmark config's Adam rate (conf/experiment/dvae_vrnn.yaml)
GRID = (Fraction(1, 27), Fraction(1, 9), Fraction(1, 3), Fraction(1))  # x BASE_RATE
EXTEND = Fraction(3)  # a best point at the grid's edge adds the next point, x3 beyond it
MAX_EXTENSIONS = 2
GRID_SEEDS = (101, 102)  # apart from the finals' seeds: a rate picked on them does not favour a final

COMMON = ["experiment=dvae_vrnn", "data=audio_dir", "trainer.precision=32-true", "num_threads=1",
          "training.audio_every_n_epochs=0", "trainer.enable_progress_bar=false"]
CORPORA = {  # corpus -> its overrides, str.format templates (`{shared}`: the shared folder beside the clone)
    # 8 kHz at its own rate: a 512-sample window every 128 samples, 257 bins; 16-frame sequences; KL warm-up
    # over about 50 epochs of the benchmark's (11 batches of 128 sequences each)
    "fsdd": ["data.root={shared}/data/fsdd-3spk", "data.sample_rate=8000", "data.frame_size=512", "data.hop=128",
             "data.crop_frames=16", "model.kl_warmup_iterations=550", "training.max_iterations=2000",
             "training.iterations_per_epoch=100"],
    # 16 kHz, the benchmark's spectrogram (1024 / 256, 513 bins), 50-frame sequences, its splits/ (4 batches
    # per epoch of the benchmark's)
    "vcc": ["data.root={shared}/data/vcc2016-4spk",
            "data.split_lists={{train: splits/train.txt, val: splits/val.txt, test: splits/test.txt}}",  # {{ }}: format
            "data.crop_frames=50", "model.kl_warmup_iterations=200", "training.max_iterations=800",
            "training.iterations_per_epoch=50"],
}
ARMS = {  # arm -> overrides; the adversarial and critic rates are the waveform study's tuned ones (conf/tuned/)
    "vrnn": ["arm=vrnn"],
    "hybrid": ["tuned=avrnn_hybrid"],
    "conditional": ["tuned=avrnn_conditional", "model.kl_warmup_iterations=0"],  # no KL term to warm up
}
# the runs at an arm's picked rate: name -> (the arm whose rate it takes, overrides, seeds)
AT_PICKED_RATE = {
    "vrnn": ("vrnn", ARMS["vrnn"], 5),
    "hybrid": ("hybrid", ARMS["hybrid"], 5),
    "hybrid_twin": ("hybrid", ARMS["hybrid"] + ["ablation.adversarial_phases=false"], 5),
    "hybrid_n5": ("hybrid", ARMS["hybrid"] + ["critic.n_critic=5", "critic.clip_value=0.1"], 3),
    "conditional": ("conditional", ARMS["conditional"], 3),
    "conditional_twin": ("conditional", ARMS["vrnn"], 3),  # the VRNN at the critic-only arm's likelihood rate
    "conditional_n5": ("conditional", ARMS["conditional"] + ["critic.n_critic=5", "critic.clip_value=0.1"], 3),
}
CRITIC_STRENGTH = "_n5"  # the suffix of the runs with n_critic 5 and clip 0.1 (item 2's critic strength)
EVALUATE = ["iwae_k=[64]", "fivo_k=[64]", "speech_quality=true", "num_threads=1"]
PICK_METRIC = "val/best_elbo_per_timestep"


def label(factor: Fraction) -> str:
    return f"x{factor.numerator}" + (f"_{factor.denominator}" if factor.denominator != 1 else "")


def grid_name(corpus: str, arm: str, factor: Fraction, seed: int) -> str:
    return f"{corpus}-{arm}-{label(factor)}-s{seed}"


def line(name: str, overrides: list[str], factor: Fraction, seed: int) -> str:
    return " ".join([name, *overrides, f"model.optimizer.lr={float(BASE_RATE * factor):.6g}", f"seed={seed}"])


def score(row: dict) -> float:
    """A grid run's best validation ELBO; minus infinity where training failed (no metrics)."""
    value = row.get(PICK_METRIC)
    return float(value) if str(row.get("rc")) == "0" and value not in (None, "") else float("-inf")


def pick(corpus: str, arm: str, done: dict[str, dict]) -> tuple[list[Fraction], Fraction | None]:
    """The grid this arm has reached on this corpus (extensions included) and its picked factor (None until
    every point's seeds have finished and the best is not at an edge that may still extend, and None where
    every point has a failed run). A failed run (no metrics: diverged, refused) scores minus infinity."""
    grid = list(GRID)
    for _ in range(MAX_EXTENSIONS + 1):
        runs = [[done.get(grid_name(corpus, arm, f, s)) for s in GRID_SEEDS] for f in grid]
        if any(r is None for point in runs for r in point):
            return grid, None
        scores = [sum(score(r) for r in point) / len(point) for point in runs]
        if max(scores) == float("-inf"):  # every point has a failed run: nothing to pick (the report says so)
            return grid, None
        best = grid[max(range(len(grid)), key=scores.__getitem__)]
        if len(grid) - len(GRID) >= MAX_EXTENSIONS or min(grid) < best < max(grid):
            return grid, best
        grid.append(best * EXTEND if best == max(grid) else best / EXTEND)
        grid.sort()
    return grid, best


def queue(done: dict[str, dict]) -> list[str]:
    """Every run that is ready and not done, corpus by corpus: grids first, then the runs at picked rates,
    within a corpus the arms and their twins (item 1) before the critic-strength cells (CRITIC_STRENGTH), so
    that a corpus cut short has its main contrasts first."""
    lines = []
    for corpus in CORPORA:
        picks = {}
        for arm, overrides in ARMS.items():
            grid, picks[arm] = pick(corpus, arm, done)
            lines += [line(grid_name(corpus, arm, f, s), overrides, f, s) for f in grid for s in GRID_SEEDS]
        ready = [name for name, (rate_of, _, _) in AT_PICKED_RATE.items() if picks[rate_of] is not None]
        for name in sorted(ready, key=lambda name: name.endswith(CRITIC_STRENGTH)):  # stable: the table's order
            rate_of, overrides, seeds = AT_PICKED_RATE[name]
            lines += [line(f"{corpus}-{name}-s{s}", overrides, picks[rate_of], s) for s in range(1, seeds + 1)]
    return [entry for entry in lines if entry.split()[0] not in done]


def corpus_overrides(name: str, shared: Path) -> list[str]:
    return COMMON + [item.format(shared=shared) for item in CORPORA[name.split("-", 1)[0]]]


STOPS = (signal.SIGTERM, signal.SIGINT)  # what the runner passes on to a run
# a training run's exit after a stop signal it saved on (avrnn.training.stops: 128 + the signal), even one sent to
# it directly: it resumes, it did not fail
SAVED_STOPS = {128 + sig for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)}


class Child:
    """Runs a command in a session of its own (a signal to the runner's process group, e.g. Ctrl-C, does not
    reach it twice) and passes a stop signal on to it once; `stopped`: the signal it passed on, if any."""

    stopped: int | None = None

    def __init__(self):
        self.process: subprocess.Popen | None = None
        self.passed = False  # whether the stop reached the current process
        for sig in STOPS:
            signal.signal(sig, self._forward)

    def _forward(self, number, frame) -> None:
        Child.stopped = number
        self._pass_on()

    def _pass_on(self) -> None:
        if self.process is not None and not self.passed and self.process.poll() is None:
            self.passed = True
            self.process.send_signal(Child.stopped)

    def call(self, command: list[str], **kwargs) -> int:
        if Child.stopped is not None:
            return 128 + Child.stopped
        self.process, self.passed = None, False
        self.process = subprocess.Popen(command, start_new_session=True, **kwargs)
        if Child.stopped is not None:  # a stop that came while Popen was starting it: not passed on yet
            self._pass_on()
        return self.process.wait()


def interpreter(clone: Path) -> Path:
    """The Python that trains and evaluates: $PYTHON, else the clone's .venv."""
    return Path(os.environ.get("PYTHON", str(clone / ".venv" / "bin" / "python")))


STOPPED_CALLS = "runner-stopped-calls.json"  # in a run's folder: the wall seconds of its stopped calls


def earlier_seconds(path: Path) -> float:
    """The wall seconds a run's stopped calls left in `path` (0 where there is none or it is unreadable)."""
    try:
        return float(json.loads(path.read_text())["wall_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def run_one(clone: Path, runs: Path, entry: str, shared: Path) -> None:
    """Train one run from the clone, evaluate its test checkpoint (the best on validation), write
    RUNS/NAME.job.json: rc (training's exit status), eval_rc (evaluate's; null if it did not run), wall
    seconds, CPU, commit, overrides, and the error if this call itself failed. A run stopped by a signal
    gets no record: the same call again resumes it from its last.ckpt (the run folder's own mechanism).
    Every other end gets one, a failure too, so a failing run is not started again and again. wall_s counts
    every call of the run: a stopped call leaves its seconds in RUNS/NAME/runner-stopped-calls.json for the next
    one (earlier_wall_s: those of the stopped calls; calls cut off without a stop signal are not counted)."""
    name, *overrides = entry.split()
    out = runs / name
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(clone / "src")}
    python = str(interpreter(clone))
    start, child = time.time(), Child()
    record = {"name": name, "rc": None, "eval_rc": None}
    try:
        with open(runs / f"{name}.log", "a") as log:
            record["rc"] = child.call([python, "src/train.py", *corpus_overrides(name, shared), *overrides,
                                       f"hydra.run.dir={out}"], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT)
            if record["rc"] == 0 and Child.stopped is None:
                tested = json.loads((out / "metrics.json").read_text())["test_checkpoint"]
                checkpoint = tested if tested.endswith(".ckpt") else str(out / "checkpoints" / "last.ckpt")
                record["eval_rc"] = child.call([python, "src/evaluate.py", f"ckpt_path={checkpoint}", *EVALUATE,
                                                f"hydra.run.dir={out}/evaluate"], cwd=clone, env=env, stdout=log,
                                               stderr=subprocess.STDOUT)
    except Exception as error:  # this call's own fault: recorded, so that it is read and not retried blindly
        record["error"] = f"{type(error).__name__}: {error}"
        record["rc"] = record["rc"] if record["rc"] is not None else 1
    stopped, earlier = out / STOPPED_CALLS, earlier_seconds(out / STOPPED_CALLS)
    if Child.stopped is not None or record["rc"] in SAVED_STOPS:  # no record: the run resumes next time
        if out.is_dir():  # (a run folder deleted to start afresh takes its seconds with it)
            files.write_text(stopped, json.dumps({"wall_s": round(earlier + time.time() - start, 1)}) + "\n")
        sys.exit(128 + Child.stopped if Child.stopped is not None else record["rc"])
    record.update(wall_s=round(earlier + time.time() - start, 1), earlier_wall_s=earlier, cpu=cpu_model(),
                  overrides=" ".join(overrides),
                  commit=subprocess.run(["git", "-C", str(clone), "rev-parse", "--short", "HEAD"], capture_output=True,
                                        text=True).stdout.strip())
    files.write_text(runs / f"{name}.job.json", json.dumps(record) + "\n")  # whole or not at all
    stopped.unlink(missing_ok=True)


def cpu_model() -> str:
    for text in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if text.startswith("model name"):
            return text.split(":", 1)[1].strip()
    return platform.processor()


def rows(runs: Path) -> list[dict]:
    """One row per run with a job record: the record, training's metrics.json (where training ended with 0),
    evaluate's (as eval/..., where evaluate did)."""
    found = []
    for job in sorted(runs.glob("*.job.json")):
        record = json.loads(job.read_text())
        record.setdefault("eval_rc", record["rc"])  # the first runner's records: one status for both
        for path, prefix, status in ((runs / record["name"] / "metrics.json", "", "rc"),
                                     (runs / record["name"] / "evaluate" / "metrics.json", "eval/", "eval_rc")):
            if record.get(status) == 0 and path.exists():
                record.update({prefix + key: value for key, value in json.loads(path.read_text()).items()
                               if isinstance(value, (int, float, str)) or value is None})
        found.append(record)
    return found


COLUMNS = ["name", "rc", "eval_rc", "error", "overrides", "commit", "cpu", "wall_s", "earlier_wall_s", "precision", "iterations", "test_checkpoint_iteration",
           "val/best_elbo_per_timestep", "test/elbo_per_timestep", "test/rec_per_timestep", "test/kl_per_timestep",
           "test/wasserstein", "eval/test/elbo_per_timestep", "eval/test/iwae_64_per_timestep",
           "eval/test/fivo_64_per_timestep", "eval/test/log_jacobian", "eval/test/si_sdr_mean", "eval/test/pesq_mean",
           "eval/test/estoi_mean", "eval/test/si_sdr_utterances", "eval/test/sequences"]


def collect(runs: Path, earlier: list[Path], out=sys.stdout) -> None:
    """CSV of every finished run: the rows of the earlier CSVs, and this folder's runs (which replace a row
    of the same name), sorted by name."""
    merged = read_done(earlier, None)
    merged.update({row["name"]: row for row in rows(runs)})
    writer = csv.DictWriter(out, COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for name in sorted(merged):
        writer.writerow(merged[name])


def read_done(paths: list[Path], runs: Path | None) -> dict[str, dict]:
    """name -> row of every finished run (failed ones included: they are not rerun)."""
    done = {}
    for path in paths:
        if not path.is_file():
            sys.exit(f"error: --done {path}: no such file (the CSV of earlier sessions' runs; drop --done on a first run)")
        with path.open() as f:
            done.update({row["name"]: row for row in csv.DictReader(f)})
    if runs is not None and runs.exists():
        done.update({row["name"]: {k: str(v) for k, v in row.items()} for row in rows(runs)})
    return done


def run(clone: Path, runs: Path, done_csvs: list[Path], jobs: int, attempts: int = 2, shared: Path | None = None
        ) -> None:
    """Keep `jobs` runs going until nothing is ready; each finished run may make others ready. A stop signal
    (TERM, INT) reaches each run once and each saves its last.ckpt; the same command resumes them. A run
    whose job ended without a record although no stop was sent (its process killed) is tried `attempts`
    times, then left out with a line saying so."""
    shared = shared or (clone / ".." / "shared").resolve()
    python = interpreter(clone)
    problems = [f"{clone / 'src' / 'train.py'} is missing (CLONE: a clone of this repository at the frozen commit)"
                if not (clone / "src" / "train.py").is_file() else "",
                f"no interpreter at {python} (set PYTHON to the project's .venv/bin/python)" if not python.exists() else "",
                *[f"no corpus folder {Path(item.format(shared=shared).split('=', 1)[1])} (--shared: the folder holding "
                  "data/fsdd-3spk and data/vcc2016-4spk)" for items in CORPORA.values() for item in items
                  if item.startswith("data.root=") and not Path(item.format(shared=shared).split("=", 1)[1]).is_dir()]]
    if any(problems):  # every run would fail in seconds and be recorded as failed
        sys.exit("error: " + "; ".join(problem for problem in problems if problem))
    runs.mkdir(parents=True, exist_ok=True)
    running: dict[str, subprocess.Popen] = {}
    lost: dict[str, int] = {}

    def stop(number, frame):
        for process in running.values():
            process.send_signal(number)
        for process in running.values():
            process.wait()
        sys.exit(128 + number)

    for sig in STOPS:
        signal.signal(sig, stop)
    while True:
        ready = [entry for entry in queue(read_done(done_csvs, runs))
                 if entry.split()[0] not in running and lost.get(entry.split()[0], 0) < attempts]
        while ready and len(running) < jobs:
            entry = ready.pop(0)
            running[entry.split()[0]] = subprocess.Popen(
                [sys.executable, __file__, "one", str(clone), str(runs), str(shared), entry], start_new_session=True)
            print(f"{time.strftime('%H:%M:%S')} started {entry.split()[0]}", flush=True)
        if not running:
            for name, count in lost.items():
                if count >= attempts:
                    print(f"left out {name}: its job ended {count} times without a record (see {runs / name}.log)")
            return
        time.sleep(5)
        for name in [n for n, p in running.items() if p.poll() is not None]:
            rc, job = running.pop(name).returncode, runs / f"{name}.job.json"
            if job.exists():
                record = json.loads(job.read_text())
                how = f"training rc {record['rc']}, evaluation rc {record['eval_rc']}"
            else:
                lost[name] = lost.get(name, 0) + 1
                how = f"no record: stopped or killed (rc {rc}); it starts again"
            print(f"{time.strftime('%H:%M:%S')} finished {name} ({how})", flush=True)


METRICS = [("eval/test/elbo_per_timestep", "ELBO", 2), ("eval/test/iwae_64_per_timestep", "IWAE-64", 2),
           ("eval/test/fivo_64_per_timestep", "FIVO-64", 2),
           ("eval/test/si_sdr_mean", "SI-SDR (dB)", 2), ("eval/test/pesq_mean", "PESQ", 3),
           ("eval/test/estoi_mean", "ESTOI", 3)]
# (arm, control, what the difference measures, how many arms the arm was picked from: the Bonferroni width)
CONTRASTS = [("hybrid", "hybrid_twin", "the regulariser", 6), ("hybrid_twin", "vrnn", "the rate", 1),
             ("conditional", "conditional_twin", "the regulariser", 5), ("conditional_twin", "vrnn", "the rate", 1),
             ("hybrid_n5", "hybrid_twin", "the regulariser, n_critic 5", 6),
             ("conditional_n5", "conditional_twin", "the regulariser, n_critic 5", 5),
             ("hybrid_n5", "hybrid", "critic strength", 1), ("conditional_n5", "conditional", "critic strength", 1)]


def report(path: Path, out=sys.stdout) -> None:
    """Markdown per corpus: the grid (best validation ELBO by rate, the pick), the runs at the picked rates
    (mean +/- sd over seeds, and how many failed) and the paired differences (mean, 95% t-interval; for an
    arm picked from several, the Bonferroni-widened interval too) of the bounds and SI-SDR, PESQ, ESTOI. A
    failed run (training or evaluation) is in no mean and no pair, and is counted where its group is shown."""
    sys.path.insert(0, str(Path(__file__).parent))
    from study_controls import fmt, interval, mean_sd, paired_differences

    done = read_done([path], None)
    groups: dict[str, dict[int, dict]] = {}
    failed: dict[str, list[int]] = {}
    for name, row in done.items():
        group, seed = name.rsplit("-s", 1)
        if str(row.get("rc")) == "0" and str(row.get("eval_rc")) == "0":
            groups.setdefault(group, {})[int(seed)] = {k: float(v) for k, v in row.items()
                                                       if k in {key for key, _, _ in METRICS} and v not in (None, "")}
        else:
            failed.setdefault(group, []).append(int(seed))
    for corpus in CORPORA:
        reached = {arm: pick(corpus, arm, done) for arm in ARMS}
        points = sorted({f for grid, _ in reached.values() for f in grid})
        print(f"\n### {corpus}: the likelihood rate (best validation ELBO, nats per timestep, mean of seeds "
              f"{', '.join(map(str, GRID_SEEDS))}; * picked)\n", file=out)
        print("| arm | " + " | ".join(f"x{f}" for f in points) + " | picked |\n" + "|---" * (len(points) + 2) + "|",
              file=out)
        for arm, (grid, picked) in reached.items():
            cells = []
            for factor in points:
                runs = [done.get(grid_name(corpus, arm, factor, s)) for s in GRID_SEEDS]
                values = [score(r) for r in runs if r is not None]
                cells.append("" if not values else fmt(sum(values) / len(values)) + (" *" if factor == picked else ""))
            complete = all(done.get(grid_name(corpus, arm, f, s)) is not None for f in grid for s in GRID_SEEDS)
            verdict = f"x{picked}" if picked is not None else ("none: every point failed" if complete else "-")
            print(f"| {arm} | " + " | ".join(cells) + f" | {verdict} |", file=out)
        print(f"\n### {corpus}: runs at the picked rates (test split; mean +/- sd over seeds)\n", file=out)
        print("| run | seeds | " + " | ".join(label for _, label, _ in METRICS) + " |\n"
              + "|---" * (len(METRICS) + 2) + "|", file=out)
        for run in AT_PICKED_RATE:
            group = f"{corpus}-{run}"
            runs, lost = groups.get(group, {}), failed.get(group, [])
            if not runs and not lost:
                continue
            cells = []
            for key, _, digits in METRICS:
                values = [r[key] for r in runs.values() if key in r]
                mean, sd = mean_sd(values) if values else (float("nan"), float("nan"))
                cells.append(f"{fmt(mean, digits)} +/- {fmt(sd, digits)}" + (f" ({len(values)})" if len(values) < len(runs) else ""))
            seeds = f"{len(runs)}" + (f" ({len(lost)} failed: seed {', '.join(map(str, sorted(lost)))})" if lost else "")
            print(f"| {run} | {seeds} | " + " | ".join(cells) + " |", file=out)
        print(f"\n### {corpus}: paired differences (arm - control, same seed): mean [95% t-interval]\n", file=out)
        print("| arm - control | measures | n | " + " | ".join(label for _, label, _ in METRICS) + " |\n"
              + "|---" * (len(METRICS) + 3) + "|", file=out)
        for arm, control, measures, picked_from in CONTRASTS:
            a, c = groups.get(f"{corpus}-{arm}", {}), groups.get(f"{corpus}-{control}", {})
            if not set(a) & set(c):
                continue
            cells = []
            for key, _, digits in METRICS:
                diffs = paired_differences({s: r for s, r in a.items() if key in r}, {s: r for s, r in c.items() if key in r},
                                           key)
                if not diffs:
                    cells.append("-")
                    continue
                mean, low, high = interval(diffs)
                # rounded to the digits shown, a difference of a few ulps (ESTOI repeats to about 1e-16) is 0, not -0
                low, high = (round(bound, digits) + 0.0 for bound in (low, high))
                cell = f"{round(mean, digits) + 0.0:+.{digits}f} [{fmt(low, digits)}, {fmt(high, digits)}]"
                if picked_from > 1:
                    _, wide_low, wide_high = interval(diffs, 1 - 0.05 / picked_from)
                    wide_low, wide_high = (round(bound, digits) + 0.0 for bound in (wide_low, wide_high))
                    cell += f" (of {picked_from}: [{fmt(wide_low, digits)}, {fmt(wide_high, digits)}])"
                cells.append(cell + (f" (n={len(diffs)})" if len(diffs) < len(set(a) & set(c)) else ""))
            print(f"| {arm} - {control} | {measures} | {len(set(a) & set(c))} | " + " | ".join(cells) + " |", file=out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("queue")
    q.add_argument("--done", type=Path, action="append", default=[])
    q.add_argument("--runs", type=Path)
    r = sub.add_parser("run")
    r.add_argument("clone", type=Path)
    r.add_argument("runs", type=Path)
    r.add_argument("--done", type=Path, action="append", default=[])
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("--shared", type=Path, help="the folder holding data/fsdd-3spk and data/vcc2016-4spk "
                                               "(default: CLONE/../shared)")
    c = sub.add_parser("collect")
    c.add_argument("runs", type=Path)
    c.add_argument("--done", type=Path, action="append", default=[])
    sub.add_parser("report").add_argument("csv", type=Path)
    one = sub.add_parser("one")  # what `run` starts per run
    for arg in ("clone", "runs", "shared"):
        one.add_argument(arg, type=Path)
    one.add_argument("entry")
    args = parser.parse_args()
    if args.command == "queue":
        try:
            print("\n".join(queue(read_done(args.done, args.runs))))
        except BrokenPipeError:  # `queue | head`
            sys.stderr.close()
    elif args.command == "run":
        run(args.clone.resolve(), args.runs.resolve(), args.done, args.jobs,
            shared=args.shared.resolve() if args.shared else None)
    elif args.command == "collect":
        collect(args.runs, args.done)
    elif args.command == "report":
        report(args.csv)
    else:
        run_one(args.clone, args.runs, args.entry, args.shared)


if __name__ == "__main__":
    main()
