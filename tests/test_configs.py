"""Every config-group combination composes; valid ones train, the rest fail at start-up clearly."""

import inspect
import itertools
import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from avrnn.config import ConfigError, validate
from avrnn.data.datamodule import SpeechDataModule
from avrnn.data.errors import DataError
from avrnn.training.fit import train

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


def compose_and_check(combos, data_root) -> None:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):  # once: composing is the cost
        configs = {combo: compose(config_name="config", overrides=[
            f"model={combo[0]}", f"critic={combo[1]}", f"ablation={combo[2]}", f"latent={combo[3]}",
            f"data.root={data_root}"]) for combo in combos}
    GlobalHydra.instance().clear()
    for (model, critic, ablation, latent), cfg in configs.items():
        assert cfg.model.z_dim == int(latent[1:])
        if is_valid(model, critic, ablation):
            validate(cfg)
        else:
            with pytest.raises(ConfigError) as error:
                validate(cfg)
            message = str(error.value)
            assert "\n" not in message and ("critic" in message or "ablation" in message)


def test_every_combination_composes_and_invalid_ones_are_refused(tmp_path):
    """Every model x critic x ablation, the latent sizes taken in turn (validity does not depend on
    them); the whole product with every latent size is a slow test."""
    combos = [(*combo, LATENTS[i % len(LATENTS)])
              for i, combo in enumerate(itertools.product(MODELS, CRITICS, ABLATIONS))]
    assert {c[3] for c in combos} == set(LATENTS)
    compose_and_check(combos, tmp_path)


@pytest.mark.slow
def test_every_combination_with_every_latent_size_composes(tmp_path):
    compose_and_check(list(itertools.product(MODELS, CRITICS, ABLATIONS, LATENTS)), tmp_path)


VALID = [combo for combo in itertools.product(MODELS, CRITICS, ABLATIONS) if is_valid(*combo)]


@pytest.mark.parametrize("model,critic,ablation", VALID)
def test_every_valid_combination_runs_fast_dev_run(make_cfg, model, critic, ablation):
    cfg = make_cfg(f"model={model}", f"critic={critic}", f"ablation={ablation}", "trainer.fast_dev_run=true")
    metrics = train(cfg)
    assert metrics and all(math.isfinite(value) for value in metrics.values())  # no NaN, no infinity


def test_plain_run_means_avrnn_wgan_synthetic(make_cfg):
    cfg = make_cfg(tiny=False)
    assert (cfg.model.name, cfg.critic.name, cfg.data.name, cfg.ablation.name) == ("avrnn", "wgan", "synthetic", "none")
    assert (cfg.critic.lstm_size, cfg.critic.fc_size) == (128, 100)  # the paper's critic sizes
    assert cfg.critic.optimizer.name == "rmsprop" and cfg.critic.clip_value == 0.1
    assert cfg.model.input_size == cfg.data.frame_size == 200


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
    ("model.kl_warmup_iterations=10", "this A-VRNN trains on none (ablation.kl_weight=0"),
    ("model.free_bits=1.0", "model.free_bits=1.0 shape a KL term of the loss, and this A-VRNN trains on none "
                            "(ablation.kl_weight=0: its KL is only logged); set model.kl_warmup_iterations=0 "
                            "model.free_bits=0"),
    # fired only when the model was built, before VRNNConfig.check was reached by validate
    ("model.std_floor=200", "need 0 < std_floor < std_max, got 200.0 and 100.0"),
])
def test_bad_values_get_one_clear_line(make_cfg, override, needle):
    with pytest.raises(ConfigError, match=None) as error:
        validate(make_cfg(override))
    assert needle in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("override,needle", [
    ("data.batch_size=0", "data.batch_size must be a positive integer, got 0"),
    ("data.last_frame=keep", "data.last_frame='keep' is not allowed; choose one of pad, drop"),
    ("data.crop_frames=0", "data.crop_frames must be positive or null, got 0"),
    # fired only when the corpus was split, before DataOptions.check held them
    ("data.test_set=tiny", "data.test_set='tiny' is not allowed; choose full or core"),
    ("data.val_split=voice", "data.val_split='voice' is not allowed; choose utterance or speaker"),
    ("data.val_fraction=1.5", "data.val_fraction must lie in (0, 1), got 1.5"),
])
def test_bad_data_values_fail_before_any_file_is_read(make_cfg, override, needle):
    """The data config is checked in one place (DataOptions.check), at validation already."""
    with pytest.raises(DataError) as error:
        validate(make_cfg(override))
    assert needle in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("override,needle", [
    ("data.test_fraction=0", "data.test_fraction must lie in (0, 1), got 0"),
    ("data.speaker_pattern=abc", "data.speaker_pattern='abc' has no group"),
    ("data.speaker_pattern='(ab'", "data.speaker_pattern='(ab' is not a regular expression"),
])
def test_bad_folder_layout_values_fail_before_any_file_is_read(make_cfg, override, needle):
    """The keys only a folder corpus's split reads are checked where it is one (data.layout=folder)."""
    with pytest.raises(DataError) as error:
        validate(make_cfg("data.layout=folder", override))
    assert needle in str(error.value) and "\n" not in str(error.value)
    validate(make_cfg(override))  # a TIMIT-layout corpus never reads them


def test_a_stored_data_config_with_an_unknown_key_is_refused_in_one_line():
    with pytest.raises(DataError, match="unknown data option frames_per_hop; the data config takes "):
        SpeechDataModule({"root": "/nowhere", "frames_per_hop": 3})


def test_trainer_config_lists_every_trainer_argument():
    """So `trainer.<any Trainer arg>=...` works without a `+`."""
    listed = set(yaml.safe_load((CONF / "trainer" / "cpu.yaml").read_text()))
    wanted = set(inspect.signature(pl.Trainer.__init__).parameters) - {"self", "logger", "callbacks", "plugins",
                                                                         "model_registry"}
    assert wanted <= listed


@pytest.mark.parametrize("threads, cores, load, expected", [
    (2, 2, 3.1, "set num_threads=1"),  # the fresh-user trial: two other jobs on a 2-core machine
    (2, 2, 1.2, "set num_threads=1"),  # one other job
    (2, 2, 0.4, None),  # only this process's own start
    (1, 2, 5.0, None),  # one thread already
    (16, 16, 1.0, None),
    (16, 16, 4.0, "set num_threads=13"),
])
def test_threads_that_would_wait_for_busy_cores_get_one_warning_with_the_number_to_set(threads, cores, load, expected):
    from avrnn.config import thread_contention

    line = thread_contention(threads, cores, load)
    if expected is None:
        assert line is None
    else:
        assert line.startswith(f"this machine is busy (load average {load:.1f} on {cores} cores) and torch computes on "
                               f"{threads} threads: ") and line.endswith(f"{expected} (through make: ARGS='{expected[4:]}')")
