"""Reading audio files (NIST SPHERE, WAV, FLAC, OGG) with soundfile, as mono float32, checked.

Every decoded waveform is checked before anything is computed from it: its samples must be finite,
and a floating-point file's must lie within +-MAX_FLOAT_AMPLITUDE (integer PCM decodes to [-1, 1) by
construction). One NaN or one sample of 1e30 would otherwise make the corpus's normalisation NaN or
scale all speech to about zero, silently. Resampling uses soxr (libsoxr), made for arbitrary rate
ratios: its time and memory do not grow with the ratio's coprime factors (a windowed-sinc resampler
built from gcd(16001, 16000) = 1 needs a kernel of 16,000 phases: 16 s and 5 GB for a 0.5 s file).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from avrnn.data.errors import DataError
from avrnn.data.headers import readable, shortfall, sphere_header
from avrnn.data.progress import counted

# Float files may exceed full scale a little (headroom); 20 dB above it is a broken file, not speech.
MAX_FLOAT_AMPLITUDE = 10.0
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
RESAMPLER_QUALITY = "VHQ"  # soxr's very high quality: passband to 95% of Nyquist, 175 dB stopband


def _unreadable(path: Path, error: Exception) -> DataError:
    header = sphere_header(path)
    if header:  # sph2pipe (NIST's own converter) decodes PCM, u-law and shorten-compressed SPHERE alike
        coding = header.get("sample_coding", "not given (no sample_coding field)")
        fault = f"NIST SPHERE with sample_coding {coding}, which libsndfile cannot decode"
        return DataError(f"cannot read audio file {path}: {fault}; convert it to PCM WAV with sph2pipe (`sph2pipe -f "
                         "wav IN.WAV IN.WAV.wav`; it decodes shorten): a readable copy beside it is used instead, or "
                         "convert the corpus into a new data.root; or set data.on_bad_file=skip", fault)
    said = re.sub(r"^Error opening .*?: ", "", " ".join(str(error).split()))  # libsndfile repeats the path
    return DataError(f"cannot read audio file {path} ({error}); replace or delete it, or set data.on_bad_file=skip",
                     f"cannot be read ({said})")


def check_samples(waveform: np.ndarray, path: Path, subtype: str) -> None:
    """Raise a DataError naming `path` when a decoded sample is not finite or, in a float file, lies
    beyond +-MAX_FLOAT_AMPLITUDE."""
    finite = np.isfinite(waveform)
    if not finite.all():
        bad = np.flatnonzero(~finite.all(axis=-1) if waveform.ndim > 1 else ~finite)
        fault = f"holds {counted(bad.size, 'non-finite sample')} (NaN or infinity; the first at sample {bad[0]})"
        raise DataError(f"{path} {fault}; replace or delete the file, or set data.on_bad_file=skip", fault)
    peak = float(np.abs(waveform).max()) if waveform.size else 0.0
    if subtype in FLOAT_SUBTYPES and peak > MAX_FLOAT_AMPLITUDE:
        fault = (f"holds a sample of magnitude {peak:.3g}, beyond the +-{MAX_FLOAT_AMPLITUDE:g} allowed in float "
                 "audio (full scale is 1)")
        raise DataError(f"{path} {fault}; replace or delete the file, or set data.on_bad_file=skip", fault)


def resample(waveform: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """float32 waveform from `from_rate` to `to_rate` Hz (soxr, RESAMPLER_QUALITY): time and memory
    linear in the samples for any pair of rates; at least 60 dB SNR against an exact band-limited
    reference on test signals (tests/test_corpus_faults.py)."""
    if from_rate == to_rate:
        return waveform
    return soxr.resample(waveform, from_rate, to_rate, quality=RESAMPLER_QUALITY).astype(np.float32)


def read_audio(path: Path, sample_rate: int, resample_to_rate: bool = True,
               resampled: dict[int, int] | None = None) -> np.ndarray:
    """Mono float32 waveform at `sample_rate`, its samples checked (check_samples); a clear DataError
    names a file that cannot be read, is cut short (avrnn.data.headers), holds bad samples or has
    another rate with resampling off. `resampled`: counts the files resampled, by their rate."""
    try:
        with sf.SoundFile(readable(path)) as audio:
            subtype, file_rate, promised = audio.subtype, audio.samplerate, audio.frames
            waveform = audio.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        raise _unreadable(Path(path), error) from error
    short = shortfall(path) or (f"its header promises {promised} samples, {len(waveform)} decode"
                                if len(waveform) < promised else None)  # e.g. FLAC's STREAMINFO
    if short:
        fault = f"is cut short: {short} (a copy or download that stopped early?)"
        raise DataError(f"{path} {fault}; copy it again, delete it, or set data.on_bad_file=skip", fault)
    check_samples(waveform, path, subtype)
    waveform = waveform.mean(axis=1)
    if file_rate != sample_rate:
        if not resample_to_rate:
            raise DataError(
                f"{path} has sample rate {file_rate} Hz but data.sample_rate={sample_rate}; "
                f"set data.resample=true (or, for a model trained anew, data.sample_rate={file_rate}; a resumed run "
                "can change neither: give it the corpus it trained on)",
                f"has sample rate {file_rate} Hz, not data.sample_rate={sample_rate} (data.resample=false)")
        waveform = resample(waveform, file_rate, sample_rate)
        if resampled is not None:
            resampled[file_rate] = resampled.get(file_rate, 0) + 1
    return waveform


def write_sphere(path: Path, waveform: np.ndarray, sample_rate: int) -> None:
    """16-bit NIST SPHERE, the format TIMIT is distributed in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), waveform, sample_rate, format="NIST", subtype="PCM_16")
