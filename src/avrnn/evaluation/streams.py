"""One random stream per Monte Carlo estimate of an evaluation (the ELBO, each IWAE-k and FIVO-k, the
reconstructions scored for speech quality), each seeded from evaluate's `seed` and the estimate's name.

With one shared stream, each estimate's draws for a batch came after the other estimates' draws for the
batches before it, so the ELBO of a checkpoint changed with the iwae_k / fivo_k asked for beside it, and
the reconstructions' SI-SDR with speech_quality's place after the bounds. Evaluation runs on the CPU: the
streams are torch's CPU generator, forked (torch.random.fork_rng) and given back untouched; a model on
another device is refused (require_cpu), since its draws would come from that device's generator."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import torch


class EstimateStreams:
    """`with streams.drawing("iwae_64"): ...` draws from that estimate's own stream, which goes on from
    where its last block stopped (so its draws over several batches are one stream, as without forks)."""

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self._states: dict[str, torch.Tensor] = {}

    def seed_of(self, name: str) -> int:
        """The estimate's own seed: a hash of (seed, name), stable across processes and Python versions."""
        digest = hashlib.sha256(f"{self.seed}/{name}".encode()).digest()
        return int.from_bytes(digest[:8], "little") >> 1  # torch.manual_seed takes up to 2**63 - 1 here

    @contextmanager
    def drawing(self, name: str) -> Iterator[None]:
        with torch.random.fork_rng(devices=[]):
            if name in self._states:
                torch.set_rng_state(self._states[name])
            else:  # the CPU generator only: torch.manual_seed would re-seed every device's too
                torch.default_generator.manual_seed(self.seed_of(name))
            yield
            self._states[name] = torch.get_rng_state()


def require_cpu(model: torch.nn.Module) -> None:
    """ValueError unless `model`'s parameters are on the CPU, whose generator the streams fork."""
    devices = {parameter.device.type for parameter in model.parameters()}
    if devices - {"cpu"}:
        raise ValueError(f"evaluation draws from the CPU's random streams and needs the model on the CPU; it is "
                         f"on {', '.join(sorted(devices))}: move it with .cpu() first")
