"""Where do subnormal floats arise in A-VRNN training? Counts them per phase and per tensor.

    python tools/checks/subnormal_census.py --out census.json -- experiment=study data=audio_dir \
        data.root=../shared/data/fsdd-3spk tuned=avrnn_paper training.max_iterations=300

Trains with flush_denormal=false (IEEE subnormals, so that they survive to be counted) and counts
subnormal elements (0 < |x| < the dtype's smallest normal) in:
  - every aten operator's output, per phase (reconstruction, critic, adversarial, elbo) and pass
    (forward or backward: what the CPU computes on, whether or not it is kept), via a dispatch mode;
  - every parameter, its gradient and its optimizer state (Adam's exp_avg / exp_avg_sq, RMSProp's
    square_avg) after each phase's step, by parameter name.
Every --every-th iteration is counted (the mode slows each counted iteration several times). Prints
the top rows of each table and writes them all to --out as JSON, with the totals per phase.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from avrnn.config import register_configs
from avrnn.training.denormals import count_subnormal
from avrnn.training.fit import train

CONF = Path(__file__).resolve().parents[2] / "conf"


class Counts:
    def __init__(self):
        self.subnormal, self.elements = defaultdict(int), defaultdict(int)

    def add(self, key: tuple, tensor: torch.Tensor) -> None:
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and tensor.numel():
            self.subnormal[key] += count_subnormal(tensor)
            self.elements[key] += tensor.numel()

    def rows(self) -> list[dict]:
        rows = [{"key": list(key), "subnormal": n, "elements": self.elements[key],
                 "fraction": n / self.elements[key]} for key, n in self.subnormal.items()]
        return sorted(rows, key=lambda row: -row["subnormal"])


class OperatorCensus(TorchDispatchMode):
    """Counts subnormal elements in each aten operator's outputs under the current (phase, pass)."""

    def __init__(self, counts: Counts):
        super().__init__()
        self.counts, self.where = counts, ("outside", "forward")

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            self.counts.add((*self.where, str(func.overloadpacket.__name__)), tensor)
        return out


class SubnormalCensus(pl.Callback):
    def __init__(self, every: int):
        self.every, self.operators, self.states, self.counted = every, Counts(), Counts(), 0

    def on_train_start(self, trainer, module):
        census, states, names = self, self.states, {p: n for n, p in module.named_parameters()}
        optimize, backward = module._optimize, module.manual_backward

        def counted_optimize(optimizer, phase, loss_fn, *inputs):
            mode = census.mode
            if mode is None:
                return optimize(optimizer, phase, loss_fn, *inputs)
            mode.where = (phase, "forward")
            with mode:
                result = optimize(optimizer, phase, loss_fn, *inputs)
            for group in optimizer.param_groups:
                for p in group["params"]:
                    name = names[p]
                    states.add((phase, "parameter", name), p.detach())
                    if p.grad is not None:
                        states.add((phase, "gradient", name), p.grad)
                    for key, value in optimizer.state.get(p, {}).items():
                        if key != "step":
                            states.add((phase, f"optimizer {key}", name), value)
            return result

        def counted_backward(loss, *args, **kwargs):
            mode = census.mode
            if mode is not None:
                mode.where = (mode.where[0], "backward")
            return backward(loss, *args, **kwargs)

        module._optimize, module.manual_backward = counted_optimize, counted_backward
        self.mode = None

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.mode = OperatorCensus(self.operators) if module.iteration % self.every == 0 else None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.counted += self.mode is not None
        self.mode = None


def totals(rows: list[dict], depth: int) -> dict:
    result: dict = defaultdict(lambda: [0, 0])
    for row in rows:
        key = " / ".join(row["key"][:depth])
        result[key][0] += row["subnormal"]
        result[key][1] += row["elements"]
    return {key: {"subnormal": n, "elements": e, "fraction": n / e} for key, (n, e) in result.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("subnormal_census.json"))
    parser.add_argument("--every", type=int, default=10, help="count every N-th iteration")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("overrides", nargs="*", help="training overrides (after --)")
    args = parser.parse_args()
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*args.overrides, "flush_denormal=false",
                                                       "training.test_after_training=false",
                                                       f"paths.output_dir={args.out.parent / 'census_run'}"])
    census = SubnormalCensus(args.every)
    train(cfg, callbacks=[census])
    operators, states = census.operators.rows(), census.states.rows()
    report = {"iterations_counted": census.counted, "every": args.every, "overrides": args.overrides,
              "operators_by_phase_and_pass": totals(operators, 2), "states_by_phase_and_kind": totals(states, 2),
              "operators": operators, "states": states}
    args.out.write_text(json.dumps(report, indent=1))
    print(f"{census.counted} iterations counted (every {args.every}-th)")
    for title, table in (("operator outputs by phase and pass", report["operators_by_phase_and_pass"]),
                         ("parameters, gradients, optimizer states by phase", report["states_by_phase_and_kind"])):
        print(f"\n{title}: subnormal elements / elements")
        for key, value in sorted(table.items(), key=lambda item: -item[1]["subnormal"]):
            print(f"  {key:<45} {value['subnormal']:>12,} / {value['elements']:>14,} ({value['fraction']:.2e})")
    for title, rows in (("operators", operators), ("tensors", states)):
        print(f"\ntop {args.top} {title}:")
        for row in rows[:args.top]:
            print(f"  {' / '.join(row['key']):<70} {row['subnormal']:>12,} ({row['fraction']:.2e})")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
