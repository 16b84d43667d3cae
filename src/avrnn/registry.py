"""The allow-list of classes a config or a checkpoint may name in `_target_`, and building from it.

Users swap components the Hydra way: a config node `{_target_: package.Class, **kwargs}`. A
config is the user's own input, so the classes it names are trusted (`trust` imports them). A
checkpoint is not: it may come from anyone, and a class path read from it is never imported or
called. Building goes through this registry, which holds the project's own classes and those a
config or the user trusted in this process; anything else is refused in one line.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any, Iterable

from avrnn.models.critic import ConditionalCritic, SequenceCritic
from avrnn.models.objectives import JensenShannon, Wasserstein, WassersteinGradientPenalty


class UntrustedTargetError(ValueError):
    """A `_target_` that is not in the registry; the message says how to trust it."""


def _path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


_REGISTRY: dict[str, type] = {_path(cls): cls for cls in (
    Wasserstein, WassersteinGradientPenalty, JensenShannon, SequenceCritic, ConditionalCritic)}


def register(cls: type) -> type:
    """Allow `cls` as a `_target_` (usable as a decorator on a user's own component)."""
    _REGISTRY[_path(cls)] = cls
    return cls


def trust(paths: Iterable[str]) -> None:
    """Import and register classes named by trusted input (the user's config or command line)."""
    for path in paths:
        if path in _REGISTRY:
            continue
        module_name, _, name = path.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError, ValueError) as error:
            raise UntrustedTargetError(f"_target_ {path!r} cannot be imported ({error}); check the class path "
                                       "in your config") from error
        if not isinstance(cls, type):
            raise UntrustedTargetError(f"_target_ {path!r} is not a class; name a class in your config")
        _REGISTRY[path] = cls


def targets_in(node: Any) -> list[str]:
    """Every `_target_` in a plain config tree (dicts and lists)."""
    if isinstance(node, dict):
        found = [node["_target_"]] if isinstance(node.get("_target_"), str) else []
        return found + [t for key, value in node.items() if key != "_target_" for t in targets_in(value)]
    if isinstance(node, list):
        return [t for value in node for t in targets_in(value)]
    return []


def lookup(path: str, where: str) -> type:
    """The registered class at `path`; never imports: an unknown class is refused in one line."""
    cls = _REGISTRY.get(path)
    if cls is None:
        raise UntrustedTargetError(
            f"{where}._target_={path!r} is not a registered class, so it is not imported (a checkpoint may come "
            f"from anyone); if you trust it, add trusted_targets=[{path}] to the command, or decorate the class "
            "with avrnn.registry.register")
    return cls


def build(spec: dict, where: str, **extra):
    """spec = {_target_: registered class path, **kwargs} -> instance; `extra` adds arguments the
    config does not hold (e.g. the latent size). With `_partial_: true`, as in Hydra, a
    functools.partial that takes the rest later (e.g. an optimizer its parameters)."""
    cls = lookup(spec.get("_target_"), where)
    kwargs = {key: value for key, value in spec.items() if key not in ("_target_", "_partial_")}
    if spec.get("_partial_"):
        return functools.partial(cls, **kwargs, **extra)
    return cls(**kwargs, **extra)
