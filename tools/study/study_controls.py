"""The runs of the study-controls issue (docs/study-controls.md): list them, or collect their results.

    python tools/study/study_controls.py queue [--item 1|2|3] > queue.txt   # NAME OVERRIDES... per line
    python tools/study/study_controls.py collect RUNS_DIR > docs/study-controls/runs.csv
    python tools/study/study_controls.py report docs/study-controls/runs.csv   # the tables of docs/results.md
    python tools/study/study_controls.py quality EVAL_DIR   # src/evaluate.py's metrics.json of each run, by arm

Every run is `src/train.py experiment=study data=audio_dir data.root=../shared/data/fsdd-3spk
trainer.precision=32-true <overrides> hydra.run.dir=RUNS_DIR/NAME` (2,000 iterations, one thread), from
one frozen commit; tools/study/study_controls_job.sh runs one line and skips finished runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

CRITIC_ONLY_RATE = "7.69762526011576e-05"  # the likelihood rate all five critic-only arms were tuned to
CRITIC_ONLY = ("avrnn_paper", "avrnn_conditional", "avrnn_own", "avrnn_posterior_only", "avrnn_literal")


def item1() -> list[str]:
    """Twins: each arm against the run that differs only in the adversarial part, paired by seed."""
    lines = []
    for seed in range(1, 6):
        lines += [f"vrnn-s{seed} tuned=vrnn seed={seed}",
                  f"hybrid-s{seed} tuned=avrnn_hybrid seed={seed}",
                  f"hybrid_twin-s{seed} tuned=avrnn_hybrid ablation.adversarial_phases=false seed={seed}"]
    for seed in range(1, 4):
        # the VRNN at the critic-only arms' likelihood rate: paper, conditional, own and posterior_only share
        # the model keys of the VRNN (prior_path and the critic input shape only what a critic reads)
        lines += [f"twin_lr77-s{seed} tuned=vrnn model.optimizer.lr={CRITIC_ONLY_RATE} seed={seed}",
                  f"twin_lr77_x-s{seed} tuned=vrnn model.optimizer.lr={CRITIC_ONLY_RATE} model.recurrence_input=x "
                  f"seed={seed}"]
        lines += [f"{arm.removeprefix('avrnn_')}-s{seed} tuned={arm} seed={seed}" for arm in CRITIC_ONLY]
    return lines


def item2() -> list[str]:
    """The horizon: the likelihood rate on a 5-point grid (x1/4, x1/2, x1, x2, x4 the tuned one), 2 seeds;
    the x1 points are item 1's runs."""
    rates = {"vrnn": 0.002362802153410833, "hybrid": 0.0011272467537650976}
    lines = []
    for arm, rate in rates.items():
        tuned = "vrnn" if arm == "vrnn" else "avrnn_hybrid"
        for factor in (0.25, 0.5, 2.0, 4.0):
            for seed in (1, 2):
                lines.append(f"{arm}_lrx{factor:g}-s{seed} tuned={tuned} model.optimizer.lr={rate * factor:.6g} "
                             f"seed={seed}")
    return lines


def item3(best_critic_only: str = "avrnn_conditional") -> list[str]:
    """Critic strength: n_critic in {1, 5} x clip in {0.01, 0.1}; (1, 0.1) is item 1's."""
    lines = []
    for arm in dict.fromkeys(("avrnn_paper", best_critic_only)):
        for n_critic, clip in ((1, 0.01), (5, 0.01), (5, 0.1)):
            for seed in (1, 2):
                lines.append(f"{arm.removeprefix('avrnn_')}_n{n_critic}_c{clip:g}-s{seed} tuned={arm} "
                             f"critic.n_critic={n_critic} critic.clip_value={clip} seed={seed}")
    return lines


def collect(runs: Path) -> None:
    """One CSV row per finished run: its name, overrides, commit, CPU, wall time and final metrics."""
    columns = ["name", "overrides", "commit", "cpu", "wall_s", "precision", "denormals", "iterations",
               "test_checkpoint_iteration", "val/best_elbo_per_timestep", "test/elbo_per_timestep",
               "test/rec_per_timestep", "test/kl_per_timestep", "test/wasserstein"]
    writer = csv.DictWriter(sys.stdout, columns, extrasaction="ignore")
    writer.writeheader()
    for job in sorted(runs.glob("*.job.json")):
        record = json.loads(job.read_text())
        metrics_file = runs / record["name"] / "metrics.json"
        if record["rc"] != 0 or not metrics_file.exists():
            continue
        writer.writerow({**record, **json.loads(metrics_file.read_text())})


BASE_ARMS = {"vrnn": "tuned VRNN (RMSProp 2.4e-3)", "hybrid": "hybrid", "hybrid_twin": "hybrid's twin (no adversary)",
             "twin_lr77": "VRNN at 7.7e-5 (twin of paper, conditional, own, posterior_only)",
             "twin_lr77_x": "VRNN at 7.7e-5, recurrence x (twin of literal)",
             **{arm.removeprefix("avrnn_"): arm for arm in CRITIC_ONLY}}
# (arm, control, what the difference measures); paired by seed
CONTRASTS = [("hybrid", "hybrid_twin", "the regulariser"), ("hybrid_twin", "vrnn", "the rate"),
             ("hybrid", "vrnn", "the earlier headline"), ("twin_lr77", "vrnn", "the rate"),
             ("twin_lr77_x", "vrnn", "the rate and recurrence x")] + \
            [(arm.removeprefix("avrnn_"), "twin_lr77_x" if arm == "avrnn_literal" else "twin_lr77", "the regulariser")
             for arm in CRITIC_ONLY]
PICKED_FROM = 6  # the hybrid was picked as the best of six adversarial arms: Bonferroni over 6


def read_runs(path: Path) -> dict[str, dict[int, dict]]:
    """{run group (name without -sN): {seed: row}} with the numeric columns as floats."""
    groups: dict[str, dict[int, dict]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            group, seed = row["name"].rsplit("-s", 1)
            groups.setdefault(group, {})[int(seed)] = {
                key: (float(value) if value not in ("", None) and key.startswith(("test/", "val/")) else value)
                for key, value in row.items()}
    return groups


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (NaN for fewer than 2 values)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else float("nan")


def paired_differences(arm: dict[int, dict], control: dict[int, dict], key: str) -> list[float]:
    """arm - control of `key`, paired by seed: one difference per seed both have, seeds ascending."""
    return [arm[s][key] - control[s][key] for s in sorted(set(arm) & set(control))]


def interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided t-interval of the mean (NaN bounds for fewer than 2 values)."""
    from scipy import stats
    mean, sd = mean_sd(values)
    n = len(values)
    if n < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, n - 1) * sd / n ** 0.5
    return mean, mean - half, mean + half


def fmt(value: float, digits: int = 2) -> str:
    return "-" if value != value else f"{value:.{digits}f}"


def report(path: Path, metric: str = "test/elbo_per_timestep") -> None:
    """Markdown: item 1 (arms by seed, paired contrasts with 95% t-intervals and the hybrid's Bonferroni
    correction), item 2 (the rate grid) and item 3 (critic strength), from runs.csv."""
    groups = read_runs(path)
    print("### Item 1: test ELBO by seed (nats per timestep, higher is better)\n")
    seeds = range(1, 6)
    print("| run | " + " | ".join(f"seed {s}" for s in seeds) + " | mean +/- sd (n) |\n|---" * 1 + "|---" * 6 + "|")
    for group, label in BASE_ARMS.items():
        runs = groups.get(group, {})
        values = [runs[s][metric] for s in seeds if s in runs]
        if not values:
            continue
        mean, sd = mean_sd(values)
        print(f"| {group} ({label}) | " + " | ".join(fmt(runs[s][metric]) if s in runs else "" for s in seeds)
              + f" | {fmt(mean)} +/- {fmt(sd)} ({len(values)}) |")
    print("\n### Item 1: paired differences (arm - control, same seed)\n")
    print("| arm - control | measures | n | mean | 95% interval | excludes 0 | arm ahead in |\n|---|---|---|---|---|---|---|")
    for arm, control, measures in CONTRASTS:
        diffs = paired_differences(groups.get(arm, {}), groups.get(control, {}), metric)
        if not diffs:
            continue
        mean, low, high = interval(diffs)
        note = ""
        if arm == "hybrid":
            _, blow, bhigh = interval(diffs, 1 - 0.05 / PICKED_FROM)
            note = f" (picked best of {PICKED_FROM}: [{fmt(blow)}, {fmt(bhigh)}])"
        excludes = "-" if low != low else ("yes" if low > 0 or high < 0 else "no")
        print(f"| {arm} - {control} | {measures} | {len(diffs)} | {mean:+.2f} | [{fmt(low)}, {fmt(high)}]{note} "
              f"| {excludes} | {sum(d > 0 for d in diffs)} of {len(diffs)} |")
    print("\n### Item 2: the likelihood rate at 2,000 iterations (x1 = the rate tuned at 400 iterations)\n")
    print("| arm | rate x | rate | seed 1 | seed 2 | mean (seeds 1-2) |\n|---|---|---|---|---|---|")
    for arm in ("vrnn", "hybrid"):
        for factor in ("0.25", "0.5", "1", "2", "4"):
            runs = groups.get(arm if factor == "1" else f"{arm}_lrx{factor}", {})
            values = [runs[s][metric] for s in (1, 2) if s in runs]
            if not values:
                continue
            rate = next((o for o in runs[min(runs)]["overrides"].split() if o.startswith("model.optimizer.lr=")),
                        "tuned").removeprefix("model.optimizer.lr=")
            print(f"| {arm} | {factor} | {rate} | " + " | ".join(fmt(runs[s][metric]) if s in runs else "" for s in (1, 2))
                  + f" | {fmt(sum(values) / len(values))} |")
    for arm in ("vrnn", "hybrid"):  # the best rate at 2,000 iterations against the tuned one, paired by seed
        cells = {factor: groups.get(arm if factor == "1" else f"{arm}_lrx{factor}", {})
                 for factor in ("0.25", "0.5", "1", "2", "4")}
        cells = {f: {s: r for s, r in runs.items() if s in (1, 2)} for f, runs in cells.items()}
        if not all(len(runs) == 2 for runs in cells.values()):
            continue
        best = max(cells, key=lambda f: sum(r[metric] for r in cells[f].values()))
        if best == "1":
            print(f"\n{arm}: best at 2,000 iterations: the tuned rate (x1)")
            continue
        mean, low, high = interval(paired_differences(cells[best], cells["1"], metric))
        print(f"\n{arm}: best at 2,000 iterations x{best}; best - tuned (x1), paired over seeds 1-2: {mean:+.2f}, "
              f"95% interval [{fmt(low)}, {fmt(high)}]")
    print("\n### Item 3: critic strength (n_critic, clip), 2 seeds: test ELBO, KL, critic estimate\n")
    print("Per seed (1, 2): the cell's test ELBO; its difference to the arm's twin (the VRNN at the same\n"
          "likelihood rate: the regulariser's effect at this critic strength) and to the arm's (1, 0.1) cell\n"
          "(the effect of the critic's strength), each paired by seed with its 95% t-interval (1 degree of\n"
          "freedom: t = 12.7); the critic's own estimate on the test set (WGAN with clipped weights: arbitrary\n"
          "units; not comparable across clips).\n")
    print("| arm | n_critic | clip | test ELBO (seeds) | mean | - twin (seeds) | - twin: mean [95%] "
          "| - (1, 0.1) cell: mean [95%] | KL mean | critic estimate (seeds) |\n|---|---|---|---|---|---|---|---|---|---|")

    def paired(cell: dict, control: dict) -> tuple[str, str]:
        diffs = paired_differences(cell, control, metric)
        if not diffs:
            return "-", "-"
        mean, low, high = interval(diffs)
        return ", ".join(f"{d:+.2f}" for d in diffs), f"{mean:+.2f} [{fmt(low)}, {fmt(high)}]"

    twin = groups.get("twin_lr77", {})  # the VRNN at 7.7e-5: the twin of both arms
    for arm in ("paper", "conditional"):
        base = {s: groups[arm][s] for s in (1, 2) if s in groups.get(arm, {})}
        for n_critic, clip in ((1, "0.1"), (1, "0.01"), (5, "0.01"), (5, "0.1")):
            group = arm if (n_critic, clip) == (1, "0.1") else f"{arm}_n{n_critic}_c{clip}"
            runs = {s: groups[group][s] for s in (1, 2) if s in groups.get(group, {})}
            if not runs:
                continue
            elbo = mean_sd([r[metric] for r in runs.values()])[0]
            kl = mean_sd([r["test/kl_per_timestep"] for r in runs.values()])[0]
            twin_seeds, twin_interval = paired(runs, twin)
            base_interval = "(this cell)" if group == arm else paired(runs, base)[1]
            print(f"| {arm} | {n_critic} | {clip} | " + ", ".join(fmt(r[metric]) for r in runs.values())
                  + f" | {fmt(elbo)} | {twin_seeds} | {twin_interval} | {base_interval} | {fmt(kl)} | "
                  + ", ".join(f"{r['test/wasserstein']:.2g}" for r in runs.values()) + " |")


QUALITY = [("test/elbo_per_timestep", "ELBO", 2), ("test/iwae_64_per_timestep", "IWAE-64", 2),
           ("test/fivo_64_per_timestep", "FIVO-64", 2), ("test/si_sdr_mean", "SI-SDR (dB)", 2),
           ("test/pesq_mean", "PESQ wb (MOS-LQO)", 3), ("test/estoi_mean", "ESTOI (0-1)", 3)]


def quality(evaluations: Path) -> None:
    """Markdown: per arm, mean +/- sd over seeds of the bounds and the reconstructions' SI-SDR, PESQ and
    ESTOI, from EVAL_DIR/<name>-s<seed>/metrics.json (src/evaluate.py iwae_k=[64] fivo_k=[64])."""
    by_seed: dict[str, dict[int, dict]] = {}  # arm -> seed -> metrics
    for path in sorted(evaluations.glob("*-s*/metrics.json")):
        arm, seed = path.parent.name.rsplit("-s", 1)
        by_seed.setdefault(arm, {})[int(seed)] = json.loads(path.read_text())
    arms = {arm: list(runs.values()) for arm, runs in by_seed.items()}
    print("| arm | seeds | " + " | ".join(label for _, label, _ in QUALITY) + " | utterances scored (SI-SDR, PESQ, ESTOI) |")
    print("|---" * (len(QUALITY) + 3) + "|")
    for arm, runs in arms.items():
        cells = []
        for key, _, digits in QUALITY:
            values = [r[key] for r in runs if r.get(key) is not None]
            mean, sd = mean_sd(values)
            cells.append(f"{mean:.{digits}f} +/- {fmt(sd, digits)}")
        counts = [sorted({r[f"test/{m}_utterances"] for r in runs}) for m in ("si_sdr", "pesq", "estoi")]
        scored = ", ".join(f"{c[0]}" if len(c) == 1 else f"{c[0]}-{c[-1]}" for c in counts)
        print(f"| {arm} | {len(runs)} | " + " | ".join(cells) + f" | {scored} of {runs[0]['test/sequences']} |")
    pairs = [(a, c) for a, c, _ in CONTRASTS if a in by_seed and c in by_seed]
    if pairs:
        print("\nPaired by seed, arm - control: mean [95% t-interval]\n")
        print("| arm - control | n | " + " | ".join(label for _, label, _ in QUALITY) + " |")
        print("|---" * (len(QUALITY) + 2) + "|")
    for arm, control in pairs:
        cells = []
        for key, _, digits in QUALITY:
            diffs = paired_differences(by_seed[arm], by_seed[control], key)
            mean, low, high = interval(diffs)
            cells.append(f"{mean:+.{digits}f} [{fmt(low, digits)}, {fmt(high, digits)}]")
        print(f"| {arm} - {control} | {len(diffs)} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    queue = sub.add_parser("queue")
    queue.add_argument("--item", type=int, choices=(1, 2, 3), action="append")
    sub.add_parser("collect").add_argument("runs", type=Path)
    sub.add_parser("report").add_argument("csv", type=Path)
    sub.add_parser("quality").add_argument("evaluations", type=Path)
    args = parser.parse_args()
    if args.command == "collect":
        collect(args.runs)
        return
    if args.command == "report":
        report(args.csv)
        return
    if args.command == "quality":
        quality(args.evaluations)
        return
    for item in args.item or (1, 2, 3):
        print("\n".join({1: item1, 2: item2, 3: item3}[item]()))


if __name__ == "__main__":
    main()
