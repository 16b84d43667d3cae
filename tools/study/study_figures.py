"""The study's figures (docs/results.md): Fig. 2, Fig. 3 and KL of every arm, the seeds overlaid.

    python tools/study/study_figures.py logs/study docs/figures/study [--corpus fsdd]
    python tools/study/study_figures.py logs/study docs/figures/study --critics

Reads the TensorBoard logs of logs/study/final-<arm>/<corpus>-seed<k>/ and writes three PNGs:
study_fig2_<corpus>.png (validation ELBO and training reconstruction per timestep),
study_fig3_<corpus>.png (critic's distance estimate and adversarial loss, training, 100-iteration
means) and study_kl_<corpus>.png (training KL per timestep, log scale), one panel per arm.
With --critics: study_critics_kl_fsdd.png, the training KL of the gan and wgan_gp runs
(logs/study/critic-<arm>-<critic>/fsdd-seed1/) beside the arm's own WGAN final (seed 1), one panel
per critic input and prior path.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from avrnn.analysis.figures import block_average, read_scalars  # noqa: E402

ARMS = ["vrnn", "avrnn_paper", "avrnn_conditional", "avrnn_own", "avrnn_literal", "avrnn_hybrid",
        "avrnn_posterior_only"]
COLOURS = ["tab:blue", "tab:orange", "tab:green"]


def runs_of(root: Path, arm: str, corpus: str) -> list[Path]:
    return sorted(path for path in (root / f"final-{arm}").glob(f"{corpus}-seed*") if (path / "tensorboard").is_dir())


def figure(root: Path, corpus: str, arms: list[str], draw, title: str, path: Path, log_y: bool = False) -> None:
    columns = min(4, len(arms))
    rows = -(-len(arms) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False, sharex=True)
    for axis, arm in zip(axes.flat, arms):
        for colour, run in zip(COLOURS, runs_of(root, arm, corpus)):
            draw(axis, read_scalars(run), colour, run.name.split("-")[-1])
        axis.set_title(arm, fontsize=10)
        axis.set_xlabel("iteration")
        if log_y:
            axis.set_yscale("symlog", linthresh=1.0)
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(arms):]:
        axis.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def curve(axis, scalars, tag, colour, label, style="-", every=100, sign=1.0):
    if tag not in scalars:
        return
    steps, values = scalars[tag][0], sign * scalars[tag][1]
    if every > 1:
        steps, values = block_average(steps, values, every)
    axis.plot(np.asarray(steps) + 1, values, style, color=colour, label=label, linewidth=1)


CRITIC_ARMS = {"avrnn_paper": "sequence critic, shared path (the paper's)", "avrnn_own": "sequence critic, own path",
               "avrnn_conditional": "conditional critic"}


def critics_figure(root: Path, path: Path) -> None:
    """Training KL per timestep (10-iteration means) of wgan, gan and wgan_gp, one panel per critic input."""
    fig, axes = plt.subplots(1, len(CRITIC_ARMS), figsize=(4 * len(CRITIC_ARMS), 3), sharey=True)
    for axis, (arm, title) in zip(axes, CRITIC_ARMS.items()):
        for colour, critic in zip(COLOURS, ("wgan", "gan", "wgan_gp")):
            run = root / (f"final-{arm}" if critic == "wgan" else f"critic-{arm}-{critic}") / "fsdd-seed1"
            if (run / "tensorboard").is_dir():
                curve(axis, read_scalars(run), "train/kl_per_timestep", colour, critic, every=10)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("iteration")
        axis.set_yscale("log")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("KL, nats per timestep")
    axes[0].legend(fontsize=7)
    fig.suptitle("fsdd, seed 1: training KL with the WGAN (clipped), GAN and WGAN-GP critics, 10-iteration means")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--corpus", default="fsdd")
    parser.add_argument("--critics", action="store_true", help="the gan / wgan_gp runs' KL figure instead")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.critics:
        critics_figure(args.root, args.out / "study_critics_kl_fsdd.png")
        print(args.out / "study_critics_kl_fsdd.png")
        return
    arms = [arm for arm in ARMS if runs_of(args.root, arm, args.corpus)]

    def fig2(axis, s, colour, label):
        curve(axis, s, "val/elbo_per_timestep", colour, f"{label} val ELBO", "-", every=1)
        curve(axis, s, "train/rec_per_timestep", colour, f"{label} -train rec.", ":", sign=-1.0)
        axis.set_ylabel("nats per timestep")

    def fig3(axis, s, colour, label):
        distance = "train/wasserstein" if "train/wasserstein" in s else "train/js_divergence"
        curve(axis, s, distance, colour, f"{label} critic distance", "-")
        curve(axis, s, "train/adversarial_loss", colour, f"{label} adversarial loss", ":")

    def kl(axis, s, colour, label):
        curve(axis, s, "train/kl_per_timestep", colour, label)
        axis.set_ylabel("KL, nats per timestep")

    c = args.corpus
    figure(args.root, c, arms, fig2, f"Fig. 2 ({c}): validation ELBO (solid) and training reconstruction (dotted, "
           "negated)", args.out / f"study_fig2_{c}.png", log_y=True)
    figure(args.root, c, [a for a in arms if a != "vrnn"], fig3, f"Fig. 3 ({c}): critic distance (solid) and "
           "adversarial loss (dotted), 100-iteration means", args.out / f"study_fig3_{c}.png", log_y=True)
    figure(args.root, c, arms, kl, f"KL per timestep ({c}), 100-iteration means", args.out / f"study_kl_{c}.png",
           log_y=True)
    print("\n".join(str(p) for p in sorted(args.out.glob(f"study_*_{c}.png"))))


if __name__ == "__main__":
    main()
