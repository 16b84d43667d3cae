"""The parity criterion of docs/dvae-parity.md: per utterance, each metric averaged over one side's seeds, this
project's minus the other codebase's, paired by utterance; the mean difference with a 95% t-interval over the
utterances, and whether its lower end clears the margin (SI-SDR -0.5 dB, PESQ and ESTOI -0.05). Only utterances
every run of both sides scored enter a metric's comparison.

    python tools/parity/compare.py --ours A0.json A1.json A2.json --peer B0.json B1.json B2.json [--json OUT]

(the files of tools/parity/score.py). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from scipy import stats

MARGINS = {"si_sdr": 0.5, "pesq": 0.05, "estoi": 0.05}  # the lower end of the interval must be above -margin
UNITS = {"si_sdr": "dB", "pesq": "MOS-LQO", "estoi": ""}


def side_means(runs: list[dict], metric: str, names: list[str]) -> np.ndarray:
    return np.array([np.mean([run[name][metric] for run in runs]) for name in names])


def compare(ours: list[dict], peer: list[dict]) -> dict:
    result = {}
    for metric, margin in MARGINS.items():
        names = sorted(name for name in ours[0]
                       if all(isinstance(run.get(name, {}).get(metric), float) for run in ours + peer))
        a, b = side_means(ours, metric, names), side_means(peer, metric, names)
        difference = a - b
        n = len(difference)
        half = stats.t.ppf(0.975, n - 1) * difference.std(ddof=1) / math.sqrt(n) if n > 1 else math.inf
        mean = float(difference.mean()) if n else math.nan
        result[metric] = {"utterances": n, "ours": float(a.mean()), "peer": float(b.mean()), "difference": mean,
                          "ci95": [mean - half, mean + half], "margin": -margin, "holds": bool(mean - half > -margin)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ours", nargs="+", type=Path, required=True)
    parser.add_argument("--peer", nargs="+", type=Path, required=True)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = compare([json.loads(p.read_text()) for p in args.ours], [json.loads(p.read_text()) for p in args.peer])
    print(f"| metric | utterances | ours ({len(args.ours)} seeds) | peer ({len(args.peer)} seeds) | ours - peer [95% CI] "
          "| margin | holds |\n|---|---|---|---|---|---|---|")
    for metric, r in result.items():
        print(f"| {metric} {UNITS[metric]} | {r['utterances']} | {r['ours']:.3f} | {r['peer']:.3f} | {r['difference']:+.3f} "
              f"[{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}] | > {r['margin']} | {'yes' if r['holds'] else 'NO'} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
