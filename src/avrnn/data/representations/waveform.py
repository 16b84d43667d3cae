"""`data/representation=waveform`: z-scored waveform frames (the paper's input, and the default)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from avrnn.data.errors import DataError
from avrnn.data.framing import Normalization, frame_signal, unframe
from avrnn.data.representations.base import NoSettings, Representation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WaveformSettings(NoSettings):
    """Set only for checkpoints of versions before representations (avrnn.data.representations.settings),
    which accepted frames overlapping by data.frame_size - data.hop: they still evaluate, with a warning."""

    earlier_version_overlap: bool = field(default=False, metadata={"internal": True})


class Waveform(Representation):
    """Frames of data.frame_size samples, one per timestep, not overlapping, each sample z-scored with
    the training split's mean and std (statistics `mean`, `std`). A last partial frame is zero-padded
    (data.last_frame=pad) or dropped. The frames must not overlap: decoding concatenates them, and a
    likelihood of overlapping frames would count each shared sample more than once."""

    name = "waveform"
    Settings = WaveformSettings
    STATISTICS = ("mean", "std")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.settings.earlier_version_overlap and self.hop < self.frame_size:
            log.warning("waveform frames of %d samples every %d: a checkpoint of an earlier version, which accepted "
                        "overlapping frames; it evaluates, but its bounds count the overlapping samples more than once "
                        "(and its reconstructions keep each frame's first %d samples)", self.frame_size, self.hop,
                        self.hop)
        elif self.hop != self.frame_size:
            raise DataError(f"data.hop={self.hop} differs from data.frame_size={self.frame_size}, and waveform frames "
                            "cannot overlap or leave gaps (the likelihood would count overlapping samples twice); "
                            "set data.hop=null, or use data/representation=stft for overlapping frames")

    @staticmethod
    def features_at(frame_size: int) -> int:
        return frame_size

    @property
    def bound_on(self) -> str:
        return (f"the z-scored waveform: {self.frame_size} samples per timestep (x - mean) / std, mean and std of "
                "the training split")

    @property
    def frames_scored(self) -> str:
        last = ("a zero-padded last frame" if self.last_frame == "pad" else
                "not the last partial frame (data.last_frame=drop)")
        return f"all frames of each utterance, including the first and {last}"

    def bits_per_sample(self, nats_per_timestep: float) -> float:
        return -nats_per_timestep / self.frame_size / math.log(2)

    def log_jacobian_per_timestep(self) -> float:
        return -self.frame_size * math.log(self._needs_statistics()["std"])

    def _fit(self, waveforms: list[np.ndarray]) -> dict[str, float]:
        return Normalization.fit(waveforms).to_dict()

    def _check(self, source: str) -> None:
        Normalization(**self.statistics).check(source)

    @property
    def normalization(self) -> Normalization:
        return Normalization(**self._needs_statistics())

    def encode(self, waveform: np.ndarray) -> torch.Tensor:
        return frame_signal(self.normalization.apply(waveform), self.frame_size, self.hop, self.last_frame == "pad")

    def decode(self, features: torch.Tensor, original: np.ndarray | None = None) -> np.ndarray:
        """The frames one after another, de-normalised, clipped to [-1, 1]; cut to `original`'s length (the
        zero padding of a last partial frame is not audio)."""
        frames = features.detach()
        if self.hop < self.frame_size and len(frames):  # overlapping (earlier versions): each frame's first hop
            samples = torch.cat([frames[:-1, :self.hop].reshape(-1), frames[-1]])
        else:
            samples = unframe(frames)
        wave = np.clip(self.normalization.undo(samples.cpu().numpy()), -1.0, 1.0)
        return wave[:len(original)].astype(np.float32) if original is not None else wave.astype(np.float32)

    def decoded_how(self, with_original: bool) -> str:
        return "the frames one after another, de-normalised"
