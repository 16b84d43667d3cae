"""A deterministic, speech-like corpus written in TIMIT layout as NIST SPHERE files.

Each utterance is a chain of voiced segments (a harmonic source at a moving pitch, shaped by
three moving formant resonances, i.e. vowel-like sounds), fricative-like noise bursts and
pauses. Speakers differ in pitch range and vocal-tract length (formant scale). Synthesis is
additive (harmonics weighted by the formant envelope), so it is vectorised and takes seconds.
"""

from __future__ import annotations

import errno
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from avrnn.data import files
from avrnn.data.audio import write_sphere
from avrnn.data.errors import DataError
from avrnn.data.progress import counted, progress

# Formant targets (Hz) of a few vowels (Peterson & Barney, adult male averages).
VOWELS = np.array(
    [[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480], [570, 840, 2410], [660, 1720, 2410]],
    dtype=np.float64,
)
BANDWIDTHS = np.array([90.0, 110.0, 170.0])
MARKER = "synthetic.json"

log = logging.getLogger(__name__)


@dataclass
class SyntheticCorpusSpec:
    """What to generate; the corpus is regenerated when any of these change. Also the schema of
    the `data.synthetic` config node."""

    train_speakers: int = 12
    test_speakers: int = 4
    utterances_per_speaker: int = 10
    min_seconds: float = 1.0
    max_seconds: float = 2.5
    sample_rate: int = 16000
    seed: int = 0


def _smooth_track(rng, n_samples: int, n_points: int, values: np.ndarray) -> np.ndarray:
    """Piecewise-linear trajectory through `values` (n_points, ...) spread over the utterance."""
    knots = np.sort(rng.uniform(0, n_samples, n_points))
    knots[0], knots[-1] = 0, n_samples - 1
    t = np.arange(n_samples)
    return np.stack([np.interp(t, knots, values[:, i]) for i in range(values.shape[1])], 1)


def _segments(rng, n_samples: int, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Voiced and unvoiced gain envelopes: segments of 60-250 ms with raised-cosine edges."""
    voiced, unvoiced = np.zeros(n_samples), np.zeros(n_samples)
    start = int(rng.uniform(0.05, 0.15) * sample_rate)  # leading silence
    while start < n_samples - int(0.1 * sample_rate):
        length = int(rng.uniform(0.06, 0.25) * sample_rate)
        end = min(start + length, n_samples)
        ramp = min(int(0.01 * sample_rate), (end - start) // 2)
        envelope = np.ones(end - start)
        if ramp > 0:
            edge = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
            envelope[:ramp], envelope[-ramp:] = edge, edge[::-1]
        kind = rng.choice(3, p=[0.65, 0.2, 0.15])  # voiced, fricative, pause
        if kind == 0:
            voiced[start:end] = envelope * rng.uniform(0.5, 1.0)
        elif kind == 1:
            unvoiced[start:end] = envelope * rng.uniform(0.1, 0.3)
        start = end
    return voiced, unvoiced


def _band_noise(rng, n_samples: int, sample_rate: int, low: float, high: float) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    freqs = np.fft.rfftfreq(n_samples, 1 / sample_rate)
    spectrum[(freqs < low) | (freqs > high)] = 0
    noise = np.fft.irfft(spectrum, n_samples)
    return noise / (noise.std() + 1e-12)


def synthesize_utterance(rng: np.random.Generator, seconds: float, sample_rate: int, f0_base: float,
                         formant_scale: float) -> np.ndarray:
    """One utterance, float32 with peak 0.5."""
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    n_targets = max(2, int(seconds * 6))
    formants = _smooth_track(rng, n, n_targets, VOWELS[rng.integers(len(VOWELS), size=n_targets)] * formant_scale)
    f0 = f0_base * (1 - 0.15 * t / seconds) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(3, 6) * t))
    f0 *= 1 + 0.01 * _smooth_track(rng, n, n_targets, rng.standard_normal((n_targets, 1)))[:, 0]
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    harmonics = np.arange(1, int(sample_rate / 2 / f0.min()) + 1)[:, None]  # (K, 1)
    freqs = harmonics * f0[None, :]  # (K, n)
    gain = sum(1.0 / (1.0 + ((freqs - formants[None, :, i]) / BANDWIDTHS[i]) ** 2) for i in range(3))
    gain = gain / harmonics * (freqs < sample_rate / 2)  # -6 dB/octave source tilt, no aliasing
    voiced_source = (gain * np.sin(harmonics * phase[None, :])).sum(0)
    voiced_source /= voiced_source.std() + 1e-12
    voiced_gain, unvoiced_gain = _segments(rng, n, sample_rate)
    centre = rng.uniform(3000, 6000)
    fricative = _band_noise(rng, n, sample_rate, centre - 1000, min(centre + 1500, sample_rate / 2 - 1))
    wave = voiced_gain * voiced_source + unvoiced_gain * fricative + 0.003 * rng.standard_normal(n)
    return (0.5 * wave / (np.abs(wave).max() + 1e-12)).astype(np.float32)


def generate_corpus(root: Path, spec: SyntheticCorpusSpec = SyntheticCorpusSpec()) -> Path:
    """Write the corpus under root/TRAIN and root/TEST (TIMIT layout); skip if already there. A root
    that holds anything else is refused (a user's own audio, named without data=audio_dir or
    data=timit, must not receive a generated corpus and be trained on it); a synthetic corpus of other
    settings is replaced whole. The corpus is generated in a staging folder beside root and renamed
    into place (avrnn.data.files.atomic_folder): a generation killed or out of disk leaves no partial corpus
    (which the next run would refuse as not the built-in one), only a staging folder removed later."""
    root = Path(root)
    marker = root / MARKER
    files.remove_stale_temporaries(root.parent)
    if marker.exists() and json.loads(marker.read_text()) == asdict(spec):
        return root
    if root.is_dir() and any(root.iterdir()) and not marker.exists():
        raise DataError(f"data.root={root} holds files that are not the built-in synthetic corpus, and data=synthetic "
                        "(the default) generates its corpus there; for your own audio add data=audio_dir (any folder) "
                        "or data=timit, or point data.root at a new or empty folder")
    log.info("generating the built-in synthetic corpus in %s (%s x %s at %d Hz; once, then reused)", root,
             counted(spec.train_speakers + spec.test_speakers, "speaker"), counted(spec.utterances_per_speaker, "utterance"),
             spec.sample_rate)
    try:
        with files.atomic_folder(root) as staging:
            _write_corpus(staging, spec)
            if marker.exists():  # an earlier synthetic corpus (the marker says so): replaced whole
                shutil.rmtree(root)
    except files.WriteFailed as error:
        # another process (a DDP rank, a parallel sweep job) put the same corpus in place first
        if error.errno in (errno.ENOTEMPTY, errno.EEXIST) and marker.exists() \
                and json.loads(marker.read_text()) == asdict(spec):
            return root
        raise
    return root


def _write_corpus(folder: Path, spec: SyntheticCorpusSpec) -> None:
    rng = np.random.default_rng(spec.seed)
    speakers = [("TRAIN", i) for i in range(spec.train_speakers)] + [("TEST", i) for i in range(spec.test_speakers)]
    for split, index in progress(speakers, "generating the built-in corpus", log, unit="speaker"):
        female = index % 2 == 1
        f0_base = rng.uniform(180, 240) if female else rng.uniform(95, 135)
        formant_scale = rng.uniform(1.1, 1.2) if female else rng.uniform(0.95, 1.05)
        speaker_dir = folder / split / f"DR{index % 8 + 1}" / f"{'F' if female else 'M'}SYN{index}"
        for utterance in range(spec.utterances_per_speaker):
            seconds = rng.uniform(spec.min_seconds, spec.max_seconds)
            wave = synthesize_utterance(rng, seconds, spec.sample_rate, f0_base, formant_scale)
            write_sphere(speaker_dir / f"SX{utterance + 1}.WAV", wave, spec.sample_rate)
    files.write_text(folder / MARKER, json.dumps(asdict(spec), indent=2))
