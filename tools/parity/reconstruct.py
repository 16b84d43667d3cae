"""Reconstructions of a test list by a trained checkpoint, one WAV per listed file, for scoring beside another
codebase's (tools/parity/score.py; docs/dvae-parity.md). The DVAE benchmark's evaluation protocol, which
this project's speech quality follows too: the file read at the model's rate, prepared by its representation
(silence trimmed at 30 dB for stft), encoded, reconstructed teacher-forced with one posterior sample (seed 0,
VRNN.reconstruct: the emission's mean) over the whole utterance, decoded with the original's phase.

    python tools/parity/reconstruct.py CHECKPOINT ROOT LIST OUT_DIR

writes OUT_DIR/<the list's relative path> (float WAVs at the model's rate, on the prepared time line).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import soundfile as sf
import torch

from avrnn.data.audio import read_audio
from avrnn.data.corpus import read_file_list
from avrnn.evaluation.scoring import load_module


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("root", type=Path, help="the corpus folder the list's paths are relative to")
    parser.add_argument("list", type=Path, help="the test list (one path relative to ROOT per line)")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0, help="the posterior samples' seed (the benchmark's: 0)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    module = load_module(args.checkpoint)
    representation, rate = module.representation, module.hparams.data["sample_rate"]
    torch.manual_seed(args.seed)
    for name in read_file_list(args.list):
        audio = representation.prepare(read_audio(args.root / name, rate))
        features = representation.encode(audio).unsqueeze(0)
        power = module.vrnn.reconstruct(features, torch.ones(features.shape[:2]))[0]
        out = args.out_dir / name
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(out), representation.decode(power, audio), rate, subtype="FLOAT")
    print(f"{len(read_file_list(args.list))} reconstructions ({representation.decoded_how(True)}) in {args.out_dir}")


if __name__ == "__main__":
    main()
