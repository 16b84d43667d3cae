"""Optimizers by name (model.optimizer, model.adversarial_optimizer, critic.optimizer)."""

from __future__ import annotations

import torch

# name -> (class, the keys of the optimizer config it takes besides lr)
OPTIMIZERS = {
    "adam": (torch.optim.Adam, ("betas", "eps", "weight_decay")),
    "rmsprop": (torch.optim.RMSprop, ("alpha", "eps", "weight_decay")),
    "sgd": (torch.optim.SGD, ("weight_decay",)),
}
DEFAULTS = {"betas": (0.9, 0.999), "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0}


def build_optimizer(spec: dict, params) -> torch.optim.Optimizer:
    cls, keys = OPTIMIZERS[spec["name"]]
    options = {key: spec.get(key, DEFAULTS[key]) for key in keys}
    if "betas" in options:
        options["betas"] = tuple(options["betas"])
    return cls(params, lr=spec["lr"], **options)
