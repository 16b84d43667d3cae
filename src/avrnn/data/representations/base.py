"""The interface every representation implements (avrnn.data.representations lists them)."""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping

import numpy as np
import torch

from avrnn.data.errors import DataError
from avrnn.data.progress import plural


@dataclasses.dataclass(frozen=True)
class NoSettings:
    """A representation's own keys under `data.representation` (besides `name`); subclasses add fields."""

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:  # keys marked internal (set by the project, e.g. for earlier versions' checkpoints) are not offered
            takes = ", ".join(sorted(f.name for f in dataclasses.fields(cls) if not f.metadata.get("internal"))) \
                or "no other key"
            raise DataError(f"unknown data.representation {plural(len(unknown), 'key')} {', '.join(unknown)}; this "
                            f"representation takes name and {takes}")
        return cls(**values).check()

    def check(self):
        return self


class Representation(ABC):
    """A waveform <-> (T, F) features map with statistics fitted on the training split.

    Attributes every representation sets: `name`; `feature_size` F (the model's input size);
    `samples_per_step` (waveform samples between timesteps); `min_samples` (shorter files cannot be
    encoded); `value_range` (low, high): where every feature lies (an emission must be a density there);
    `bound_on`: what a bound in nats per timestep on these features bounds, in words."""

    name: ClassVar[str]
    Settings: ClassVar[type] = NoSettings
    value_range: ClassVar[tuple[float, float]] = (-math.inf, math.inf)
    STATISTICS: ClassVar[tuple[str, ...]] = ()  # the keys of `statistics`

    def __init__(self, frame_size: int, hop: int | None, last_frame: str, settings=None,
                 statistics: Mapping[str, float] | None = None):
        self.frame_size, self.hop, self.last_frame = int(frame_size), int(hop or frame_size), last_frame
        self.settings = settings if settings is not None else self.Settings()
        self.statistics: dict[str, float] | None = None
        if statistics is not None:
            self.use(statistics, "given")

    # --- what the model reads --------------------------------------------------------------------
    @property
    def feature_size(self) -> int:
        return self.features_at(self.frame_size)

    @staticmethod
    @abstractmethod
    def features_at(frame_size: int) -> int:
        """Features per timestep at data.frame_size (the model's input size)."""

    @property
    def samples_per_step(self) -> int:
        return self.hop

    @property
    def min_samples(self) -> int:
        return self.frame_size

    @property
    @abstractmethod
    def bound_on(self) -> str: ...

    @property
    @abstractmethod
    def frames_scored(self) -> str:
        """Which frames of an utterance a bound counts, in words (metrics.json's frames_scored)."""

    def steps(self, seconds: float, sample_rate: int) -> int:
        """Timesteps that cover `seconds` of audio (at least one)."""
        return max(1, round(seconds * sample_rate / self.samples_per_step))

    def bits_per_sample(self, nats_per_timestep: float) -> float | None:
        """A bound as bits per audio sample, where the features are the samples themselves (else None)."""
        return None

    @abstractmethod
    def log_jacobian_per_timestep(self) -> float:
        """log |d features / d unnormalised features| per timestep: add it to a bound in nats per timestep
        on the features for the bound on the unnormalised ones (the change of variables)."""

    # --- statistics ------------------------------------------------------------------------------
    def fit(self, waveforms: list[np.ndarray]) -> dict[str, float]:
        """Fit the statistics on the training split's waveforms (after `prepare`); returns them."""
        return self.use(self._fit(waveforms), "fitted on the training split")

    @abstractmethod
    def _fit(self, waveforms: list[np.ndarray]) -> dict[str, float]: ...

    def use(self, statistics: Mapping[str, float], source: str) -> dict[str, float]:
        """Take statistics (from a fit, a data cache or a checkpoint: `source` says which), checked."""
        missing = [key for key in self.STATISTICS if key not in statistics]
        if missing:
            raise DataError(f"the {self.name} representation's statistics {source} lack {', '.join(missing)} (they "
                            f"hold {', '.join(statistics) or 'nothing'}): written for another representation; use "
                            "the data config it was written with, or retrain")
        self.statistics = {key: float(statistics[key]) for key in self.STATISTICS}
        self._check(source)
        return dict(self.statistics)

    def _check(self, source: str) -> None:
        """DataError naming `source` where the statistics cannot normalise anything."""

    def _needs_statistics(self) -> dict[str, float]:
        if self.statistics is None:
            raise RuntimeError(f"the {self.name} representation has no statistics yet: fit it on the training split "
                               "or give a checkpoint's")
        return self.statistics

    # --- waveform <-> features -------------------------------------------------------------------
    def prepare(self, waveform: np.ndarray) -> np.ndarray:
        """The audio the model sees of a file as read (at data.sample_rate): the waveform itself, or less
        of it (silence trimmed). Speech quality scores against this."""
        return waveform

    @abstractmethod
    def encode(self, waveform: np.ndarray) -> torch.Tensor:
        """A prepared waveform (L,) -> features (T, feature_size), float32, in the fitted statistics."""

    @abstractmethod
    def decode(self, features: torch.Tensor, original: np.ndarray | None = None) -> np.ndarray:
        """Features (T, feature_size) -> a float32 waveform in [-1, 1]. `original`: the prepared waveform the
        features came from (or reconstruct), where one exists: what is missing from the features (the
        phase, the length) is taken from it; None for prior samples."""

    @abstractmethod
    def decoded_how(self, with_original: bool) -> str:
        """How `decode` rebuilt a waveform (with or without an original), for what it writes out."""
