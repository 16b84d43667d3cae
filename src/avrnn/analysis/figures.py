"""The paper's figures from a run's TensorBoard logs (PNG, matplotlib).

fig2_bounds.png   ELBO and reconstruction per timestep vs training iteration (the paper's Fig. 2)
fig3_critic.png   critic (discriminator) loss and adversarial loss (Fig. 3)
kl.png            KL(q || p) per timestep: Theorem 1 says it goes to 0 when the critic's distance does
Training curves are averaged over blocks of `every` iterations, as the paper did (100); validation
points are drawn as they are.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def read_scalars(run_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """tag -> (steps, values) from the run's tensorboard/ folder, ascending steps, one value per step: the
    curve of the attempt that went on. Each tag's events are taken in the order written (their wall time);
    a step below one already seen starts a resumed attempt and drops the values at that step and above,
    and a step logged again keeps its last value.

    A run leaves several event files (one per Trainer stage: the validation before training, fit, test;
    the run summary's; more on each resume), which TensorBoard reads by name, and names do not sort by
    time: ``<second>.<host>.<pid>.10`` sorts before ``.9`` of the same second. A resume from a checkpoint
    older than the stop logs the lost iterations again, and a resume with another training.max_iterations
    or iterations_per_epoch would leave the first attempt's later points between its own. (At
    training.iterations_per_epoch=1 the validation before training and the first one in training share
    step 0: the later is kept.) Raises FileNotFoundError when run_dir has no tensorboard/."""
    folder = Path(run_dir) / "tensorboard"
    if not folder.is_dir():
        raise FileNotFoundError(f"no tensorboard/ folder in {run_dir}; pass a run folder such as logs/runs/<date>/<time>")
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    reader_log = logging.getLogger("tensorboard")  # logs every event file it walks at INFO: not news to a user
    level = reader_log.level
    reader_log.setLevel(logging.WARNING)
    try:
        events.Reload()
    finally:
        reader_log.setLevel(level)
    return {tag: _as_written(events.Scalars(tag)) for tag in events.Tags()["scalars"]}


def _as_written(events) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one tag's scalar events, by read_scalars' rule."""
    kept: dict[int, float] = {}
    top = None  # the highest step kept
    for event in sorted(events, key=lambda e: e.wall_time):
        if top is not None and event.step < top:  # a resumed attempt: what the last one logged from here on goes
            kept = {step: value for step, value in kept.items() if step < event.step}
            top = event.step
        kept[event.step] = event.value
        top = event.step if top is None else max(top, event.step)
    steps = sorted(kept)
    return np.array(steps, dtype=np.int64), np.array([kept[step] for step in steps], dtype=np.float64)


def block_average(steps: np.ndarray, values: np.ndarray, every: int) -> tuple[np.ndarray, np.ndarray]:
    blocks = steps // every
    keys = np.unique(blocks)
    return (keys + 1) * every, np.array([values[blocks == k].mean() for k in keys])


CONVERGED_SHARE = 0.3  # the second half of a run spans at least this share of the y axis


def converged_limits(curves: list[tuple[np.ndarray, np.ndarray]], last_step: float) -> tuple[float, float] | None:
    """y limits on which the second half of a run reads: None (matplotlib's own) where the values of
    iterations >= last_step / 2 already span CONVERGED_SHARE of the whole range; else the second half's
    range padded to 2x (it then fills half the axis height) and the early values leave the axis. An
    untrained VRNN starts near -1.5e6 nats per timestep and converges near +50: on its whole range the
    converged curve is a flat line at 0."""
    every = np.concatenate([v[np.isfinite(v)] for _, v in curves]) if curves else np.array([])
    late = np.concatenate([v[(s >= last_step / 2) & np.isfinite(v)] for s, v in curves]) if curves else np.array([])
    if late.size == 0 or every.size == 0:
        return None
    low, high = float(late.min()), float(late.max())
    whole = float(every.max() - every.min())
    if whole == 0 or (high - low) >= CONVERGED_SHARE * whole:
        return None
    pad = max(high - low, 1e-6 * max(abs(low), abs(high), 1.0)) / 2
    return low - pad, high + pad


def _panel(axis, scalars, tags: dict[str, str], every: int, ylabel: str) -> bool:
    drawn, curves = False, []
    for tag, label in tags.items():
        if tag not in scalars:
            continue
        steps, values = scalars[tag]
        if tag.startswith("train/"):
            steps, values = block_average(steps, values, every)
            axis.plot(steps, values, label=f"{label} (train, mean of {every})")
        else:
            steps = steps + 1
            axis.plot(steps, values, "o--", label=f"{label} (validation)")
        curves.append((steps, values))
        drawn = True
    limits = converged_limits(curves, max((float(s.max()) for s, _ in curves if s.size), default=0.0))
    if limits is not None:
        axis.set_ylim(*limits)
        ylabel += "\n(2nd half's range)"
    axis.set_xlabel("training iteration")
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3)
    if drawn:
        axis.legend()
    return drawn


def default_every(iterations: int) -> int:
    """The block of iterations the training curves are averaged over: the paper's 100, at most a tenth of the
    run (a short run keeps ten points)."""
    return min(100, max(1, iterations // 10))


def plot_run(run_dir: Path, every: int | None = None, output_dir: Path | None = None) -> list[Path]:
    """The figures of a run folder, as PNGs in output_dir (default <run_dir>/plots); every=None averages the
    training curves as the run's own figures do (default_every of the iterations it logged)."""
    scalars = read_scalars(run_dir)
    if every is None:  # a training step k is iteration k + 1
        logged = [int(steps.max()) + 1 for tag, (steps, _) in scalars.items() if tag.startswith("train/") and steps.size]
        every = default_every(max(logged, default=1000))
    output_dir = Path(output_dir or Path(run_dir) / "plots")
    output_dir.mkdir(parents=True, exist_ok=True)
    figures = {
        "fig2_bounds.png": ({"train/elbo_per_timestep": "ELBO", "train/rec_per_timestep": "-reconstruction",
                             "val/elbo_per_timestep": "ELBO"}, "nats per timestep"),
        "fig3_critic.png": ({"train/critic_loss": "discriminator loss", "train/adversarial_loss": "adversarial loss"},
                            "loss (gan: nats; wgan: critic units)"),
        "kl.png": ({"train/kl_per_timestep": "KL(q||p)", "val/kl_per_timestep": "KL(q||p)"}, "nats per timestep"),
    }
    written = []
    for name, (tags, ylabel) in figures.items():
        if name == "fig2_bounds.png" and "train/rec_per_timestep" in scalars:
            steps, values = scalars["train/rec_per_timestep"]
            scalars = {**scalars, "train/rec_per_timestep": (steps, -values)}  # same sign as the ELBO
        figure, axis = plt.subplots(figsize=(7, 4))
        if _panel(axis, scalars, tags, every, ylabel):
            axis.set_title(f"{Path(run_dir).name}: {name.removesuffix('.png')}")
            figure.tight_layout()
            figure.savefig(output_dir / name, dpi=120)
            written.append(output_dir / name)
        plt.close(figure)
    return written
