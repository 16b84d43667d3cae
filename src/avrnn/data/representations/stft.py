"""`data/representation=stft`: the STFT power spectrogram, the input of the DVAE benchmark (Girin et al. 2021)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from avrnn.data.errors import DataError
from avrnn.data.progress import counted
from avrnn.data.representations.base import NoSettings, Representation

WINDOWS = {
    # sin(pi (n + 1/2) / N), n = 0..N-1: the benchmark's window (DVAE's speech config)
    "sine": lambda size: torch.signal.windows.cosine(size, sym=True, dtype=torch.float64),
    "hann": lambda size: torch.hann_window(size, periodic=True, dtype=torch.float64),
}
PAD_MODES = ("reflect", "constant", "replicate", "circular")


@dataclass(frozen=True)
class StftSettings(NoSettings):
    """The keys of conf/data/representation/stft.yaml besides name (the window length and hop are
    data.frame_size and data.hop)."""

    window: str = "sine"  # sine | hann
    center: bool = True  # frames centred on t * hop, the signal padded by frame_size // 2 at both ends
    pad_mode: str = "reflect"  # how the centred frames are padded: reflect | constant | replicate | circular
    trim_top_db: Optional[float] = 30.0  # trim leading and trailing audio quieter than this many dB below the peak
    # (the yaml's and the benchmark's default; null: keep every sample)
    griffin_lim_iterations: int = 32  # phase estimation of prior samples (they have no phase)

    def check(self) -> "StftSettings":
        if self.window not in WINDOWS:
            raise DataError(f"data.representation.window={self.window!r} is not allowed; choose one of "
                            f"{', '.join(WINDOWS)}")
        if self.pad_mode not in PAD_MODES:
            raise DataError(f"data.representation.pad_mode={self.pad_mode!r} is not allowed; choose one of "
                            f"{', '.join(PAD_MODES)}")
        if self.trim_top_db is not None and not self.trim_top_db > 0:
            raise DataError(f"data.representation.trim_top_db must be positive or null, got {self.trim_top_db}")
        if self.griffin_lim_iterations < 1:
            raise DataError("data.representation.griffin_lim_iterations must be a positive integer, got "
                            f"{self.griffin_lim_iterations}")
        return self


class PowerSpectrogram(Representation):
    """P_tf = |X_tf|^2 / scale for the data.frame_size // 2 + 1 bins f of frame t (a data.frame_size-sample
    window every data.hop samples), in float32; `scale` (the statistics) is the mean power over every bin
    and frame of the training split, one number fixed for the corpus, so likelihoods stay comparable between
    files (the benchmark divides each segment by its own peak amplitude instead).

    A bound on these features bounds log p(P / scale); log p(P) is that plus `log_jacobian_per_timestep`
    = -F log(scale). Overlapping windows make the spectrogram redundant (frame_size / hop times as many
    values as samples), so nats per timestep here are not comparable with waveform nats.

    decode: the predicted power's magnitude with the original's phase (the benchmark's protocol for
    reconstructions), or, without an original (prior samples), with a phase estimated by Griffin-Lim
    (torchaudio)."""

    name = "stft"
    Settings = StftSettings
    value_range = (0.0, math.inf)
    STATISTICS = ("scale",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.hop > self.frame_size:
            raise DataError(f"data.hop={self.hop} is longer than the window, data.frame_size={self.frame_size}: samples "
                            "between windows would be lost and no waveform rebuilt; use a hop of at most the window")
        if self.last_frame != "pad":
            raise DataError(f"data.last_frame={self.last_frame} applies to waveform frames; the spectrogram's edges "
                            "are set by data.representation.center (true: every sample is in a frame; false: samples "
                            "after the last whole window are in none): drop data.last_frame")
        if not self.settings.center and float(self.window()[0]) == 0.0:
            raise DataError(f"data.representation.window={self.settings.window} is zero at its edge, so with "
                            "data.representation.center=false the first sample is in no frame and no waveform can be "
                            "rebuilt; use center=true or window=sine")

    @staticmethod
    def features_at(frame_size: int) -> int:
        return frame_size // 2 + 1

    @property
    def min_samples(self) -> int:
        # reflect padding of frame_size // 2 needs more samples than that; otherwise one whole frame
        return self.frame_size // 2 + 1 if self.settings.center else self.frame_size

    @property
    def bound_on(self) -> str:
        return (f"the power spectrogram |X|^2 / scale: {self.feature_size} bins per timestep, a {self.frame_size}-sample "
                f"{self.settings.window} window every {self.hop} samples ({self.frame_size / self.hop:g}x redundant: not "
                "comparable with waveform nats); add log_jacobian (nats per timestep) for a bound on the raw power |X|^2")

    @property
    def frames_scored(self) -> str:
        edges = (f"centred frames, the audio {self.settings.pad_mode}-padded by half a window at both ends"
                 if self.settings.center else "uncentred frames: samples after the last whole window are in none")
        trimmed = (f", after trimming leading and trailing audio more than {self.settings.trim_top_db:g} dB below the "
                   "utterance's peak" if self.settings.trim_top_db is not None else "")
        return f"all STFT frames of each utterance ({edges}{trimmed})"

    def log_jacobian_per_timestep(self) -> float:
        return -self.feature_size * math.log(self._needs_statistics()["scale"])

    def _check(self, source: str) -> None:
        scale = self.statistics["scale"]
        if not (math.isfinite(scale) and scale > 0):
            raise DataError(f"the spectrogram's scale {source} is unusable ({scale:.4g}; it must be finite and "
                            "positive): the training audio is silent or corrupt; check the files or retrain")

    # --- the transform --------------------------------------------------------------------------
    def window(self) -> torch.Tensor:
        return WINDOWS[self.settings.window](self.frame_size).float()

    def stft(self, waveform: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Complex STFT (T, F) of a waveform (L,)."""
        wave = torch.as_tensor(np.ascontiguousarray(waveform, dtype=np.float32))
        spectrum = torch.stft(wave, n_fft=self.frame_size, hop_length=self.hop, win_length=self.frame_size,
                              window=self.window(), center=self.settings.center, pad_mode=self.settings.pad_mode,
                              return_complex=True)
        return spectrum.T

    def _fit(self, waveforms: list[np.ndarray]) -> dict[str, float]:
        total, count = 0.0, 0
        for wave in waveforms:
            power = self.stft(wave).abs().double().pow(2)
            total, count = total + float(power.sum()), count + power.numel()
        if count == 0:
            raise DataError("cannot fit the spectrogram's scale on an empty training split")
        return {"scale": total / count}

    def prepare(self, waveform: np.ndarray) -> np.ndarray:
        if self.settings.trim_top_db is None:
            return waveform
        import librosa  # numba's start-up cost, only where trimming is asked for

        trimmed, _ = librosa.effects.trim(np.asarray(waveform, dtype=np.float32), top_db=self.settings.trim_top_db)
        return np.ascontiguousarray(trimmed).copy()  # its own memory: the untrimmed array is not kept

    def encode(self, waveform: np.ndarray) -> torch.Tensor:
        scale = self._needs_statistics()["scale"]
        return (self.stft(waveform).abs().pow(2) / scale).float().contiguous()

    def decode(self, features: torch.Tensor, original: np.ndarray | None = None) -> np.ndarray:
        magnitude = (features.detach().cpu().double().clamp(min=0) * self._needs_statistics()["scale"]).sqrt()
        window = self.window().double()
        if original is None:
            import torchaudio

            wave = torchaudio.functional.griffinlim(
                magnitude.T, window, self.frame_size, self.hop, self.frame_size, power=1.0,
                n_iter=self.settings.griffin_lim_iterations, momentum=0.99, length=None, rand_init=False)
        else:
            phase = self.stft(original).angle().double()
            if phase.shape != magnitude.shape:
                raise ValueError(f"features of {magnitude.shape[0]} frames cannot take the phase of a waveform of "
                                 f"{phase.shape[0]} frames: decode with the waveform they were encoded from")
            wave = torch.istft(torch.polar(magnitude, phase).T, n_fft=self.frame_size, hop_length=self.hop,
                               win_length=self.frame_size, window=window, center=self.settings.center,
                               length=len(original))
        return np.clip(wave.numpy(), -1.0, 1.0).astype(np.float32)

    def decoded_how(self, with_original: bool) -> str:
        return ("the predicted power with the original's phase" if with_original else
                f"the predicted power with a phase estimated by Griffin-Lim "
                f"({counted(self.settings.griffin_lim_iterations, 'iteration')}; prior samples have no phase)")
