"""Reading audio files (NIST SPHERE, WAV, FLAC, OGG) with soundfile, as mono float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from avrnn.data.errors import DataError


def read_audio(path: Path, sample_rate: int, resample: bool = True) -> np.ndarray:
    """Mono float32 waveform in [-1, 1] at `sample_rate`; a clear DataError names a bad file."""
    try:
        waveform, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        raise DataError(f"cannot read audio file {path} ({error}); replace or delete it, "
                        "or set data.on_bad_file=skip") from error
    waveform = waveform.mean(axis=1)
    if file_rate != sample_rate:
        if not resample:
            raise DataError(
                f"{path} has sample rate {file_rate} Hz but data.sample_rate={sample_rate}; "
                f"set data.sample_rate={file_rate} or data.resample=true"
            )
        waveform = AF.resample(torch.from_numpy(waveform), file_rate, sample_rate).numpy()
    return waveform


def write_sphere(path: Path, waveform: np.ndarray, sample_rate: int) -> None:
    """16-bit NIST SPHERE, the format TIMIT is distributed in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), waveform, sample_rate, format="NIST", subtype="PCM_16")
