"""How far from zero does a strong critic read at q = p in a *trained* model? (issue: finding 3)

    python tools/study/critic_zero_bias.py <checkpoint.ckpt> [--steps 300] [--batch 32]

Loads the model, sets its proposal equal to its transition (q = p step by step), and for each
critic input (the paper's sequence critic on the shared h path, on the own path, the conditional
critic) trains a WGAN-GP critic on fresh latents of training crops and reads its Wasserstein
estimate on the validation utterances, in standard errors; then again with the proposal's mean
shifted off the transition's, where every input must read clearly above zero. A critic input whose
zero sits at q = p reads within about 2 standard errors of zero in the first case.
"""

import argparse
import copy
from pathlib import Path

import torch

from avrnn.data.datamodule import SpeechDataModule
from avrnn.analysis.diagnostics import held_out_critic_distance, set_proposal_to_transition
from avrnn.evaluation.scoring import load_module
from avrnn.models.critic import ConditionalCritic, SequenceCritic

CASES = (("sequence", "shared"), ("sequence", "own"), ("conditional", "shared"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--steps", type=int, default=300, help="critic training steps")
    parser.add_argument("--batch", type=int, default=32, help="training crops per step")
    parser.add_argument("--shift", type=float, default=0.5, help="proposal mean shift of the control case")
    parser.add_argument("--passes", type=int, default=4, help="passes over the val utterances (fresh noise each)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    module = load_module(Path(args.checkpoint))
    data = dict(module.hparams.data, batch_size=args.batch)
    datamodule = SpeechDataModule(data, seed=0)
    datamodule.prepare_data()
    datamodule.setup()
    datamodule.use_statistics(module.hparams.normalization, "of the checkpoint")
    train = lambda: (batches[0] for batches in datamodule.train_dataloader())  # noqa: E731
    held_out = lambda: (b for _ in range(args.passes) for b in datamodule.eval_dataloader("val"))  # noqa: E731
    z_dim, h_dim = module.vrnn.z_dim, module.vrnn.hidden_size
    print(f"{args.checkpoint}: z {z_dim}, h {h_dim}, recurrence input {module.vrnn.recurrence_input}; "
          f"{args.steps} critic steps of {args.batch} crops, held out: {args.passes} x "
          f"{len(datamodule.frames['val'])} val utterances")
    print("| critic input | prior path | PS | W estimate | standard error | W / SE |")
    print("|---|---|---|---|---|---|")
    for shift in (0.0, args.shift):
        for critic_input, path in CASES:
            vrnn = copy.deepcopy(module.vrnn)
            vrnn.config.prior_path = path
            set_proposal_to_transition(vrnn, shift)
            torch.manual_seed(1)
            critic = (SequenceCritic(z_dim=z_dim, lstm_size=128, fc_size=100) if critic_input == "sequence"
                      else ConditionalCritic(z_dim=z_dim, h_dim=h_dim, fc_size=100))
            mean, se = held_out_critic_distance(vrnn, critic, train, held_out, steps=args.steps)
            ps = "= TR" if shift == 0 else f"TR + {shift}"
            print(f"| {critic_input} | {path} | {ps} | {mean:.4f} | {se:.4f} | {mean / se:.1f} |", flush=True)


if __name__ == "__main__":
    main()
