"""Components chosen by `_target_` (critic objectives, the critic network), the registry that keeps
a checkpoint from naming code to run, and checkpoints written before these were config objects."""

import contextlib
import json
import math
import shutil
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from avrnn import registry
from avrnn.training.checkpoints import CheckpointError, load_checkpoint, upgrade_hyper_parameters
from avrnn.evaluation.scoring import evaluate
from avrnn.models.objectives import JensenShannon, Wasserstein, WassersteinGradientPenalty
from avrnn.training.module import AVRNNModule
from avrnn.training.fit import build_module, train

LEGACY = Path(__file__).parent / "data" / "legacy"
# the architecture the legacy checkpoints were written with (tests/data/legacy/README.md)
LEGACY_AVRNN = ["ablation=hybrid", "model.rnn=lstm", "critic=wgan_gp", "critic.lstm_size=8", "critic.fc_size=8",
                "seed=3"]


@pytest.mark.parametrize("critic,objective", [("wgan", Wasserstein), ("wgan_gp", WassersteinGradientPenalty),
                                              ("gan", JensenShannon)])
def test_each_critic_config_builds_its_objective(make_cfg, critic, objective):
    cfg = make_cfg(f"critic={critic}", "critic.clip_value=0.05" if critic == "wgan" else "critic.n_critic=1")
    module = AVRNNModule(model=dict(cfg.model), critic=dict(cfg.critic), ablation=dict(cfg.ablation),
                         training=dict(cfg.training))
    assert type(module.objective) is objective
    if critic == "wgan":
        assert module.objective.clip_value == 0.05  # critic.clip_value reaches the objective
    if critic == "wgan_gp":
        assert module.objective.gp_weight == cfg.critic.gp_weight == 10.0


def write_user_module(folder: Path, name: str) -> None:
    """A user's own package: importing it leaves a mark, so a test can tell whether it was imported."""
    (folder / f"{name}.py").write_text(
        "import os\n"
        "os.environ['AVRNN_TEST_IMPORTED'] = __name__\n"
        "from avrnn.models.objectives import Wasserstein\n\n"
        "class HalfWasserstein(Wasserstein):\n"
        "    distance_name = 'half_wasserstein'\n"
        "    distance_unit = 'half the critic scale'\n\n"
        "    def distance(self, d_prior, d_post):\n"
        "        return 0.5 * super().distance(d_prior, d_post)\n\n"
        "    def adversarial_loss(self, d_prior, d_post):\n"
        "        return 0.5 * super().adversarial_loss(d_prior, d_post)\n")


def test_a_users_objective_is_one_config_away_and_needs_trust_to_load(make_cfg, compose_config, tmp_path,
                                                                     monkeypatch, capsys):
    """Its distance estimate is scored and printed under its own name and unit, per sequence: not as a bound."""
    import json

    write_user_module(tmp_path, "my_objectives")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("AVRNN_TEST_IMPORTED", raising=False)
    run = tmp_path / "run"
    train(make_cfg("critic.name=mine", "critic.objective._target_=my_objectives.HalfWasserstein",
                   f"paths.output_dir={run}", "training.max_iterations=2"))  # a user's own critic name too
    ckpt = run / "checkpoints" / "last.ckpt"
    monkeypatch.delitem(registry._REGISTRY, "my_objectives.HalfWasserstein")  # a fresh process knows only ours
    with pytest.raises(registry.UntrustedTargetError, match="is not a registered class, so it is not imported"):
        evaluate(compose_config("evaluate", f"ckpt_path={ckpt}", "iwae_k=[]", "fivo_k=[]",
                                f"output_dir={tmp_path / 'eval'}"))
    metrics = evaluate(compose_config("evaluate", f"ckpt_path={ckpt}", "iwae_k=[]", "fivo_k=[]",
                                      "trusted_targets=[my_objectives.HalfWasserstein]",
                                      f"output_dir={tmp_path / 'eval'}"))
    assert "test/half_wasserstein" in metrics and not [key for key in metrics if key.startswith("test/half_wasserstein_")]
    out = capsys.readouterr().out
    assert not [line for line in out.splitlines() if line.startswith("half_wasserstein")]  # no row of the bounds
    assert (f"critic's half_wasserstein estimate, prior against posterior latent sequences: "
            f"{metrics['test/half_wasserstein']:.4g} (half the critic scale)") in out
    assert json.loads((run / "metrics.json").read_text())["critic_distance"] == {"name": "half_wasserstein",
                                                                                 "unit": "half the critic scale"}


def test_an_optimizer_of_your_own_is_a_config_value_away(make_cfg):
    """`_target_` names the class; it is built as Hydra's _partial_ with the keys it takes."""
    cfg = make_cfg("model.optimizer._target_=torch.optim.AdamW", "model.optimizer.lr=2e-4",
                   "model.optimizer.weight_decay=0.05", "model.adversarial_optimizer._target_=torch.optim.Adagrad")
    module = build_module(cfg)
    rec, critic, adversarial = module.configure_optimizers()
    assert type(rec) is torch.optim.AdamW and type(adversarial) is torch.optim.Adagrad
    assert rec.defaults["lr"] == 2e-4 and rec.defaults["weight_decay"] == 0.05 and rec.defaults["betas"] == (0.9, 0.999)
    assert type(critic) is torch.optim.RMSprop  # critic=wgan's, by name as before
    metrics = train(make_cfg("model.optimizer._target_=torch.optim.AdamW", "trainer.fast_dev_run=1"))
    assert math.isfinite(metrics["train/rec_per_timestep"])


def test_an_optimizer_target_that_cannot_be_imported_is_one_line(make_cfg):
    with pytest.raises(registry.UntrustedTargetError, match="_target_ 'torch.optim.Nope' cannot be imported"):
        train(make_cfg("model.optimizer._target_=torch.optim.Nope"))


def test_a_checkpoint_naming_another_target_is_refused_in_one_line_and_nothing_is_imported(
        make_cfg, run_in_process, tmp_path, monkeypatch):
    write_user_module(tmp_path, "planted_module")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("AVRNN_TEST_IMPORTED", raising=False)
    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=1"))
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["critic"]["objective"]["_target_"] = "planted_module.HalfWasserstein"
    planted = tmp_path / "planted.ckpt"
    torch.save(checkpoint, planted)
    for script in ("evaluate.py", "generate.py"):
        result = run_in_process(script, f"ckpt_path={planted}", f"hydra.run.dir={tmp_path / script}")
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.last_line.startswith("error: critic.objective._target_='planted_module.HalfWasserstein' is "
                                           "not a registered class, so it is not imported")
    assert "planted_module" not in sys.modules and "AVRNN_TEST_IMPORTED" not in __import__("os").environ


def with_root(legacy: Path, corpus_dir: Path, tmp_path: Path) -> Path:
    """The legacy checkpoint with its data root pointed at this session's copy of the same corpus."""
    checkpoint = torch.load(legacy, weights_only=True)
    checkpoint["hyper_parameters"]["data"]["root"] = str(corpus_dir)
    path = tmp_path / legacy.name
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize("name", ["363845d-vrnn", "363845d-avrnn-wgan_gp-hybrid-lstm"])
def test_checkpoints_of_earlier_versions_score_as_they_did(compose_config, corpus_dir, tmp_path, monkeypatch, name):
    """As 363845d scored them: its evaluate.py drew every estimate from one stream, so this one does too."""
    from avrnn.evaluation import scoring
    from avrnn.evaluation.streams import EstimateStreams

    class OneStream(EstimateStreams):
        @contextlib.contextmanager
        def drawing(self, name):
            yield

    monkeypatch.setattr(scoring, "EstimateStreams", OneStream)
    ckpt = with_root(LEGACY / f"{name}.ckpt", corpus_dir, tmp_path)
    metrics = evaluate(compose_config("evaluate", f"ckpt_path={ckpt}", "iwae_k=[4]", "fivo_k=[4]", "batch_size=4",
                                      f"output_dir={tmp_path / 'eval'}"))
    expected = json.loads((LEGACY / f"{name}.metrics.json").read_text())
    for key, value in expected.items():
        if key.startswith("test/"):
            assert metrics[key] == pytest.approx(value, rel=1e-6), key


def test_training_resumes_from_a_checkpoint_of_an_earlier_version(make_cfg, corpus_dir, tmp_path):
    ckpt = tmp_path / "legacy.ckpt"
    shutil.copy(LEGACY / "363845d-vrnn.ckpt", ckpt)
    seen = []

    class Seen(pl.Callback):
        def on_train_end(self, trainer, module):
            seen.append(module)

    train(make_cfg("model=vrnn", "seed=3", f"ckpt_path={ckpt}", "training.max_iterations=3"), callbacks=[Seen()])
    assert seen[0].iteration == 3  # 2 iterations in the checkpoint, one more here


def test_resuming_a_hybrid_run_of_an_earlier_version_is_refused_in_one_line(make_cfg, tmp_path):
    """Its reconstruction optimizer did not hold TR (the hybrid fix): its state cannot be restored."""
    ckpt = tmp_path / "legacy.ckpt"
    shutil.copy(LEGACY / "363845d-avrnn-wgan_gp-hybrid-lstm.ckpt", ckpt)
    with pytest.raises(CheckpointError) as error:
        train(make_cfg(*LEGACY_AVRNN, f"ckpt_path={ckpt}", "training.max_iterations=3"))
    assert str(error.value).startswith("cannot resume: this checkpoint's reconstruction optimizer holds 28 parameter "
                                       "tensors and this version's holds 36") and "\n" not in str(error.value)


def test_legacy_names_map_to_todays_objects():
    legacy_critic = {"name": "wgan", "lstm_size": 128, "fc_size": 100, "readout": "last", "n_critic": 1,
                     "clip_value": 0.1, "gp_weight": 0.0}
    critic, ablation = upgrade_hyper_parameters(legacy_critic, {"name": "posterior_only", "kl_weight": 1.0})
    assert critic["objective"] == {"_target_": "avrnn.models.objectives.Wasserstein", "clip_value": 0.1}
    assert critic["input"] == "sequence"
    assert critic["networks"]["sequence"]["_target_"] == "avrnn.models.critic.SequenceCritic"
    assert ablation["adversarial_trains_prior"] is False and ablation["kl_weight"] == 0.0
    _, hybrid = upgrade_hyper_parameters(legacy_critic, {"name": "hybrid", "kl_weight": 0.5})
    assert hybrid == {"name": "hybrid", "kl_weight": 0.5, "adversarial_trains_prior": True}
    assert upgrade_hyper_parameters({"name": "none"}, {"name": "none", "kl_weight": 1.0}) == (
        {"name": "none", "objective": None}, {"name": "none", "kl_weight": 0.0, "adversarial_trains_prior": True})


def test_parameter_names_of_earlier_versions_map_to_todays():
    from avrnn.training.checkpoints import upgrade_state_dict
    old = ["vrnn.phi_x.0.weight", "vrnn.phi_z.2.bias", "vrnn.transition.0.2.weight", "vrnn.proposal.1.raw_std.bias",
           "vrnn.emission.0.0.weight", "vrnn.emission.1.mean.bias", "vrnn.emission.1.weight", "vrnn.f_theta.weight_hh",
           "critic.lstm.weight_ih_l0", "critic.fc.0.weight", "critic.fc.2.bias", "critic.score.weight"]
    new = ["vrnn.phi_x.fc1.weight", "vrnn.phi_z.fc2.bias", "vrnn.transition.fc2.weight", "vrnn.proposal.raw_std.bias",
           "vrnn.emission.fc1.weight", "vrnn.emission.mean.bias", "vrnn.emission.logits.weight",
           "vrnn.f_theta.weight_hh", "critic.lstm.weight_ih_l0", "critic.fc.fc1.weight", "critic.fc.fc2.bias",
           "critic.score.weight"]
    assert list(upgrade_state_dict(dict.fromkeys(old))) == new
    assert list(upgrade_state_dict(dict.fromkeys(new))) == new  # today's names pass through


def test_legacy_hyper_parameters_are_upgraded_on_the_load_path_only():
    """from_checkpoint upgrades an earlier version's hyper-parameters (its critic is built again); the
    constructor, which every fresh run goes through, refuses them in one line instead of building
    something else (a critic without an objective would silently make a VRNN)."""
    checkpoint = load_checkpoint(LEGACY / "363845d-avrnn-wgan_gp-hybrid-lstm.ckpt")
    module = AVRNNModule.from_checkpoint(checkpoint)
    assert module.phases[0] == "reconstruction" and "adversarial" in module.phases and module.critic is not None
    assert module.iteration == checkpoint["avrnn_iteration"]
    with pytest.raises(CheckpointError, match="earlier version; load it with AVRNNModule.from_checkpoint"):
        AVRNNModule(**load_checkpoint(LEGACY / "363845d-avrnn-wgan_gp-hybrid-lstm.ckpt")["hyper_parameters"])
