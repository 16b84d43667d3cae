"""Optimizers by name (model.optimizer, model.adversarial_optimizer, critic.optimizer), or a class
of your own by `_target_` (e.g. model.optimizer._target_=torch.optim.AdamW)."""

from __future__ import annotations

import inspect

import torch

from avrnn import registry

# name -> (class, the keys of the optimizer config it takes besides lr)
OPTIMIZERS = {
    "adam": (torch.optim.Adam, ("betas", "eps", "weight_decay")),
    "rmsprop": (torch.optim.RMSprop, ("alpha", "eps", "weight_decay")),
    "sgd": (torch.optim.SGD, ("weight_decay",)),
}
DEFAULTS = {"betas": (0.9, 0.999), "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0}


def build_optimizer(spec: dict, params, where: str = "optimizer") -> torch.optim.Optimizer:
    """A built-in optimizer by `name`, or your own by `_target_` (a class the config trusts),
    built as Hydra's `_partial_` does: the config's keys that its signature takes, then the params."""
    if spec.get("_target_"):
        accepted = inspect.signature(registry.lookup(spec["_target_"], where)).parameters
        options = {key: value for key, value in spec.items()
                   if key in accepted and key != "params" and value is not None}
        make = registry.build({"_target_": spec["_target_"], "_partial_": True, **_tuple_betas(options)}, where)
        return make(params)
    cls, keys = OPTIMIZERS[spec["name"]]
    options = {key: spec.get(key, DEFAULTS[key]) for key in keys}
    return cls(params, lr=spec["lr"], **_tuple_betas(options))


def _tuple_betas(options: dict) -> dict:
    """Configs hold lists; torch's optimizers compare betas as a tuple."""
    return {**options, "betas": tuple(options["betas"])} if "betas" in options else options
