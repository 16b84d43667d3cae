"""Scores one folder of reconstructions per utterance with this project's scorer (avrnn.evaluation.speech_quality:
SI-SDR, wide-band PESQ, ESTOI), against the listed test files prepared as the benchmark's evaluation prepares
them (read at RATE, silence trimmed at TOP_DB with librosa.effects.trim, as both sides' models saw them). Each
reconstruction starts where the trimmed file starts; the longer of the two is cut to the shorter (an inverse
STFT without a length ends up to a hop early); lengths more than --hop apart are refused. Any scale: the
metrics are scale-invariant (SI-SDR, ESTOI) or level-aligned (PESQ).

    python tools/parity/score.py ROOT LIST WAV_DIR OUT.json [--rate 16000] [--top-db 30] [--hop 256]

OUT.json: {relative path: {si_sdr, pesq, estoi}: each a value or the reason it was not scored}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import torch

from avrnn.data.audio import read_audio
from avrnn.data.corpus import read_file_list
from avrnn.evaluation.speech_quality import MIN_SECONDS, SILENT_PEAK, Unscorable, estoi, pesq, score_utterance, si_sdr


def score_each_metric(estimate: np.ndarray, reference: np.ndarray, rate: int) -> dict:
    """Each metric on every utterance it can score: metric -> value, or the reason. (speech_quality.score_utterance
    leaves an utterance out of every metric where one fails; here a digit too short for ESTOI keeps its SI-SDR
    and PESQ, as the benchmark reports them.) Too short or digitally silent: left out of all, as there."""
    if len(reference) < MIN_SECONDS * rate or not np.max(np.abs(reference)) >= SILENT_PEAK:
        return score_utterance(estimate, reference, rate)
    scores = {}
    for name, metric in (("si_sdr", lambda: si_sdr(estimate, reference)), ("pesq", lambda: pesq(estimate, reference, rate)),
                         ("estoi", lambda: estoi(estimate, reference, rate))):
        try:
            value = metric()
            scores[name] = value if np.isfinite(value) else f"{name} not finite"
        except Unscorable as why:
            scores[name] = str(why)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("list", type=Path)
    parser.add_argument("wav_dir", type=Path, help="WAV_DIR/<relative path>: one reconstruction per listed file")
    parser.add_argument("out", type=Path)
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--top-db", type=float, default=30.0)
    parser.add_argument("--hop", type=int, default=256, help="the STFT hop, samples: the most the two lengths may "
                        "differ by (more means the reconstruction is not on the trimmed file's time line)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    scores = {}
    for name in read_file_list(args.list):
        reference, _ = librosa.effects.trim(read_audio(args.root / name, args.rate), top_db=args.top_db)
        estimate, rate = sf.read(str(args.wav_dir / name), dtype="float32")
        if rate != args.rate:
            raise SystemExit(f"{args.wav_dir / name} is at {rate} Hz, the scoring rate is {args.rate} Hz")
        if abs(len(reference) - len(estimate)) > args.hop:
            raise SystemExit(f"{args.wav_dir / name} has {len(estimate)} samples, the trimmed reference {len(reference)}: "
                             f"more than a hop ({args.hop}) apart, so it is not on the trimmed file's time line; "
                             f"reconstruct the file trimmed at --top-db {args.top_db:g}, or give the right --hop")
        length = min(len(reference), len(estimate))
        scores[name] = score_each_metric(np.ascontiguousarray(estimate[:length]),
                                       np.ascontiguousarray(reference[:length]), args.rate)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(scores, indent=1))
    means = {metric: [s[metric] for s in scores.values() if isinstance(s[metric], float)]
             for metric in ("si_sdr", "pesq", "estoi")}
    print(", ".join(f"{metric} {np.mean(values) if values else float('nan'):.3f} ({len(values)} of {len(scores)})"
                    for metric, values in means.items()) + f" -> {args.out}")


if __name__ == "__main__":
    main()
