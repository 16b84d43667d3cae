"""The training phases, run through a real Lightning Trainer on the tiny corpus."""

import pytest
import torch

from avrnn.training.module import AVRNNModule
from avrnn.training.fit import train

GROUP_PREFIXES = {
    "theta": "vrnn.f_theta.", "phi": "vrnn.emission.", "tau": "vrnn.proposal.", "omega": "vrnn.transition.",
    "encoders": ("vrnn.phi_x.", "vrnn.phi_z."), "eta": "critic.",
}


def names_in(module, *groups):
    prefixes = tuple(p for g in groups for p in (GROUP_PREFIXES[g] if isinstance(GROUP_PREFIXES[g], tuple)
                                                  else (GROUP_PREFIXES[g],)))
    return {name for name, _ in module.named_parameters() if name.startswith(prefixes)}


@pytest.fixture
def spied_phases(monkeypatch):
    """Record which parameters each phase call changed, and the critic's weights after each call
    (as (f"{phase}_phase", changed, critic_max, result) per call of AVRNNModule.run_phase)."""
    calls = []
    original = AVRNNModule.run_phase

    def wrapper(self, phase, *args):
        before = {n: p.detach().clone() for n, p in self.named_parameters()}
        result = original(self, phase, *args)
        changed = {n for n, p in self.named_parameters() if not torch.equal(before[n], p)}
        critic_max = max(p.abs().max().item() for p in self.critic.parameters()) if self.critic else None
        calls.append((f"{phase}_phase", changed, critic_max, result))
        return result

    monkeypatch.setattr(AVRNNModule, "run_phase", wrapper)
    return calls


def modules_seen(monkeypatch):
    seen = []
    original = AVRNNModule.on_fit_start

    def capture(self):
        seen.append(self)
        return original(self)

    monkeypatch.setattr(AVRNNModule, "on_fit_start", capture)
    return seen


@pytest.mark.parametrize("ablation", ["none", "posterior_only", "hybrid"])
def test_each_phase_changes_exactly_its_own_parameter_groups(make_cfg, spied_phases, monkeypatch, ablation):
    seen = modules_seen(monkeypatch)
    train(make_cfg(f"ablation={ablation}", "critic.n_critic=3", "critic.clip_value=0.01", "training.max_iterations=2"))
    module = seen[0]
    expected = {
        # hybrid: the KL term in the reconstruction phase trains the prior TR (omega) as well
        "reconstruction_phase": names_in(module, "theta", "phi", "tau", "encoders",
                                         *(["omega"] if ablation == "hybrid" else [])),
        "critic_phase": names_in(module, "eta"),
        "adversarial_phase": names_in(module, "tau") if ablation == "posterior_only" else names_in(module, "omega", "tau"),
    }
    phases = [call[0] for call in spied_phases]
    # per iteration: reconstruction, n_critic = 3 critic steps, adversarial; 2 iterations
    assert phases == (["reconstruction_phase"] + ["critic_phase"] * 3 + ["adversarial_phase"]) * 2
    touched = {phase: set() for phase in expected}
    for phase, changed, _, _ in spied_phases:
        assert changed <= expected[phase], (phase, changed - expected[phase])  # never another phase's group
        touched[phase] |= changed
    # ... and every parameter of its own groups moves (a clipped critic weight may stay at +-c for a step)
    assert touched == expected
    # wgan weight clipping after every critic step (initial weights are not clipped yet: check it)
    critic_max = [call[2] for call in spied_phases]
    assert critic_max[0] > 0.01
    assert all(value <= 0.01 + 1e-9 for value in critic_max[1:])


def test_iteration_counter_optimizer_steps_and_checkpoint(make_cfg, spied_phases, monkeypatch, tmp_path):
    seen = modules_seen(monkeypatch)
    metrics = train(make_cfg("critic.n_critic=2", "training.max_iterations=4", "training.iterations_per_epoch=2"))
    module = seen[0]
    assert module.iteration == 4
    assert module.trainer.global_step == 4 * (1 + 2 + 1)  # Lightning counts every optimizer step
    assert sum(call[0] == "critic_phase" for call in spied_phases) == 8
    for key in ("val/elbo_per_timestep", "val/rec_per_timestep", "val/kl_per_timestep", "val/wasserstein",
                "train/critic_loss", "train/adversarial_loss", "lr/reconstruction", "lr/critic", "lr/adversarial"):
        assert key in metrics, key
    assert metrics["val/elbo_per_timestep"] == pytest.approx(
        -(metrics["val/rec_per_timestep"] + metrics["val/kl_per_timestep"]), rel=1e-5)
    assert metrics["lr/critic"] == pytest.approx(5e-4)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)  # plain data only: no pickled objects
    assert checkpoint["avrnn_iteration"] == 4
    assert set(checkpoint["hyper_parameters"]["normalization"]) == {"mean", "std"}
    assert list((tmp_path / "run" / "checkpoints").glob("best-*.ckpt"))
    restored = AVRNNModule.load_from_checkpoint(last, weights_only=True)
    for (name, saved), current in zip(restored.state_dict().items(), module.state_dict().values()):
        torch.testing.assert_close(saved, current, msg=name)
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))


def test_the_critics_distance_is_averaged_over_sequences_as_evaluation_averages_it(make_cfg, monkeypatch):
    """Each batch's estimate weighted by its sequences (evaluation's test/<distance> is a mean per sequence), not
    by its frames like the bounds: here an estimate equal to the batch's frames, one utterance per batch."""
    from avrnn.models import phase_losses

    monkeypatch.setattr(phase_losses, "critic_distance",
                        lambda out, critic, objective: ("wasserstein", out.mask.sum().float()))
    seen = modules_seen(monkeypatch)
    metrics = train(make_cfg("data.eval_batch_size=1", "training.test_after_training=false"))
    frames = [len(utterance) for utterance in seen[0].trainer.datamodule.frames["val"]]
    assert len(set(frames)) > 1  # frame weights would give sum(f^2) / sum(f) instead
    assert metrics["val/wasserstein"] == pytest.approx(sum(frames) / len(frames))


def test_vrnn_baseline_uses_one_optimizer_and_kl_warmup(make_cfg, spied_phases, monkeypatch):
    seen = modules_seen(monkeypatch)
    metrics = train(make_cfg("model=vrnn", "model.kl_warmup_iterations=4", "training.max_iterations=2"))
    module = seen[0]
    assert module.critic is None and module.trainer.global_step == 2
    assert [call[0] for call in spied_phases] == ["elbo_phase"] * 2
    assert [call[3]["kl_weight"].item() for call in spied_phases] == [0.25, 0.5]
    assert all(call[1] == {n for n, _ in module.named_parameters()} for call in spied_phases)
    assert "val/wasserstein" not in metrics


def test_the_hybrids_kl_warms_up_as_the_vrnns(make_cfg, spied_phases):
    """model.kl_warmup_iterations scales the hybrid's KL term (ablation.kl_weight) in its reconstruction
    phase as it scales the VRNN's: weight x min(1, (iteration + 1) / warm-up)."""
    train(make_cfg("ablation=hybrid", "ablation.kl_weight=0.5", "model.kl_warmup_iterations=4",
                   "training.max_iterations=2"))
    weights = [call[3]["kl_weight"].item() for call in spied_phases if call[0] == "reconstruction_phase"]
    assert weights == [0.125, 0.25]


def test_shared_batch_option_feeds_every_phase_the_same_batch(make_cfg, spied_phases, monkeypatch, tmp_path):
    batches = []
    spied = AVRNNModule.run_phase

    def record(self, phase, optimizer, x, mask):
        if phase in ("reconstruction", "critic", "adversarial"):
            batches.append(x)
        return spied(self, phase, optimizer, x, mask)

    monkeypatch.setattr(AVRNNModule, "run_phase", record)
    train(make_cfg("training.fresh_batch_per_phase=false", "training.max_iterations=1"))
    assert len(batches) == 3 and all(b is batches[0] for b in batches)
    batches.clear()
    train(make_cfg("training.fresh_batch_per_phase=true", "training.max_iterations=1",
                   f"paths.output_dir={tmp_path / 'fresh'}"))  # a folder holds one run
    assert len(batches) == 3 and not torch.equal(batches[0], batches[1])


@pytest.mark.parametrize("kl_shaping", [(), ("model.kl_warmup_iterations=3",),
                                        ("model.kl_warmup_iterations=3", "model.free_bits=2.0")],
                         ids=["plain", "warmup", "warmup-and-free-bits"])  # free bits 2.0: a floor that binds
def test_hybrid_without_its_adversarial_phases_takes_the_vrnns_steps(make_cfg, monkeypatch, tmp_path, kl_shaping):
    """ablation=hybrid minimises reconstruction + KL over every VRNN parameter (TR included) in its
    reconstruction phase: with ablation.adversarial_phases=false and the VRNN's optimizer settings
    it is the KL-only VRNN, step for step, its KL warm-up and free bits included."""
    finals = {}
    for arm, overrides in {"vrnn": ["model=vrnn"],
                           "hybrid": ["ablation=hybrid", "ablation.adversarial_phases=false",
                                      "model.optimizer.lr=1e-3"]}.items():
        seen = modules_seen(monkeypatch)
        train(make_cfg(*overrides, *kl_shaping, "training.max_iterations=4", "training.iterations_per_epoch=2",
                       f"paths.output_dir={tmp_path / arm}"))  # a folder holds one run
        module = seen[0]
        assert module.phases == (["elbo"] if arm == "vrnn" else ["reconstruction"]) and module.critic is None
        finals[arm] = {name: p.detach().clone() for name, p in module.vrnn.named_parameters()}
    assert set(finals["hybrid"]) == set(finals["vrnn"])
    for name, value in finals["vrnn"].items():  # the transition (TR) included: the KL trains it
        torch.testing.assert_close(finals["hybrid"][name], value, rtol=1e-5, atol=1e-6, msg=name)


def test_each_phase_logs_the_update_it_applies_to_the_shared_groups(make_cfg, monkeypatch):
    """Finding 2 of the study issue: the update norm each phase applies to PS (tau) and TR (omega)."""
    checked = []
    original = AVRNNModule.run_phase

    def measured(self, _phase, optimizer, x, mask):
        if _phase in ("reconstruction", "adversarial"):
            groups = self.vrnn.parameter_groups()
            before = {g: [p.detach().clone() for p in groups[g]] for g in ("tau", "omega")}
            terms = original(self, _phase, optimizer, x, mask)
            for group, values in before.items():
                moved = torch.stack([(p.detach() - v).pow(2).sum() for p, v in zip(groups[group], values)]).sum()
                key = f"update_norm/{_phase}/{group}"
                if _phase == "reconstruction" and group == "omega":
                    assert key not in terms and moved == 0  # the reconstruction phase does not step TR
                else:
                    torch.testing.assert_close(terms[key], moved.sqrt())
                    assert terms[key] > 0 and terms[f"grad_norm/{_phase}/{group}"] > 0
                    checked.append(key)
            return terms
        return original(self, _phase, optimizer, x, mask)

    monkeypatch.setattr(AVRNNModule, "run_phase", measured)
    metrics = train(make_cfg("training.max_iterations=2"))
    assert sorted(set(checked)) == ["update_norm/adversarial/omega", "update_norm/adversarial/tau",
                                    "update_norm/reconstruction/tau"]
    assert "train/update_norm/adversarial/tau" in metrics and "train/grad_norm/reconstruction/tau" in metrics
