"""Reconstruction quality as speech researchers report it: SI-SDR (dB), PESQ (MOS-LQO) and ESTOI.

Each test utterance is reconstructed teacher-forced (the emission mean given posterior samples,
VRNN.reconstruct), decoded to a waveform by the data representation (waveform frames de-normalised;
a power spectrogram with the original's phase), and scored against the original audio at the corpus's
sample rate, as the model saw it (the representation's `prepare`: e.g. silence-trimmed), never
against decoded features (a zero-padded last frame is not audio). These metrics score reconstructions, not
samples from the prior. Implementations: torchmetrics' audio metrics, which call the `pesq` (ITU-T
P.862) and `pystoi` packages.

  SI-SDR   scale-invariant signal-to-distortion ratio, dB (Le Roux et al. 2019)
  PESQ     wide band (P.862.2) at 16 kHz, narrow band at 8 kHz; not computed at other rates
  ESTOI    extended short-time objective intelligibility, a mean of correlations: up to 1 (fully
           intelligible), near 0 or below for unintelligible audio (Jensen and Taal 2016)

Every metric scores the same utterances: one that is shorter than MIN_SECONDS, digitally silent (its
peak below one 16-bit step, where SI-SDR would report about -150 dB), or that any metric cannot score
(PESQ finds no speech; ESTOI has fewer than 30 non-silent frames of 25.6 ms, about 0.4 s of speech,
where pystoi would return 1e-5 with a warning; a value that is not finite) is left out of every
metric's mean, counted, with the reason. Only PESQ's sample-rate limit is the metric's own (it leaves
that metric out for the whole corpus, not the utterance out of the others).
"""

from __future__ import annotations

import logging
import math
import time
import warnings

import numpy as np
import torch
from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio
from torchmetrics.functional.audio.pesq import perceptual_evaluation_speech_quality
from torchmetrics.functional.audio.stoi import short_time_objective_intelligibility

from avrnn.data.progress import progress
from avrnn.evaluation.streams import EstimateStreams, require_cpu


log = logging.getLogger("avrnn.evaluation")
PESQ_MODES = {16000: "wb", 8000: "nb"}
MIN_SECONDS = 0.25  # shorter utterances are not scored (PESQ's analysis needs about this much speech)
METRICS = {"si_sdr": "dB", "pesq": "MOS-LQO (about 1 to 4.55 narrow band, 4.64 wide band)",
           "estoi": "score (-1 to 1; 1: fully intelligible)"}


ESTOI_MIN_SPEECH_SECONDS = 0.4  # pystoi's 30 non-silent frames of 25.6 ms (a 256-sample window at 10 kHz)
SILENT_PEAK = 2.0 ** -15  # one step of 16-bit audio: a reference below it holds no signal to score against


class Unscorable(Exception):
    """A metric cannot score this utterance (every metric then leaves it out)."""


class NotComputed(Unscorable):
    """A metric is not computed at all for this corpus (PESQ at a rate it does not support): the
    utterance is still scored by the others."""


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    return float(scale_invariant_signal_distortion_ratio(torch.from_numpy(estimate).double(),
                                                         torch.from_numpy(reference).double()))


def pesq(estimate: np.ndarray, reference: np.ndarray, sample_rate: int) -> float:
    if sample_rate not in PESQ_MODES:
        raise NotComputed(f"PESQ needs 8 or 16 kHz audio, this corpus is at {sample_rate} Hz")
    try:
        return float(perceptual_evaluation_speech_quality(torch.from_numpy(estimate), torch.from_numpy(reference),
                                                          sample_rate, PESQ_MODES[sample_rate]))
    except Exception as error:  # the pesq package raises its own errors (no utterance found, ...)  # noqa: BLE001
        said = error.args[0] if len(error.args) == 1 else error  # its C library's message comes as bytes
        raise Unscorable(f"unscorable by PESQ ({said.decode() if isinstance(said, bytes) else said})") from error


def estoi(estimate: np.ndarray, reference: np.ndarray, sample_rate: int) -> float:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(short_time_objective_intelligibility(torch.from_numpy(estimate), torch.from_numpy(reference),
                                                           sample_rate, extended=True))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        raise Unscorable(f"unscorable by ESTOI (under {ESTOI_MIN_SPEECH_SECONDS} s of non-silent speech)")
    return value


def score_utterance(estimate: np.ndarray, reference: np.ndarray, sample_rate: int) -> dict[str, float | str]:
    """metric -> value, or the reason it was not computed (a string; the same for every metric where the
    utterance is left out: see the module's docstring)."""
    if len(reference) < MIN_SECONDS * sample_rate:
        return dict.fromkeys(METRICS, f"shorter than {MIN_SECONDS} s")
    if not np.max(np.abs(reference)) >= SILENT_PEAK:
        return dict.fromkeys(METRICS, "digitally silent")
    scores: dict[str, float | str] = {}
    for name, metric in (("si_sdr", si_sdr), ("pesq", pesq), ("estoi", estoi)):
        try:
            value = metric(estimate, reference) if name == "si_sdr" else metric(estimate, reference, sample_rate)
        except NotComputed as why:
            scores[name] = str(why)
            continue
        except Unscorable as why:
            return dict.fromkeys(METRICS, str(why))
        if not math.isfinite(value):
            return dict.fromkeys(METRICS, f"{name} not finite")
        scores[name] = value
    return scores


def summarize(per_utterance: list[dict], prefix: str) -> dict:
    """Mean and std over the scored utterances of each metric, with how many were left out and why."""
    metrics = {}
    for name, unit in METRICS.items():
        values = [s[name] for s in per_utterance if isinstance(s[name], float)]
        skipped = [s[name] for s in per_utterance if not isinstance(s[name], float)]
        metrics[f"{prefix}/{name}_mean"] = float(np.mean(values)) if values else None
        metrics[f"{prefix}/{name}_std"] = float(np.std(values)) if values else None
        metrics[f"{prefix}/{name}_utterances"] = len(values)
        metrics[f"{prefix}/{name}_skipped"] = len(skipped)
        if skipped:  # reason -> how many utterances it left out
            metrics[f"{prefix}/{name}_skipped_because"] = {why: skipped.count(why) for why in sorted(set(skipped))}
        metrics[f"{prefix}/{name}_unit"] = unit
    return metrics


@torch.no_grad()
def score_reconstructions(vrnn, loader, representation, sample_rate: int, prefix: str,
                          streams: EstimateStreams | None = None) -> dict:
    """Every utterance of `loader` (batches (x, mask, the audio of each utterance): SpeechDataModule's
    eval_dataloader(split, with_audio=True)) reconstructed, decoded by `representation` and scored
    against its audio (see the module's docstring); also the seconds the scoring took. The posterior
    samples come from the "reconstructions" stream of `streams` (seed 0 if None)."""
    require_cpu(vrnn)
    streams = streams if streams is not None else EstimateStreams()
    start, per_utterance = time.perf_counter(), []
    for x, mask, audio in progress(loader, f"reconstructing and scoring {prefix}", log):
        with streams.drawing("reconstructions"):
            reconstruction = vrnn.reconstruct(x, mask)
        for index in range(x.shape[0]):
            length = int(mask[index].sum())
            estimate = representation.decode(reconstruction[index, :length], audio[index])
            reference = audio[index][:len(estimate)]  # data.last_frame=drop: the audio its frames hold
            per_utterance.append(score_utterance(estimate, reference, sample_rate))
    return {**summarize(per_utterance, prefix), f"{prefix}/speech_quality_seconds": time.perf_counter() - start}
