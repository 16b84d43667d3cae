"""Every config-group combination composes; valid ones train, the rest fail at start-up clearly."""

import inspect
import itertools
from pathlib import Path

import pytest
import pytorch_lightning as pl
import yaml
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from avrnn.config import ConfigError, validate
from avrnn.training import train

CONF = Path(__file__).resolve().parents[1] / "conf"
MODELS, CRITICS, ABLATIONS = ("avrnn", "vrnn"), ("wgan", "wgan_gp", "gan", "none"), ("none", "posterior_only", "hybrid")
LATENTS = ("z16", "z32", "z64", "z128")


def is_valid(model: str, critic: str, ablation: str) -> bool:
    if model == "vrnn":
        return critic == "none" and ablation == "none"
    return critic != "none"


def test_config_groups_on_disk_are_the_ones_tested():
    for group, options in (("model", MODELS), ("critic", CRITICS), ("ablation", ABLATIONS), ("latent", LATENTS)):
        assert sorted(p.stem for p in (CONF / group).glob("*.yaml")) == sorted(options)


def test_every_combination_composes_and_invalid_ones_are_refused(make_cfg):
    for model, critic, ablation, latent in itertools.product(MODELS, CRITICS, ABLATIONS, LATENTS):
        cfg = make_cfg(f"model={model}", f"critic={critic}", f"ablation={ablation}", f"latent={latent}", tiny=False)
        assert cfg.model.z_dim == int(latent[1:])
        if is_valid(model, critic, ablation):
            validate(cfg)
        else:
            with pytest.raises(ConfigError) as error:
                validate(cfg)
            message = str(error.value)
            assert "\n" not in message and ("critic" in message or "ablation" in message)


VALID = [combo for combo in itertools.product(MODELS, CRITICS, ABLATIONS) if is_valid(*combo)]


@pytest.mark.parametrize("model,critic,ablation", VALID)
def test_every_valid_combination_runs_fast_dev_run(make_cfg, model, critic, ablation):
    cfg = make_cfg(f"model={model}", f"critic={critic}", f"ablation={ablation}", "trainer.fast_dev_run=true")
    metrics = train(cfg)
    assert metrics and all(value == value for value in metrics.values())  # finite numbers, no NaN


def test_plain_run_means_avrnn_wgan_synthetic(make_cfg):
    cfg = make_cfg(tiny=False)
    assert (cfg.model.name, cfg.critic.name, cfg.data.name, cfg.ablation.name) == ("avrnn", "wgan", "synthetic", "none")
    assert (cfg.critic.lstm_size, cfg.critic.fc_size) == (128, 100)  # the paper's critic sizes
    assert cfg.critic.optimizer.name == "rmsprop" and cfg.critic.clip_value == 0.1
    assert cfg.model.frame_size == cfg.data.frame_size == 200


def test_model_z_dim_override_and_float_sweep_values_are_typed(make_cfg):
    cfg = make_cfg("model.z_dim=48", "model.optimizer.lr=3e-4", tiny=False)
    assert cfg.model.z_dim == 48 and isinstance(cfg.model.optimizer.lr, float)


@pytest.mark.parametrize("override,exception", [
    ("model.z_dim=abc", ValidationError), ("model.not_a_key=1", ConfigCompositionException),
    ("critic=wgn", ConfigCompositionException),
])
def test_typos_and_wrong_types_fail_at_composition(make_cfg, override, exception):
    with pytest.raises((exception, ConfigCompositionException)):
        make_cfg(override)


@pytest.mark.parametrize("override,needle", [
    ("model.z_dim=0", "model.z_dim must be positive"),
    ("model.rnn=transformer", "model.rnn='transformer' is not allowed; choose one of gru, lstm"),
    ("critic.clip_value=null", "critic.clip_value"),
    ("trainer.gradient_clip_val=1.0", "trainer.gradient_clip_val=1.0 is not supported with manual optimization"),
    ("trainer.accumulate_grad_batches=4", "trainer.accumulate_grad_batches=4 is not supported"),
    ("model.kl_warmup_iterations=10", "model=vrnn"),
])
def test_bad_values_get_one_clear_line(make_cfg, override, needle):
    with pytest.raises(ConfigError, match=None) as error:
        validate(make_cfg(override))
    assert needle in str(error.value) and "\n" not in str(error.value)


def test_trainer_config_lists_every_trainer_argument():
    """So `trainer.<any Trainer arg>=...` works without a `+`."""
    listed = set(yaml.safe_load((CONF / "trainer" / "cpu.yaml").read_text()))
    wanted = set(inspect.signature(pl.Trainer.__init__).parameters) - {"self", "logger", "callbacks", "plugins",
                                                                         "model_registry"}
    assert wanted <= listed
