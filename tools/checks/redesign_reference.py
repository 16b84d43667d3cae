"""Records (or compares against) what training computes, to hold a refactoring to "the numbers do
not move": every arm's parameters after 5 iterations in deterministic mode, and the test bounds of
a short run. Run before and after a change:

    python tools/checks/redesign_reference.py record  /tmp/reference.pt
    python tools/checks/redesign_reference.py compare /tmp/reference.pt

tools/checks/reference.pt is the reference recorded after the stops change (evaluation on its own random
stream: every trajectory changed then), at the commit that added it; compare a refactoring against it on the
kind of CPU that recorded it. Bitwise equality holds only on one kind of CPU (other matmul kernels round
otherwise: on an AMD EPYC in December 2026 the critic arms of 392a5b0 ended up to 3e-7 away from reference.pt),
so elsewhere record at the base commit first (a git worktree, PYTHONPATH=<worktree>/src) and compare with that,
as the representations change did (392a5b0 recorded, its descendant compared: all 11 arms bitwise equal).

`compare` maps renamed parameters through avrnn.training.checkpoints' key map, so a layer rename is not a
difference; it prints the largest difference per arm and exits 1 unless parameters are bitwise equal
and the bounds equal up to float rounding.
"""

import sys
import tempfile
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir

from avrnn.config import register_configs
from avrnn.training.fit import train

ROOT = Path(__file__).resolve().parents[2]
ARMS = {
    "avrnn_wgan": ["arm=avrnn_wgan"],
    "avrnn_wgan_gp": ["arm=avrnn_wgan_gp"],
    "avrnn_gan": ["arm=avrnn_gan"],
    "avrnn_posterior_only": ["arm=avrnn_posterior_only"],
    "avrnn_hybrid": ["arm=avrnn_wgan", "ablation=hybrid"],
    "avrnn_lstm_shared_batch": ["arm=avrnn_wgan", "model.rnn=lstm", "training.fresh_batch_per_phase=false",
                                "critic.n_critic=2"],
    "avrnn_paper": ["arm=avrnn_paper"],
    "avrnn_conditional": ["arm=avrnn_conditional"],
    "avrnn_own": ["arm=avrnn_own"],
    "avrnn_literal": ["arm=avrnn_literal"],
    "vrnn": ["arm=vrnn"],
    # "vrnn_warmup_free_bits_bernoulli" (reference.pt holds it) is left out since the representations change: a
    # Bernoulli emission on z-scored waveform frames is not a likelihood and is refused (avrnn.config.emission_fits)
}
SMALL = ["model.hidden_size=32", "model.x_features=16", "model.z_features=16", "model.mlp_hidden=32",
         "model.z_dim=8", "data.synthetic.train_speakers=2", "data.synthetic.test_speakers=1",
         "data.synthetic.utterances_per_speaker=4", "data.synthetic.min_seconds=0.3", "data.synthetic.max_seconds=0.5",
         "data.val_fraction=0.25", "data.batch_size=4", "data.eval_batch_size=4", "data.crop_frames=10",
         "data.cache_dir=null", "training.iterations_per_epoch=5", "trainer.enable_progress_bar=false",
         "trainer.enable_model_summary=false", "trainer.deterministic=true", "seed=7", "training.max_iterations=5"]


class Record(pl.Callback):
    def on_train_start(self, trainer, module):
        self.start = {k: v.detach().clone() for k, v in module.state_dict().items()}

    def on_train_end(self, trainer, module):
        self.end = {k: v.detach().clone() for k, v in module.state_dict().items()}


def run(overrides: list[str], workdir: Path) -> dict:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*SMALL, *overrides, f"data.root={workdir / 'corpus'}",
                                                       f"paths.output_dir={workdir / 'run'}"])
    record = Record()
    metrics = train(cfg, callbacks=[record])
    bounds = {k: v for k, v in metrics.items() if k.startswith("test/")}
    return {"start": record.start, "end": record.end, "bounds": bounds}


def renamed(state: dict) -> dict:
    try:
        from avrnn.training.checkpoints import upgrade_state_dict  # present after the layer renames
    except ImportError:
        return state
    return upgrade_state_dict(state)


def main() -> int:
    mode, path = sys.argv[1], Path(sys.argv[2])
    register_configs()
    results = {}
    for name, overrides in ARMS.items():
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = run(overrides, Path(tmp))
    if mode == "record":
        torch.save(results, path)
        print(f"recorded {len(results)} arms to {path}")
        return 0
    reference, failed = torch.load(path), False
    for name, result in results.items():
        ref = reference[name]
        for when in ("start", "end"):
            old, new = renamed(ref[when]), result[when]
            if set(old) != set(new):
                print(f"{name} {when}: keys differ: {sorted(set(old) ^ set(new))}")
                failed = True
                continue
            worst = max(float((old[k].double() - new[k].double()).abs().max()) if old[k].numel() else 0.0
                        for k in old)
            bitwise = all(torch.equal(old[k], new[k]) for k in old)
            failed |= not bitwise
            print(f"{name:<34} {when:<5} parameters {'bitwise equal' if bitwise else f'max |diff| {worst:.3g}'}")
        for key, value in ref["bounds"].items():
            new = result["bounds"].get(key)
            close = new is not None and abs(new - value) <= 1e-5 * max(1.0, abs(value))
            failed |= not close
            if not close:
                print(f"{name:<34} {key}: {value} -> {new}")
        print(f"{name:<34} bounds {'equal up to float rounding' if all(abs(result['bounds'].get(k, float('inf')) - v) <= 1e-5 * max(1.0, abs(v)) for k, v in ref['bounds'].items()) else 'DIFFER'}"
              f" ({len(ref['bounds'])} values, e.g. test ELBO {ref['bounds'].get('test/elbo_per_timestep', float('nan')):.4f})")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
