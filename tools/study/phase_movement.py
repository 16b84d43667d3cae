"""Which phase drives the KL up? How far each phase moves the posterior and the prior (issue 22, item 4).

    python tools/study/phase_movement.py OUT_DIR [--arm avrnn_paper] [--factors 1 10] [--iterations 1000]

Trains a critic-only arm (the study's setting, `experiment=study tuned=<arm>` on fsdd-3spk, one thread,
fp32) at its tuned likelihood rate times each factor, and around every phase of every iteration
evaluates the model on one fixed batch (the first validation batch, the same noise every time:
differences are the parameters' doing, not the sampling's). Per phase it records, in the output space
(over the batch's real frames and latent dimensions):

  kl_before, kl_after   KL(q || p) on the batch, nats per timestep
  d_post_mean, d_prior_mean     RMS change of the posterior's (PS) and the prior's (TR) means
  d_post_logstd, d_prior_logstd RMS change of their log standard deviations (a relative change of the std)

OUT_DIR/<arm>_x<factor>.csv holds one row per phase call; OUT_DIR/phase_movement.png the figure;
the summary (per phase: the KL change it caused, summed over the run, and its mean movements) is printed
as markdown. The critic phase moves neither distribution (a check: it trains only the critic).
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir

from avrnn.config import register_configs
from avrnn.models import losses
from avrnn.training.fit import train

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ("iteration", "phase", "kl_before", "kl_after", "d_post_mean", "d_prior_mean", "d_post_logstd",
           "d_prior_logstd")


@torch.no_grad()
def latent_view(vrnn, x: torch.Tensor, mask: torch.Tensor, noise_seed: int = 0) -> dict[str, torch.Tensor]:
    """Posterior and prior means and log stds on the real frames (N, Z), and the KL in nats per timestep,
    with the sampling noise fixed (the RNG of training is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(noise_seed)
        out = vrnn(x, mask, prior_samples=False)
    real = mask.bool()
    return {"post_mean": out.posterior.mean[real], "prior_mean": out.prior.mean[real],
            "post_logstd": out.posterior.stddev[real].log(), "prior_logstd": out.prior.stddev[real].log(),
            "kl": losses.per_timestep(out.kl, out.mask)}


def rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).double().pow(2).mean().sqrt().item()


class PhaseProbe(pl.Callback):
    """Wraps the module's run_phase so that every phase call is measured before and after."""

    def __init__(self, out_csv: Path):
        self.out_csv = out_csv
        self.rows: list[dict] = []

    def on_fit_start(self, trainer, module) -> None:
        x, mask = next(iter(trainer.datamodule.val_dataloader()))
        self.batch = (x.to(module.device), mask.to(module.device))
        module.run_phase = self._probed(module, module.run_phase)

    def _probed(self, module, run_phase):
        def probed(phase, optimizer, x, mask):
            before = latent_view(module.vrnn, *self.batch)
            terms = run_phase(phase, optimizer, x, mask)
            after = latent_view(module.vrnn, *self.batch)
            row = {"iteration": module.iteration, "phase": phase, "kl_before": before["kl"].item(),
                   "kl_after": after["kl"].item()}
            row.update({f"d_{key}": rms(after[key], before[key])
                        for key in ("post_mean", "prior_mean", "post_logstd", "prior_logstd")})
            self.rows.append(row)
            return terms
        return probed

    def on_fit_end(self, trainer, module) -> None:
        with self.out_csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)


def run(arm: str, factor: float, iterations: int, out_dir: Path, data_root: Path, seed: int) -> Path:
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "experiment=study", f"tuned={arm}", "data=audio_dir", f"data.root={data_root}",
            "trainer.precision=32-true", f"training.max_iterations={iterations}", f"seed={seed}",
            f"paths.output_dir={out_dir / f'{arm}_x{factor:g}_run'}", "training.test_after_training=false"])
    cfg.model.optimizer.lr = float(cfg.model.optimizer.lr) * factor
    out_csv = out_dir / f"{arm}_x{factor:g}.csv"
    train(cfg, callbacks=[PhaseProbe(out_csv)])
    return out_csv


def read(path: Path) -> list[dict]:
    with path.open() as f:
        return [{k: (v if k == "phase" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]


def summary(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per phase: the KL change it caused summed over the run, the number of calls that raised the KL,
    and its mean movements."""
    out: dict[str, dict[str, float]] = {}
    for phase in dict.fromkeys(r["phase"] for r in rows):
        mine = [r for r in rows if r["phase"] == phase]
        changes = [r["kl_after"] - r["kl_before"] for r in mine if math.isfinite(r["kl_after"] - r["kl_before"])]
        out[phase] = {"calls": len(mine), "kl_change_sum": sum(changes),
                      "kl_raised_fraction": sum(c > 0 for c in changes) / max(len(changes), 1),
                      **{key: sum(r[key] for r in mine) / len(mine) for key in COLUMNS[4:]}}
    return out


def running_mean(values: list[float], width: int) -> list[float]:
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value - (values[i - width] if i >= width else 0.0)
        out.append(total / min(i + 1, width))
    return out


def figure(runs: dict[str, list[dict]], path: Path, width: int = 50) -> None:
    """Left: the KL on the fixed batch. Then, per run: how far each phase moves the posterior's (q)
    and the prior's (p) means per step (RMS over frames and latent dimensions; `width`-iteration
    running means)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 1 + len(runs), figsize=(5 * (1 + len(runs)), 4))
    for label, rows in runs.items():
        starts = [r for r in rows if r["phase"] == rows[0]["phase"]]
        axes[0].plot([r["iteration"] for r in starts], [r["kl_before"] for r in starts], label=label)
    axes[0].set(yscale="log", xlabel="iteration", ylabel="KL on the fixed batch (nats per timestep)",
                title="KL(q || p) on one validation batch")
    for ax, (label, rows) in zip(axes[1:], runs.items()):
        for phase, style in (("reconstruction", "-"), ("adversarial", "--")):
            mine = [r for r in rows if r["phase"] == phase]
            for key, name, color in (("d_post_mean", "q mean (PS)", "tab:blue"), ("d_prior_mean", "p mean (TR)",
                                                                                     "tab:red")):
                ax.plot([r["iteration"] for r in mine], running_mean([r[key] for r in mine], width), style,
                        color=color, label=f"{name} moved by the {phase} phase")
        ax.set(yscale="log", xlabel="iteration", ylabel="RMS move per step", title=label)
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def windows(rows: list[dict], edges: tuple[int, ...]) -> dict[tuple[int, int], dict[str, float]]:
    """KL change caused by each phase, summed within each window of iterations [edges[i], edges[i+1])."""
    out = {}
    for low, high in zip(edges, edges[1:]):
        sums: dict[str, float] = {}
        for r in rows:
            if low <= r["iteration"] < high:
                sums[r["phase"]] = sums.get(r["phase"], 0.0) + r["kl_after"] - r["kl_before"]
        out[(low, high)] = sums
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--arm", default="avrnn_paper")
    parser.add_argument("--factors", type=float, nargs="+", default=[1.0, 10.0],
                        help="multiples of the arm's tuned likelihood rate")
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data" / "fsdd-3spk")
    parser.add_argument("--summarize-only", action="store_true", help="read the CSVs of an earlier run")
    args = parser.parse_args()
    args.out_dir = args.out_dir.resolve()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    runs = {}
    for factor in args.factors:
        path = args.out_dir / f"{args.arm}_x{factor:g}.csv"
        if not args.summarize_only:
            path = run(args.arm, factor, args.iterations, args.out_dir, args.data_root.resolve(), args.seed)
        runs[f"{args.arm} x{factor:g} rate"] = read(path)
    figure(runs, args.out_dir / "phase_movement.png")
    edges = (0, 10, 100, 400, 700, args.iterations)
    print("| run | iterations | KL at start -> end | KL change by reconstruction phases | by adversarial phases |")
    print("|---|---|---|---|---|")
    for label, rows in runs.items():
        starts = {int(r["iteration"]): r["kl_before"] for r in rows if r["phase"] == rows[0]["phase"]}
        for (low, high), sums in windows(rows, edges).items():
            end = starts.get(high, rows[-1]["kl_after"])
            print(f"| {label} | {low}-{high} | {starts[low]:.4g} -> {end:.4g} | {sums.get('reconstruction', 0):+.4g} "
                  f"| {sums.get('adversarial', 0):+.4g} |")
    print()
    print("| run | phase | calls | KL change, summed (nats/timestep) | calls raising the KL | RMS move of "
          "q mean | p mean | q log std | p log std |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, rows in runs.items():
        for phase, s in summary(rows).items():
            print(f"| {label} | {phase} | {s['calls']:.0f} | {s['kl_change_sum']:+.4g} | {s['kl_raised_fraction']:.0%} "
                  f"| {s['d_post_mean']:.3g} | {s['d_prior_mean']:.3g} | {s['d_post_logstd']:.3g} "
                  f"| {s['d_prior_logstd']:.3g} |")


if __name__ == "__main__":
    main()
