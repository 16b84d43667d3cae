"""Where does KL(q || p) come from in a trained model? Prior and posterior scales on the test split.

    python tools/study/latent_scales.py <checkpoint.ckpt> [<checkpoint.ckpt> ...]

The issue's finding 3 suspects that a strong critic reading a biased sequence distance pushes the
transition TR off q = p, seen as a collapsing prior std and a KL in the 1e11 range. This prints, per
checkpoint, `avrnn.analysis.diagnostics.latent_scales` over the test split as one markdown row.
"""

import argparse
from pathlib import Path

import torch

from avrnn.analysis.diagnostics import latent_scales
from avrnn.evaluation.scoring import build_eval_data, load_module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--batch", type=int, default=50, help="utterances per batch")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for path in args.checkpoints:
        module = load_module(path)
        loader = build_eval_data(module, None, "test", args.batch).eval_dataloader("test")
        rows.append((path, latent_scales(module.vrnn, loader)))
    columns = list(rows[0][1])
    print("| checkpoint | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for path, values in rows:
        print(f"| {path} | " + " | ".join(f"{values[c]:.4g}" for c in columns) + " |")


if __name__ == "__main__":
    main()
