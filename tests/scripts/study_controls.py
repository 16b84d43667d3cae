"""The runs of the study-controls issue (docs/study-controls.md): list them, or collect their results.

    python tests/scripts/study_controls.py queue [--item 1|2|3] > queue.txt   # NAME OVERRIDES... per line
    python tests/scripts/study_controls.py collect RUNS_DIR > docs/study-controls/runs.csv

Every run is `src/train.py experiment=study data=audio_dir data.root=../shared/data/fsdd-3spk
trainer.precision=32-true <overrides> hydra.run.dir=RUNS_DIR/NAME` (2,000 iterations, one thread), from
one frozen commit; tests/scripts/study_controls_job.sh runs one line and skips finished runs.
"""

from __future__ import annotations

import argparse
import csv
import json
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
               "test/rec_per_timestep", "test/kl_per_timestep"]
    writer = csv.DictWriter(sys.stdout, columns, extrasaction="ignore")
    writer.writeheader()
    for job in sorted(runs.glob("*.job.json")):
        record = json.loads(job.read_text())
        metrics_file = runs / record["name"] / "metrics.json"
        if record["rc"] != 0 or not metrics_file.exists():
            continue
        writer.writerow({**record, **json.loads(metrics_file.read_text())})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    queue = sub.add_parser("queue")
    queue.add_argument("--item", type=int, choices=(1, 2, 3), action="append")
    sub.add_parser("collect").add_argument("runs", type=Path)
    args = parser.parse_args()
    if args.command == "collect":
        collect(args.runs)
        return
    for item in args.item or (1, 2, 3):
        print("\n".join({1: item1, 2: item2, 3: item3}[item]()))


if __name__ == "__main__":
    main()
