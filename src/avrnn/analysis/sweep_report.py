"""Aggregate a sweep folder (logs/multirun/<date>/<time>): one row per run, mean +/- std over seeds
per configuration, as Markdown and CSV, and one plot overlaying every run's validation ELBO."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import yaml

from avrnn.analysis.figures import plt, read_scalars
from avrnn.analysis.sweep_jobs import job_records, sweep_size
from avrnn.data.progress import counted

COLUMNS = ["iterations", "test_checkpoint_iteration", "val/elbo_per_timestep", "val/rec_per_timestep", "val/kl_per_timestep",
           "test/elbo_per_timestep", "test/rec_per_timestep", "test/kl_per_timestep"]


def collect(sweep: Path) -> list[dict]:
    """Runs of a sweep: the overrides that differ between runs (seed apart) and the numbers of
    their metrics.json. Overrides shared by every run are left out of the configuration's name."""
    found = []
    for metrics_file in sorted(Path(sweep).glob("*/metrics.json")):
        overrides = yaml.safe_load((metrics_file.parent / ".hydra" / "overrides.yaml").read_text()) or []
        found.append((metrics_file.parent, overrides, json.loads(metrics_file.read_text())))
    shared = set.intersection(*(set(o) for _, o, _ in found)) if found else set()
    runs = []
    for run, overrides, metrics in found:
        seed = next((o.split("=", 1)[1] for o in overrides if o.startswith("seed=")), "default")
        config = ",".join(o for o in overrides if o not in shared and not o.startswith(("seed=", "hydra.")))
        runs.append({"run": run.name, "config": config or "defaults", "seed": seed,
                     **{column: metrics.get(column) for column in COLUMNS}})
    if not runs:
        if (Path(sweep) / "metrics.json").is_file():
            raise FileNotFoundError(f"{sweep} is one run's folder (its metrics.json is there); report.py summarises a "
                                    "sweep folder (logs/multirun/<date>/<time>) holding one folder per run")
        without = runs_without_results(sweep) if Path(sweep).is_dir() else []
        if without:
            shown = "; ".join(without[:3]) + (f"; and {len(without) - 3} more" if len(without) > 3 else "")
            raise FileNotFoundError(f"no run of the sweep {sweep} has results yet: {shown}")
        raise FileNotFoundError(f"no <run>/metrics.json under {sweep}; pass a finished sweep folder "
                                "(logs/multirun/<date>/<time>) whose runs had training.test_after_training=true")
    return runs


def runs_without_results(sweep: Path) -> list[str]:
    """One line per job of the sweep that has no metrics.json: failed (with the reason its record gives,
    avrnn.training.sweeps.record_job), or without a result (stopped, killed, still running, or not
    tested); and how many jobs of a grid never started (multirun.yaml's sweep against the job folders)."""
    sweep = Path(sweep)
    records = {Path(r["folder"]).name: r for r in job_records(sweep)}
    folders = sorted(p for p in sweep.iterdir() if (p / ".hydra" / "overrides.yaml").is_file())
    lines = []
    for folder in folders:
        if (folder / "metrics.json").is_file():
            continue
        record = records.get(folder.name)
        if record is not None and record["status"] == "failed":
            lines.append(f"{folder.name}: failed: {record['reason']}")
        else:
            lines.append(f"{folder.name}: no metrics.json (stopped, killed, still running, or run with "
                         "training.test_after_training=false)")
    multirun = sweep / "multirun.yaml"
    if multirun.is_file():
        hydra = (yaml.safe_load(multirun.read_text()) or {}).get("hydra") or {}
        basic = "BasicSweeper" in str((hydra.get("sweeper") or {}).get("_target_", ""))
        total = sweep_size((hydra.get("overrides") or {}).get("task") or []) if basic else None
        if total is not None and total > len(folders):
            lines.append(f"{total - len(folders)} of the sweep's {counted(total, 'job')} never started (no folder)")
    return lines


def summarise(runs: list[dict]) -> list[dict]:
    """Mean and standard deviation over seeds, per configuration."""
    rows = []
    for config in dict.fromkeys(r["config"] for r in runs):
        group = [r for r in runs if r["config"] == config]
        row = {"config": config, "seeds": len(group)}
        for column in COLUMNS[2:]:
            values = [r[column] for r in group if r[column] is not None]
            if values:
                row[column] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
        rows.append(row)
    return rows


def markdown(runs: list[dict], summary: list[dict], without: list[str] = ()) -> str:
    header = "| config | seeds | " + " | ".join(COLUMNS[2:]) + " |"
    lines = []
    if without:
        have = "has" if len(runs) == 1 else "have"
        lines += [f"**Not every run of this sweep has results (below); the means are over the "
                  f"{counted(len(runs), 'run')} that {have}.**", "", "## Runs without results", "",
                  *[f"- {line}" for line in without], ""]
    lines += ["## Mean +/- std over seeds (nats per timestep)", "", header, "|" + "---|" * len(COLUMNS)]
    for row in summary:
        cells = [f"{row[c][0]:.2f} +/- {row[c][1]:.2f}" if c in row else "" for c in COLUMNS[2:]]
        lines.append(f"| {row['config']} | {row['seeds']} | " + " | ".join(cells) + " |")
    lines += ["", "## Runs", "", "| run | seed | " + " | ".join(COLUMNS) + " |", "|" + "---|" * (len(COLUMNS) + 2)]
    for r in runs:
        cells = [f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in COLUMNS]
        lines.append(f"| {r['run']} | {r['seed']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def overlay_plot(sweep: Path, runs: list[dict], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for r in runs:
        scalars = read_scalars(Path(sweep) / r["run"])
        if "val/elbo_per_timestep" in scalars:
            steps, values = scalars["val/elbo_per_timestep"]
            axis.plot(steps + 1, values, marker="o", label=f"{r['config']} seed {r['seed']}")
    low, high = axis.get_ylim()
    if high - low > 1e4:  # a diverged run would flatten every other curve: use a symmetric log scale
        axis.set_yscale("symlog", linthresh=100)
    axis.set_xlabel("training iteration")
    axis.set_ylabel("validation ELBO (nats per timestep)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def report(sweep: Path) -> list[Path]:
    sweep = Path(sweep)
    runs = collect(sweep)
    summary = summarise(runs)
    (sweep / "report.md").write_text(markdown(runs, summary, runs_without_results(sweep)))
    with open(sweep / "report.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["run", "config", "seed", *COLUMNS])
        writer.writeheader()
        writer.writerows(runs)
    overlay_plot(sweep, runs, sweep / "report_val_elbo.png")
    return [sweep / "report.md", sweep / "report.csv", sweep / "report_val_elbo.png"]
