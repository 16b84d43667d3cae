"""Framing of waveforms into (T, frame_size) sequences and the normalisation statistics.

Used by the waveform representation (avrnn.data.representations.waveform).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from avrnn.data.errors import DataError


# Below this the training split is digital silence: 16-bit PCM's quantisation step is 3e-5, and
# speech recorded at -60 dBFS still has a std of about 1e-3. Dividing by less would blow noise up.
MIN_STD = 1e-5


@dataclass(frozen=True)
class Normalization:
    """Global waveform mean and std, computed on the training split only (plain floats so they
    can be stored in checkpoints and JSON)."""

    mean: float
    std: float

    @classmethod
    def fit(cls, waveforms: list[np.ndarray]) -> "Normalization":
        count = sum(len(w) for w in waveforms)
        if count == 0:
            raise ValueError("cannot compute normalisation statistics of an empty training split")
        total = sum(float(np.sum(w, dtype=np.float64)) for w in waveforms)
        mean = total / count
        squares = sum(float(np.sum((w.astype(np.float64) - mean) ** 2)) for w in waveforms)
        return cls(mean=mean, std=(squares / count) ** 0.5).check("fitted on the training split")

    def check(self, source: str) -> "Normalization":
        """self, or a DataError naming `source` (where the statistics came from) when the mean or std
        is not finite or the std is below MIN_STD; wherever statistics enter: fitted, read from the
        data cache, read from a checkpoint."""
        if not (math.isfinite(self.mean) and math.isfinite(self.std)) or self.std < MIN_STD:
            raise DataError(f"normalisation statistics {source} are unusable (mean {self.mean:.4g}, std {self.std:.4g}; "
                            f"they must be finite with std >= {MIN_STD:g}): the training audio is silent or corrupt; "
                            "check the files (every sample is checked when read: rebuild a data cache made before "
                            "that by deleting it) or retrain")
        return self

    def apply(self, waveform: np.ndarray) -> np.ndarray:
        return ((waveform - self.mean) / self.std).astype(np.float32)

    def undo(self, waveform):
        return waveform * self.std + self.mean

    def to_dict(self) -> dict:
        return asdict(self)


def frame_signal(waveform: np.ndarray, frame_size: int, hop: int | None = None,
                 pad_last: bool = False) -> torch.Tensor:
    """Frames (T, frame_size) every `hop` samples (default: frame_size, i.e. non-overlapping).

    A last partial frame is zero-padded and kept (pad_last=True) or dropped. Zero is the mean of a
    normalised waveform; the padded frame counts as a real frame in the mask (it holds real samples).
    """
    hop = hop or frame_size
    waveform = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
    remainder = (len(waveform) - frame_size) % hop if len(waveform) >= frame_size else len(waveform)
    if pad_last and remainder:
        missing = frame_size - len(waveform) if len(waveform) < frame_size else hop - remainder
        waveform = torch.nn.functional.pad(waveform, (0, missing))
    if len(waveform) < frame_size:
        return waveform.new_zeros(0, frame_size)
    return waveform.unfold(0, frame_size, hop).contiguous()


def unframe(frames: torch.Tensor) -> torch.Tensor:
    """Inverse of non-overlapping frame_signal: (..., T, frame_size) -> (..., T * frame_size)."""
    return frames.reshape(*frames.shape[:-2], -1)

