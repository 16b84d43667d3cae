"""`evaluate(cfg)`: score a checkpoint on a split with ELBO, IWAE-k and FIVO-k bounds.

Units follow FIVO: nats per timestep = total bound over the split / total number of frames
(a ratio of sums), and nats per sequence = mean over utterances. Every frame of every utterance
is scored, the first one included and, with data.last_frame=pad, the zero-padded last one.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from avrnn import hydra_job, registry
from avrnn.data import files
from avrnn.training import denormals
from avrnn.training.checkpoints import CheckpointError, load_checkpoint, upgrade_data_and_model
from avrnn.config import MAX_PARTICLE_FRAMES, ConfigError, apply_num_threads, check_choices, emission_fits
from avrnn.data.datamodule import SpeechDataModule
from avrnn.data.errors import DataError
from avrnn.data import representations
from avrnn.evaluation.chunks import iwae_in_parts
from avrnn.evaluation.streams import EstimateStreams, require_cpu
from avrnn.data.progress import counted, progress
from avrnn.models.bounds import vrnn_fivo
from avrnn.models import phase_losses
from avrnn.training.module import AVRNNModule
from avrnn.training.run_folder import print_and_log
from avrnn.evaluation.settings import check_evaluate
from avrnn.evaluation.speech_quality import PESQ_MODES, score_reconstructions

log = logging.getLogger("avrnn.evaluation")


def load_module(path: Path, trusted_targets=()) -> AVRNNModule:
    """The trained module, from tensors and plain data only (no code runs while loading): the
    classes its config names are built from avrnn.registry, plus `trusted_targets` (the user's)."""
    registry.trust(trusted_targets)
    checkpoint = load_checkpoint(path)
    hyper = upgrade_data_and_model(checkpoint.get("hyper_parameters") or {})
    try:
        check_choices(hyper["model"], hyper["critic"])
    except (KeyError, TypeError, AttributeError) as error:
        raise CheckpointError(f"{path} holds no model and critic hyper-parameters of this project ({error!r}); "
                              "use a checkpoint written by src/train.py") from error
    except ConfigError as error:
        raise CheckpointError(f"{path} was not written by this version of the project: {error}") from error
    try:
        representation = representations.build(hyper.get("data") or {})
        if hyper.get("normalization") is not None:
            representation.use(hyper["normalization"], f"stored in the checkpoint {path}")
    except DataError as error:
        raise CheckpointError(str(error)) from error
    if (why := emission_fits(hyper["model"].get("emission", "gaussian"), hyper.get("data") or {})) is not None:
        log.warning("%s: %s; this checkpoint of an earlier version still evaluates, but its bounds are not bounds "
                    "on a likelihood of its features", path, why.split("; use ")[0])
    return AVRNNModule.from_checkpoint(checkpoint).eval()  # earlier versions' checkpoints upgraded there


# what the model reads, fixed when it was trained
MODEL_INPUT = ("representation", "sample_rate", "frame_size", "hop")
# how the corpus was split and framed: taken from the checkpoint unless given, so that a copy of the corpus
# scores the model's own test split (not a split of other settings holding training files)
SPLIT_SETTINGS = {"timit": ("last_frame", "val_fraction", "split_seed", "test_set", "val_split", "exclude_sa",
                            "split_lists"),
                  "folder": ("last_frame", "val_fraction", "test_fraction", "split_seed", "speaker_pattern",
                             "split_lists")}


def framing_value(data: dict, key: str):
    """data[key], where a hop of null is the frame size (non-overlapping frames) and no representation is
    waveform frames (data configs of earlier versions)."""
    value = data.get(key)
    if key == "representation":
        return representations.settings(data)
    return data.get("frame_size") if key == "hop" and value is None else value


def fit_to_model(data: dict, trained: dict, given: set[str] = frozenset()) -> dict:
    """The data config given at evaluation with the settings the model was trained on (MODEL_INPUT, from
    the checkpoint's data config): a corpus at another rate is then resampled to the model's. A setting
    of MODEL_INPUT given explicitly (`given`: the data.* keys on the command line) with another value is
    refused in one line naming the checkpoint's value. Where the layout is the checkpoint's, the SPLIT_SETTINGS
    that layout reads are the checkpoint's unless given (a copy of the corpus is split as the model's was)."""
    data, taken = dict(data), []
    for key in MODEL_INPUT:
        if key not in trained and key != "representation":  # a checkpoint of an earlier version (its representation:
            continue  # waveform frames, framing_value says which)
        if framing_value(data, key) == framing_value(trained, key):
            continue
        if key in given:
            raise ConfigError(f"data.{key}={data.get(key)} cannot differ from the checkpoint's data.{key}="
                              f"{trained[key]}: the model was trained on those frames; drop data.{key} (a corpus at "
                              "another sample rate is resampled to the model's)")
        taken.append(f"{key}={framing_value(trained, key)} (the data config given says {data.get(key)})")
        data[key] = framing_value(trained, key) if key == "representation" else trained[key]
    same_layout = data.get("layout") == trained.get("layout")  # another layout splits by other keys
    for key in SPLIT_SETTINGS.get(data.get("layout"), ()) if same_layout else ():
        if key in trained and key not in given and data.get(key) != trained[key]:
            taken.append(f"{key}={trained[key]} (the data config given says {data.get(key)})")
            data[key] = trained[key]
    if taken:
        log.info("data: as the model was trained: %s", ", ".join(taken))
    if "resample" not in given:  # the model reads only its own rate: a corpus at another is resampled to it
        data["resample"] = True
    return data


def given_data_keys() -> set[str]:
    """The data.* keys set on the command line of this Hydra run (none outside one)."""
    given = hydra_job.overrides()
    return data_keys(given) if given is not None else set()


def data_keys(overrides) -> set[str]:
    """The data.* keys that Hydra command-line overrides set, add (+, ++) or delete (~), read with Hydra's
    own override parser (quoted values may hold '=')."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    keys = [override.key_or_group for override in OverridesParser.create().parse_overrides(list(overrides))]
    # data.<key>, and data/<group>=... (data/representation=stft) for the node it fills; a key inside a node
    # (data.representation.window=hann) gives the node too: the node is then not the checkpoint's
    given = {key.removeprefix("data/").split(".")[0] for key in keys if key.startswith("data/")}
    for key in (key.removeprefix("data.") for key in keys if key.startswith("data.")):
        given |= {key, key.split(".")[0]}
    return given


def build_eval_data(module: AVRNNModule, data_override, split: str, batch_size: int) -> SpeechDataModule:
    """The split to score: the checkpoint's corpus, or `data_override` (data=... data.root=...) read
    with the settings the model was trained on (fit_to_model), in the checkpoint's statistics."""
    trained = dict(module.hparams.data or {})
    data = trained
    if data_override is not None:
        data = fit_to_model(OmegaConf.to_container(data_override, resolve=True), trained, given_data_keys())
    if not data:
        raise ConfigError("this checkpoint stores no data config; add data=<config> data.root=...")
    data.update(eval_batch_size=batch_size)
    datamodule = SpeechDataModule(data, rate_fixed_by="the checkpoint")
    datamodule.prepare_data()
    datamodule.setup()
    if split not in datamodule.frames:
        raise ConfigError(f"split={split!r} is not allowed; choose train, val or test")
    datamodule.use_statistics(module.hparams.normalization, "of the checkpoint")  # the statistics training used
    return datamodule


@torch.no_grad()
def score(module: AVRNNModule, loader, iwae_k: list[int], fivo_k: list[int], prefix: str,
          max_particle_frames: int = MAX_PARTICLE_FRAMES, streams: EstimateStreams | None = None) -> dict:
    """The bounds (ELBO and its terms, IWAE-k, FIVO-k, the critic's distance) and latent use of every
    utterance of `loader`, in nats per timestep and per sequence; IWAE-k within max_particle_frames
    (avrnn.evaluation.chunks). Each estimate draws from its own stream of `streams` (seed 0 if None), so
    none depends on which others are asked for."""
    require_cpu(module)
    streams = streams if streams is not None else EstimateStreams()
    totals: dict[str, float] = {}
    frames = sequences = 0
    latent = LatentUse()

    def add(name: str, per_sequence: torch.Tensor) -> None:
        totals[name] = totals.get(name, 0.0) + float(per_sequence.sum())

    for x, mask in progress(loader, f"scoring {prefix}", log):
        with streams.drawing("elbo"):  # its terms, the critic's distance and latent use read these draws
            out = module.vrnn(x, mask, prior_samples=module.critic is not None)
        rec = out.rec_log_lik.sum(1)
        kl = out.kl.sum((1, 2))
        add("rec", -rec)
        add("kl", kl)
        add("elbo", rec - kl)
        for k in iwae_k:
            with streams.drawing(f"iwae_{k}"):
                add(f"iwae_{k}", iwae_in_parts(module.vrnn, x, mask, k, max_particle_frames))
        for k in fivo_k:
            with streams.drawing(f"fivo_{k}"):
                add(f"fivo_{k}", vrnn_fivo(module.vrnn, x, mask, k))
        if module.critic is not None:
            name, distance = phase_losses.critic_distance(out, module.critic, module.objective)
            add(name, distance.expand(x.shape[0]))
        latent.add(out)
        frames += int(mask.sum())
        sequences += x.shape[0]
    representation = module.representation
    metrics = {f"{prefix}/frames": frames, f"{prefix}/sequences": sequences}
    for name, total in totals.items():
        if module.critic is not None and name == module.objective.distance_name:  # not a bound: per sequence only
            metrics[f"{prefix}/{name}"] = total / sequences
            metrics[f"{prefix}/critic_distance"] = {"name": name, "unit": module.objective.distance_unit}
            continue
        metrics[f"{prefix}/{name}_per_timestep"] = total / frames
        metrics[f"{prefix}/{name}_per_sequence"] = total / sequences
        bits = representation.bits_per_sample(total / frames) if representation is not None else None
        if name not in ("rec", "kl") and bits is not None:  # a bound on log p(x): also as bits per audio sample
            metrics[f"{prefix}/{name}_bits_per_sample"] = bits
    if representation is not None:  # what the bounds bound, and the change of variables to unnormalised units
        metrics[f"{prefix}/bounds_are_on"] = representation.bound_on
        metrics[f"{prefix}/log_jacobian"] = representation.log_jacobian_per_timestep()
    return {**metrics, **latent.metrics(prefix)}


def print_speech_quality(metrics: dict, split: str, sample_rate: int) -> None:
    """The reconstructions' SI-SDR, PESQ and ESTOI as mean +/- std over utterances, with units. The
    utterances left out of every measure (too short, silent, one measure cannot score them: see
    avrnn.evaluation.speech_quality) are counted once, with their reasons, above the measures; a measure's
    own gaps (PESQ at a rate it does not support) on its line."""
    names = {"si_sdr": "SI-SDR", "pesq": f"PESQ ({PESQ_MODES.get(sample_rate, '-')})", "estoi": "ESTOI"}
    print(f"reconstruction quality (teacher-forced, {sample_rate} Hz; reconstructions, not prior samples):")
    if f"{split}/reconstructions_rebuilt_from" in metrics:
        print(f"  audio rebuilt from {metrics[f'{split}/reconstructions_rebuilt_from']}, scored against the original")
    reasons = {key: metrics.get(f"{split}/{key}_skipped_because") or {} for key in names}
    every = {why: n for why, n in reasons["si_sdr"].items() if all(reasons[key].get(why) == n for key in names)}
    total = metrics[f"{split}/si_sdr_utterances"] + metrics[f"{split}/si_sdr_skipped"]
    left_out = sum(every.values())
    print(f"  scored on {total - left_out} of {counted(total, 'utterance')}; {left_out} left out of every measure: "
          + _listing(every, count_first=True) if left_out else f"  scored on {counted(total, 'utterance')}")
    for key, name in names.items():
        mean, count = metrics[f"{split}/{key}_mean"], metrics[f"{split}/{key}_utterances"]
        own = {why: n for why, n in reasons[key].items() if why not in every}
        why = f"; {sum(own.values())} not scored: {_listing(own)}" if own else ""
        over = "" if count == total - left_out else f" over {counted(count, 'utterance')}"
        value = ("not computed" + ("" if own or left_out else " (no utterances to score)")) if mean is None else \
            f"{mean:.3f} +/- {metrics[f'{split}/{key}_std']:.3f} {metrics[f'{split}/{key}_unit']}{over}"
        if key == "pesq" and sample_rate not in PESQ_MODES and not own:  # every utterance was left out anyway
            value = f"not computed at {sample_rate} Hz (PESQ needs 8 or 16 kHz audio)"
        print(f"  {name:<12}{value}{why}")
    print(f"  scored in {metrics[f'{split}/speech_quality_seconds']:.1f} s")


def _listing(reasons: dict[str, int], count_first: bool = False) -> str:
    """Each reason with how many utterances it left out, most first: 'shorter than 0.25 s (13)', or with
    count_first '61 unscorable by ESTOI (under 0.4 s of non-silent speech), 13 shorter than 0.25 s' (the
    utterances left out of every measure, whose reasons each read after a count)."""
    ordered = sorted(reasons.items(), key=lambda item: -item[1])
    return ", ".join(f"{n} {reason}" if count_first else f"{reason} ({n})" for reason, n in ordered)


class LatentUse:
    """Which latent dimensions the model uses, over all unmasked frames: the KL of each dimension in
    nats per timestep, and the active units (Burda et al. 2016): dimensions whose posterior mean
    varies over the frames by more than ACTIVE_VARIANCE."""

    ACTIVE_VARIANCE = 0.01

    def __init__(self):
        self.frames, self.kl, self.mean, self.square = 0, 0.0, 0.0, 0.0

    def add(self, out) -> None:
        mask = out.mask.unsqueeze(-1)
        self.frames += float(out.mask.sum())
        self.kl = self.kl + out.kl.sum((0, 1)).double()  # zero at padded steps already
        loc = out.posterior.loc.double() * mask
        self.mean, self.square = self.mean + loc.sum((0, 1)), self.square + loc.pow(2).sum((0, 1))

    def metrics(self, prefix: str) -> dict:
        mean = self.mean / self.frames
        variance = (self.square / self.frames - mean.pow(2)).clamp(min=0)
        return {f"{prefix}/kl_by_dimension": (self.kl / self.frames).tolist(),
                f"{prefix}/posterior_mean_variance_by_dimension": variance.tolist(),
                f"{prefix}/active_units": int((variance > self.ACTIVE_VARIANCE).sum())}


FRAMES_SCORED = "all frames of each utterance, including the first and a zero-padded last frame"
UNITS = ("*_per_timestep: nats per timestep (the total over the split / its frames); *_per_sequence: nats per "
         "sequence (the mean over utterances); *_bits_per_sample (waveform only): minus the bound in bits per audio "
         "sample of the z-scored waveform, -(nats per timestep) / (samples per timestep) / ln 2, lower is better "
         "(a density's, so it can be below 0); frames: the timesteps scored; sequences: the utterances scored; "
         "log_jacobian: nats per timestep to add to a bound for the bound on the unnormalised features "
         "(bounds_are_on says what they are); critic_distance: the name and unit of the critic's distance estimate "
         "(its value is <split>/<name>, a mean per sequence, not a bound); kl_by_dimension: nats per timestep per "
         "latent dimension; posterior_mean_variance_by_dimension: the variance over frames of each dimension's "
         "posterior mean (latent units squared); active_units: dimensions whose posterior mean varies over frames "
         f"by more than {LatentUse.ACTIVE_VARIANCE}; <measure>_mean, <measure>_std: a speech-quality measure of the "
         "reconstructions (si_sdr, pesq, estoi) over utterances, in <measure>_unit; <measure>_utterances, "
         "<measure>_skipped: the utterances it scored and those it left out; speech_quality_seconds: wall seconds "
         "spent reconstructing, decoding and scoring them")


def evaluate(cfg: DictConfig) -> dict:
    """Score cfg.ckpt_path on cfg.split (conf/evaluate.yaml; its values checked first, before the
    checkpoint is read): the bounds, latent use and (cfg.speech_quality) the reconstructions' quality,
    written to <output_dir>/metrics.json and printed. Returns the metrics."""
    check_evaluate(cfg)
    apply_num_threads(cfg.num_threads)
    denormals.apply(cfg.flush_denormal)
    torch.manual_seed(cfg.seed)
    streams = EstimateStreams(cfg.seed)
    module = load_module(Path(cfg.ckpt_path).expanduser(), cfg.trusted_targets)
    datamodule = build_eval_data(module, cfg.data, cfg.split, cfg.batch_size)
    loader = datamodule.eval_dataloader(cfg.split)
    try:
        metrics = score(module, loader, list(cfg.iwae_k), list(cfg.fivo_k), cfg.split, cfg.max_particle_frames,
                        streams)
    except (torch.OutOfMemoryError, RuntimeError) as error:
        if not out_of_memory(error):
            raise
        raise ConfigError(f"evaluation ran out of memory ({' '.join(str(error).split())}); lower "
                          f"max_particle_frames (now {cfg.max_particle_frames:,}: particles x utterances x frames "
                          f"scored at once) or batch_size (now {cfg.batch_size}); nothing was written") from error
    sample_rate = int(datamodule.options.sample_rate)
    if cfg.speech_quality:
        metrics.update(score_reconstructions(module.vrnn, datamodule.eval_dataloader(cfg.split, with_audio=True),
                                             datamodule.representation, sample_rate, cfg.split, streams))
        metrics[f"{cfg.split}/reconstructions_rebuilt_from"] = datamodule.representation.decoded_how(True)
    # the frames this evaluation's data scored (data=... may change data.last_frame), in words
    frames_scored = datamodule.representation.frames_scored if datamodule.representation is not None else FRAMES_SCORED
    metrics.update(frames_scored=frames_scored, units=UNITS, checkpoint=str(cfg.ckpt_path),
                   checkpoint_iteration=module.iteration)
    written = Path(cfg.output_dir) / "metrics.json"
    files.write_text(written, json.dumps(metrics, indent=2))
    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        print_report(metrics, cfg.split, sample_rate if cfg.speech_quality else None, written)
    print_and_log(report.getvalue().rstrip("\n"))
    return metrics


def out_of_memory(error: BaseException) -> bool:
    """Whether an error is an allocator's refusal (CUDA's OutOfMemoryError, or the CPU allocator's)."""
    return isinstance(error, torch.OutOfMemoryError) or "can't allocate memory" in str(error) \
        or "out of memory" in str(error).lower()


def print_report(metrics: dict, split: str, sample_rate: int | None, written: Path) -> None:
    """The table of bounds (nats per timestep and per sequence), the reconstructions' quality (where
    `sample_rate` is given: it was scored), latent use, and what was scored and written."""
    print(f"{'bound':<16}{'nats/timestep':>15}{'nats/sequence':>15}")
    for key, value in metrics.items():
        if key.startswith(f"{split}/") and key.endswith("_per_timestep"):
            name = key.removeprefix(f"{split}/").removesuffix("_per_timestep")
            print(f"{name:<16}{value:>15.3f}{metrics[f'{split}/{name}_per_sequence']:>15.2f}")
    if f"{split}/bounds_are_on" in metrics:
        print(f"bounds on {metrics[f'{split}/bounds_are_on']} (log-Jacobian to unnormalised units: "
              f"{metrics[f'{split}/log_jacobian']:+.3f} nats/timestep)")
    distance = metrics.get(f"{split}/critic_distance")  # a model with a critic: its estimate, as training logs it
    if distance is not None:
        name, unit = distance["name"], distance["unit"]
        print(f"critic's {name} estimate, prior against posterior latent sequences: {metrics[f'{split}/{name}']:.4g} "
              f"({unit})")
    if sample_rate is not None:
        print_speech_quality(metrics, split, sample_rate)
    kl_by_dimension = metrics[f"{split}/kl_by_dimension"]
    print(f"latent use: {metrics[f'{split}/active_units']} of {len(kl_by_dimension)} dimensions active; KL per "
          f"dimension {min(kl_by_dimension):.3f} to {max(kl_by_dimension):.3f} nats/timestep")
    print(f"{counted(metrics[f'{split}/sequences'], 'utterance')}, {metrics[f'{split}/frames']} frames ({metrics['frames_scored']}) "
          f"scored with {metrics['checkpoint']} (iteration {metrics['checkpoint_iteration']}); wrote {written}")
