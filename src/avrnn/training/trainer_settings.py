"""Lightning's refusals of the trainer.* settings, as one line naming the setting and the fix.

pytorch_lightning.Trainer checks some of its arguments when it is built and others only once it meets
the data (`limit_val_batches=0.01` of a 3-batch split, `val_check_interval` beyond an epoch, ...): those
end `trainer.fit`, `validate` or `test` in Lightning's exception after a long traceback. `refusal`
turns an exception raised by Lightning's own code whose message names a Trainer argument the config
passes into a ConfigError that names `trainer.<key>=<value>`, what Lightning said and the fix; any
other error (ours, torch's, one that names no setting) keeps its traceback.
"""

from __future__ import annotations

import contextlib
import inspect
import re
import traceback
import typing
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping, Union

import lightning_fabric
import pytorch_lightning as pl
from lightning_fabric.utilities.exceptions import MisconfigurationException

from avrnn.config import ConfigError

LIGHTNING_CODE = tuple(str(Path(package.__file__).parent) for package in (pl, lightning_fabric))
SETTING_ERRORS = (MisconfigurationException, ValueError, TypeError)  # what Lightning raises about its arguments
TRAINER_ARGUMENTS = frozenset(inspect.signature(pl.Trainer.__init__).parameters) - {"self"}
_BATCHES = ("an integer number of batches (>= 1), or a fraction of the split's batches that leaves at least one "
            "(1.0 or null: all)")
FIXES = {  # what this project's runs make of the setting; other settings get the generic fix
    "limit_train_batches": _BATCHES + "; a run's length is training.max_iterations, an epoch "
                                      "training.iterations_per_epoch iterations",
    "limit_val_batches": _BATCHES + "; 0 turns validation off",
    "limit_test_batches": _BATCHES,
    "limit_predict_batches": _BATCHES,
    "val_check_interval": "null (a run validates every training.iterations_per_epoch iterations: set that instead)",
    "check_val_every_n_epoch": "a positive integer of epochs (an epoch is training.iterations_per_epoch iterations), "
                               "or null",
}


_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null",
          list: "a list", dict: "a mapping"}


def _kinds(hint) -> list:
    """The alternatives of a type hint, Unions flattened."""
    return [kind for arg in typing.get_args(hint) for kind in _kinds(arg)] if typing.get_origin(hint) is Union else [hint]


def _accepts(kind, value) -> bool | None:
    """Whether plain config data `value` is of `kind`; None where a config value cannot be judged against it
    (a class such as Accelerator or timedelta: YAML cannot write one)."""
    origin = typing.get_origin(kind) or kind
    if origin is Literal:
        return value in typing.get_args(kind)
    if origin in (int, float) and isinstance(value, bool):
        return False
    if origin is float:
        return isinstance(value, (int, float))
    if origin in _NAMES:
        return isinstance(value, origin) and (origin is not list or all(
            _accepts(arg, item) is not False for arg in typing.get_args(kind)[:1] for item in value))
    if origin is Path:
        return isinstance(value, str)
    return None


def _described(kind) -> str:
    if typing.get_origin(kind) is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(kind)))
    if kind is Path:
        return "a path"
    return _NAMES.get(typing.get_origin(kind) or kind, getattr(kind, "__name__", str(kind)))


def check(settings: Mapping[str, Any], test_after_training: bool = True) -> None:
    """Refuse, before any data is read, a trainer.* value of a type pytorch_lightning.Trainer does not take
    (its own annotations say which; Lightning would fail later with a TypeError naming no setting) and
    values Lightning takes without a word or fails on later: check_val_every_n_epoch=0 and
    val_check_interval=0 (it divides by them), limit_train_batches=0 (nothing trained), limit_test_batches=0
    where a test follows training (nothing to score)."""
    hints = typing.get_type_hints(pl.Trainer.__init__)
    for key, value in settings.items():
        if key not in hints or key == "precision":  # precision: checked, with its fallbacks, by training.precision
            continue
        kinds = _kinds(hints[key])
        verdicts = [_accepts(kind, value) for kind in kinds]
        if verdicts and all(verdict is False for verdict in verdicts):
            wanted = " or ".join(dict.fromkeys(_described(kind) for kind in kinds if _accepts(kind, value) is False))
            raise ConfigError(f"trainer.{key}={value!r} is not a value pytorch_lightning.Trainer takes there: it takes "
                              f"{wanted}; fix the override or conf/trainer/*.yaml")
    every = settings.get("check_val_every_n_epoch")
    if every is not None and every < 1:
        raise ConfigError(f"trainer.check_val_every_n_epoch={every} must be a positive integer or null: use "
                          f"{FIXES['check_val_every_n_epoch']}")
    if settings.get("val_check_interval") == 0:  # Lightning divides by it
        raise ConfigError(f"trainer.val_check_interval=0 would validate every 0 batches: use {FIXES['val_check_interval']}"
                          "; trainer.limit_val_batches=0 turns validation off")
    if settings.get("limit_train_batches") == 0:
        raise ConfigError("trainer.limit_train_batches=0 trains nothing (the untrained model would be tested): remove "
                          "it; a run's length is training.max_iterations")
    if settings.get("limit_test_batches") == 0 and test_after_training:
        raise ConfigError("trainer.limit_test_batches=0 leaves the test after training nothing to score: remove it, or "
                          "skip that test with training.test_after_training=false")


def _raised_by_lightning(error: BaseException) -> bool:
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and frames[-1].filename.startswith(LIGHTNING_CODE)


def _named(key: str, value) -> re.Pattern:
    """How a message names a Trainer argument: `key` in backticks, as key=... or followed by its value
    ("Precision 17 is invalid"), or, for a name that is not an everyday word (limit_val_batches, not
    devices or strategy), the bare name."""
    quoted = rf"`{re.escape(key)}`|(?<![\w.]){re.escape(key)}=|(?i:\b{re.escape(key)}) {re.escape(str(value))}\b"
    bare = rf"|(?<![\w.]){re.escape(key)}(?!\w)" if "_" in key else ""
    return re.compile(quoted + bare)


def named_setting(message: str, settings: Mapping) -> str | None:
    """The Trainer argument the config passes that `message` names first (None: none)."""
    found = [(match.start(), key) for key in settings if key in TRAINER_ARGUMENTS
             for match in [_named(key, settings[key]).search(message)] if match]
    return min(found)[1] if found else None


def refusal(error: BaseException, settings: Mapping, stage: str, kept: str = "") -> ConfigError | None:
    """A ConfigError for an exception Lightning raised about one of `settings` (cfg.trainer) during
    `stage` (e.g. "training"), `kept` (what is saved and how to go on) at its end; None for any other error."""
    if not isinstance(error, SETTING_ERRORS) or isinstance(error, ConfigError):
        return None
    if not _raised_by_lightning(error):
        return None
    message = " ".join(str(error).split())
    key = named_setting(message, settings)
    if key is None:
        return None
    advice = (f"use {FIXES[key]}" if key in FIXES else f"change or remove trainer.{key} (conf/trainer/*.yaml list "
              "pytorch_lightning.Trainer's arguments with this project's defaults)")
    return ConfigError(f"trainer.{key}={settings[key]} was refused by pytorch_lightning during {stage}: {message}; "
                       f"{advice}" + (f"; {kept}" if kept else ""))


@contextlib.contextmanager
def checked_by_lightning(settings: Mapping, stage: str, kept: str = "") -> Iterator[None]:
    """Runs a Trainer call; Lightning's refusal of a trainer.* setting becomes a one-line ConfigError
    (`refusal`)."""
    try:
        yield
    except SETTING_ERRORS as error:
        refused = refusal(error, settings, stage, kept)
        if refused is None:
            raise
        raise refused from error
