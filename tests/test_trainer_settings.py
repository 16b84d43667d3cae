"""Lightning's settings (trainer.*) that fail after start-up, or that it would take the wrong type of,
end in one line naming the setting and the fix; errors that are not about a setting keep their traceback."""

import re

import pytest

from avrnn.config import ConfigError
from avrnn.training import trainer_settings
from avrnn.training.fit import train


@pytest.mark.parametrize("override, stage", [
    ("trainer.limit_val_batches=0.01", "the validation before training"),  # a 1-batch validation split
    ("trainer.limit_train_batches=0.0001", "training"),
    ("trainer.val_check_interval=1000", "training"),  # beyond an epoch (training.iterations_per_epoch)
    ("trainer.limit_test_batches=0.01", "the test after training"),
])
def test_a_setting_lightning_refuses_during_the_run_names_itself_and_the_fix(make_cfg, tmp_path, override, stage):
    with pytest.raises(ConfigError) as refused:
        train(make_cfg(override))
    message = str(refused.value)
    assert message.startswith(f"{override} was refused by pytorch_lightning during {stage}: ")
    assert "\n" not in message
    fix = trainer_settings.FIXES[override.split("=")[0].removeprefix("trainer.")]
    assert fix in message
    if stage == "the test after training":  # training's work is saved, and the line says how to go on
        checkpoints = tmp_path / "run" / "checkpoints"
        assert (checkpoints / "last.ckpt").is_file() and not (tmp_path / "run" / "metrics.json").exists()
        assert f"checkpoints are kept in {checkpoints}" in message and f"hydra.run.dir={tmp_path / 'run'}" in message


def test_the_command_line_gets_one_line_and_exit_status_2(run_in_process, tiny, tmp_path, corpus_dir):
    result = run_in_process("train.py", *tiny, f"data.root={corpus_dir}", f"hydra.run.dir={tmp_path / 'run'}",
                            "trainer.limit_val_batches=0.01")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.last_line]
    assert result.last_line.startswith("error: trainer.limit_val_batches=0.01 was refused by pytorch_lightning")


def raised_in_lightning(message: str) -> BaseException:
    """An exception whose innermost frame lies in Lightning's code, as Lightning's own raise has."""
    code = compile(f"raise ValueError({message!r})", f"{trainer_settings.LIGHTNING_CODE[0]}/somewhere.py", "exec")
    try:
        exec(code)
    except ValueError as error:
        return error


def raised_here(message: str) -> BaseException:
    try:
        raise ValueError(message)
    except ValueError as error:
        return error


@pytest.mark.parametrize("error, settings, named", [
    (raised_in_lightning("`limit_val_batches` is too small"), {"limit_val_batches": 0.01}, "limit_val_batches"),
    # the first setting named is the one refused
    (raised_in_lightning("`val_check_interval` (9) > 3; or set `limit_val_batches` to 0.0"),
     {"limit_val_batches": None, "val_check_interval": 9}, "val_check_interval"),
    (raised_in_lightning("`limit_val_batches` is too small"), {"devices": 1}, None),  # a setting not passed
    (raised_in_lightning("something else broke"), {"limit_val_batches": 0.01}, None),  # no setting named
    (raised_in_lightning("my.limit_val_batches_x broke"), {"limit_val_batches": 0.01}, None),  # not the word
    (raised_here("`limit_val_batches` is too small"), {"limit_val_batches": 0.01}, None),  # not Lightning's
    (ConfigError("`limit_val_batches` is too small"), {"limit_val_batches": 0.01}, None),  # ours: already one line
])
def test_only_lightnings_errors_about_a_passed_setting_become_one_line(error, settings, named):
    refused = trainer_settings.refusal(error, settings, "training")
    if named is None:
        assert refused is None
    else:
        assert str(refused).startswith(f"trainer.{named}={settings[named]} was refused by pytorch_lightning during "
                                       "training: ")


def test_an_error_that_names_no_setting_keeps_its_traceback():
    with pytest.raises(ValueError, match="something else broke") as raised:
        with trainer_settings.checked_by_lightning({"limit_val_batches": 0.01}, "training"):
            raise raised_in_lightning("something else broke")
    assert not isinstance(raised.value, ConfigError)


@pytest.mark.parametrize("key, value, takes", [
    ("detect_anomaly", 3, "true or false"),
    ("num_sanity_val_steps", "abc", "an integer or null"),
    ("limit_val_batches", True, "an integer or a number or null"),
    ("default_root_dir", 5, "a string or a path or null"),
    ("devices", [0, "a"], "a list or a string or an integer"),
])
def test_a_value_of_a_type_the_trainer_does_not_take_is_refused_before_anything_runs(key, value, takes):
    with pytest.raises(ConfigError) as refused:
        trainer_settings.check({key: value})
    assert str(refused.value) == (f"trainer.{key}={value!r} is not a value pytorch_lightning.Trainer takes there: "
                                  f"it takes {takes}; fix the override or conf/trainer/*.yaml")


@pytest.mark.parametrize("settings", [
    {"devices": [0, 1]}, {"devices": "auto"}, {"max_time": "00:01:00:00"}, {"max_time": {"hours": 1}},
    {"limit_val_batches": 0.5}, {"limit_val_batches": 2}, {"val_check_interval": None}, {"fast_dev_run": True},
    {"precision": "bf16-mixed"}, {"check_val_every_n_epoch": None},
])
def test_values_the_trainer_takes_pass(settings):
    trainer_settings.check(settings)


def test_the_shipped_trainer_configs_pass(compose_config):
    for name in ("cpu", "ddp", "gpu"):
        cfg = compose_config("config", f"trainer={name}", "data.root=unused")
        from omegaconf import OmegaConf
        trainer_settings.check(OmegaConf.to_container(cfg.trainer, resolve=True))


def test_a_validation_every_zero_epochs_is_refused():  # Lightning itself would divide by zero
    with pytest.raises(ConfigError, match=r"^trainer.check_val_every_n_epoch=0 must be a positive integer or null"):
        trainer_settings.check({"check_val_every_n_epoch": 0})


@pytest.mark.parametrize("settings, test_after_training, words", [
    ({"val_check_interval": 0}, True, "trainer.val_check_interval=0 would validate every 0 batches"),
    ({"limit_train_batches": 0}, True, "trainer.limit_train_batches=0 trains nothing"),
    ({"limit_test_batches": 0}, True, "trainer.limit_test_batches=0 leaves the test after training nothing to score"),
])
def test_values_lightning_takes_without_a_word_or_fails_on_later_are_refused(settings, test_after_training, words):
    with pytest.raises(ConfigError, match=f"^{re.escape(words)}"):
        trainer_settings.check(settings, test_after_training)


def test_no_test_batches_is_fine_where_no_test_follows_training():
    trainer_settings.check({"limit_test_batches": 0, "limit_val_batches": 0}, test_after_training=False)


@pytest.mark.parametrize("message, named", [
    ("`devices` must be positive", "devices"),
    ("Trainer(devices=0) is not valid", "devices"),
    ("Precision 17 is invalid", "precision"),
    ("no devices were found on this machine", None),  # an everyday word, not the setting
    ("for limit_val_batches, it has to be in [0.0, 1.0]", "limit_val_batches"),
])
def test_a_setting_is_named_only_where_the_message_means_the_setting(message, named):
    assert trainer_settings.named_setting(message, {"devices": 0, "precision": 17, "limit_val_batches": -1}) == named
