"""Typed schemas of the Hydra configuration (conf/ holds the YAML groups that fill them).

A typo in a key or a value of the wrong type fails when Hydra composes the config; `validate`
then checks what types cannot express (allowed names, positive sizes, sensible combinations)
and raises ConfigError with one line that names the key and the allowed values.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Optional

import hashlib
import os
from pathlib import Path

import torch
from hydra.core.config_store import ConfigStore
from omegaconf import II, MISSING, OmegaConf

from avrnn.data.options import DataOptions
from avrnn.data.progress import counted
from avrnn.models.critic import READOUTS
from avrnn.models.vrnn import ModelConfigError, VRNNConfig
from avrnn.training.optimizers import OPTIMIZERS
from avrnn.training.precision import default_precision

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"  # the project's config folder (src/avrnn/config.py -> conf/)


class ConfigError(ValueError):
    """A configuration value or combination that cannot work; the message says what to use."""


@dataclass
class OptimizerConfig:
    name: str = "adam"  # adam | rmsprop | sgd (a label when _target_ is set)
    # your own optimizer class instead (e.g. torch.optim.AdamW), built as Hydra's _partial_: with the keys
    # below that its signature takes, then the parameters
    _target_: Optional[str] = None
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adam
    alpha: float = 0.99  # rmsprop smoothing
    eps: float = 1e-8  # adam/rmsprop denominator term; larger values damp steps from tiny gradients
    weight_decay: float = 0.0


@dataclass
class _TrainingMode:
    name: str = "avrnn"  # avrnn (adversarial, Algorithms 1-2) | vrnn (KL-only ELBO baseline)


@dataclass
class ModelConfig(VRNNConfig, _TrainingMode):  # keys in this order: name, the architecture, the rest
    """The `model` node: the training mode (name), the VRNN's architecture (the fields of VRNNConfig,
    avrnn.models.vrnn, defined and checked there) and its optimizers."""

    # features per timestep: the data representation's (waveform: data.frame_size; stft: data.frame_size // 2 + 1)
    input_size: int = II("avrnn_input_size:${data.representation.name},${data.frame_size}")
    # reconstruction phase (avrnn) or the whole negative ELBO (vrnn)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    # adversarial phase: omega (TR) and tau (PS)
    adversarial_optimizer: OptimizerConfig = field(
        default_factory=lambda: OptimizerConfig(name="rmsprop", lr=1e-3)
    )
    kl_warmup_iterations: int = 0  # vrnn: KL weight rises linearly from 0 to 1 over this many iterations
    free_bits: float = 0.0  # vrnn: KL floor in nats per timestep, spread evenly over latent dims


def _critic_networks() -> dict:
    """critic.input -> the critic network that reads it (avrnn.models.critic), sized by the keys
    beside critic.networks in critic.*; a user's own: add critic.networks.<name>={_target_: ...}."""
    return {
        "sequence": {"_target_": "avrnn.models.critic.SequenceCritic", "lstm_size": "${...lstm_size}",
                     "fc_size": "${...fc_size}", "readout": "${...readout}"},
        "conditional": {"_target_": "avrnn.models.critic.ConditionalCritic", "fc_size": "${...fc_size}"},
    }


@dataclass
class CriticConfig:
    name: str = "wgan"  # wgan | wgan_gp | gan | none
    # {_target_: class, **kwargs}: what the critic and the adversarial step minimise (avrnn.models.objectives;
    # conf/critic/*.yaml set it; null = no critic, model=vrnn)
    objective: Optional[Any] = None  # filled by conf/critic/<name>.yaml (a schema default would merge into it)
    input: str = "sequence"  # what the critic reads: sequence (the paper's) | conditional (z_t given h_{t-1})
    networks: Any = field(default_factory=_critic_networks)  # input -> {_target_: critic class, **kwargs}
    lstm_size: int = 128
    fc_size: int = 100
    readout: str = "last"  # last | mean
    n_critic: int = 1  # critic steps per iteration, each on its own batch
    clip_value: Optional[float] = 0.1  # wgan weight clipping [-c, c]
    gp_weight: float = 0.0  # wgan_gp gradient-penalty weight
    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(name="rmsprop", lr=5e-4))


@dataclass
class AblationConfig:
    name: str = "none"  # none | posterior_only | hybrid
    adversarial_trains_prior: bool = True  # false: the adversarial phase updates PS only (posterior_only)
    kl_weight: float = 0.0  # KL term's weight in the reconstruction phase, which then trains TR too (hybrid: 1)
    adversarial_phases: bool = True  # false: no critic and no adversarial step (hybrid without them = the VRNN)


@dataclass
class TrainingConfig:
    max_iterations: Optional[int] = 600  # A-VRNN iterations (all phases); null: trainer limits only
    iterations_per_epoch: int = 100  # iterations between validations
    fresh_batch_per_phase: bool = True  # Algorithms 1-2 sample a new batch for every phase
    grad_clip_norm: Optional[float] = 10.0  # per-phase gradient-norm clipping (null: off)
    max_bad_steps: int = 20  # stop after this many non-finite steps in a row (each one is skipped)
    validate_before_training: bool = True  # log the untrained model's validation bound at step 0
    checkpoint_every_iterations: Optional[int] = None  # also refresh last.ckpt every N iterations
    checkpoint_every_minutes: Optional[float] = None  # ... and every N minutes of training
    # where stdout is not a terminal (SLURM, nohup, a redirected log): a progress line at most every N seconds
    # (and one per validation) instead of the bar, to stdout and train.log; null: none
    log_every_seconds: Optional[float] = 30.0
    test_after_training: bool = True  # score the best checkpoint on the test split -> <run>/metrics.json
    figures: bool = True  # at the end: the paper's Fig. 2 / Fig. 3 and the KL curve (<run>/plots/, TensorBoard)
    audio_every_n_epochs: int = 1  # TensorBoard: prior samples as audio after every Nth validation (0: off)
    audio_seconds: float = 2.0
    # replay each phase's forward+backward as a CUDA graph (docs/performance.md): null = wherever it
    # works (one CUDA device, no fp16 gradient scaler), true = also say why where it cannot, false = never
    cuda_graphs: Optional[bool] = None


@dataclass
class DataConfig(DataOptions):
    """The `data` node: DataOptions (avrnn.data.options) with the root required and the cache
    folder taken from paths."""
    name: str = "synthetic"
    root: str = MISSING
    cache_dir: Optional[str] = II("paths.cache_dir")  # null: no cache


@dataclass
class PathsConfig:
    data_dir: str = "data"
    cache_dir: str = "${paths.data_dir}/cache"
    log_dir: str = "logs"
    output_dir: Optional[str] = II("hydra:runtime.output_dir")  # null only outside a Hydra run (--cfg)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    ablation: AblationConfig = field(default_factory=AblationConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    trainer: dict[str, Any] = field(default_factory=dict)  # keyword arguments of pl.Trainer
    seed: int = 1234
    num_threads: Optional[int] = None  # torch CPU threads per run (null: torch's default, all cores)
    # flush denormal floats to zero on every computing thread (avrnn.training.denormals; README "Speed"); false: IEEE
    flush_denormal: bool = True
    ckpt_path: Optional[str] = None  # resume: a .ckpt path, or `last` (= <hydra.run.dir>/checkpoints/last.ckpt)


# --- src/evaluate.py and src/generate.py (conf/evaluate.yaml, conf/generate.yaml; checks: avrnn.evaluation.settings)
# IWAE-k's teacher-forced pass keeps every step of particles x utterances (avrnn.evaluation.chunks): about
# 15 KB per particle-frame at the default model size, so about 4 GB at this many
MAX_PARTICLE_FRAMES = 250_000


@dataclass
class EvalPathsConfig:  # used by data=... configs
    data_dir: str = "data"
    cache_dir: str = "${paths.data_dir}/cache"


@dataclass
class _Scored:
    ckpt_path: str = MISSING
    seed: int = 0
    num_threads: Optional[int] = None  # torch CPU threads (null: all cores)
    flush_denormal: bool = True
    trusted_targets: list[str] = field(default_factory=list)  # classes of your own a checkpoint names
    output_dir: str = II("hydra:runtime.output_dir")
    paths: EvalPathsConfig = field(default_factory=EvalPathsConfig)
    data: Optional[DataConfig] = None  # data=<group> data.root=...: another corpus


@dataclass
class EvaluateConfig(_Scored):
    split: str = "test"
    iwae_k: list[int] = field(default_factory=lambda: [16, 64])  # IWAE-k bounds, k particles each
    fivo_k: list[int] = field(default_factory=lambda: [16, 64])  # FIVO-k bounds
    batch_size: int = 8
    # particles x utterances x frames that IWAE-k scores at once; a batch above it is scored in parts
    max_particle_frames: int = MAX_PARTICLE_FRAMES
    speech_quality: bool = True


@dataclass
class GenerateConfig(_Scored):
    n: int = 8  # samples from the prior
    seconds: float = 3.0  # length of each sample
    reconstructions: int = 4  # test utterances written as original + reconstruction (0: none)
    # Griffin-Lim iterations that give prior samples of a spectrogram model their phase (null: the checkpoint's
    # data.representation.griffin_lim_iterations); a waveform model has no phase to estimate
    griffin_lim_iterations: Optional[int] = None


def _optimizer_nodes(node: type, prefix: str = "") -> tuple[str, ...]:
    """The dotted paths of the schema's optimizer nodes (fields typed OptimizerConfig), in schema order."""
    hints, found = typing.get_type_hints(node), []
    for item in dataclasses.fields(node):
        kind = hints[item.name]
        if kind is OptimizerConfig:
            found.append(f"{prefix}{item.name}")
        elif dataclasses.is_dataclass(kind):
            found += _optimizer_nodes(kind, f"{prefix}{item.name}.")
    return tuple(found)


OPTIMIZER_NODES = _optimizer_nodes(Config)  # model.optimizer, model.adversarial_optimizer, critic.optimizer


def short_dirname(overrides: str, limit: int = 100) -> str:
    """A run's overrides as a folder name: no '/', and at most `limit` characters (a hash of the
    whole string keeps long ones unique; .hydra/overrides.yaml in the run folder has them all)."""
    name = overrides.replace("/", "_") or "defaults"
    if len(name) <= limit:
        return name
    return f"{name[:limit - 9]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def input_size(representation: str, frame_size: int) -> int:
    """Features per timestep of data.representation at data.frame_size (an unknown name: the frame size,
    and validate names the name)."""
    from avrnn.data.representations import REPRESENTATIONS

    cls = REPRESENTATIONS.get(representation)
    return cls.features_at(int(frame_size)) if cls is not None else int(frame_size)


def register_configs() -> None:
    """The schemas (training's, evaluate's and generate's), the `avrnn_dirname` resolver of hydra.sweep.subdir (conf/config.yaml),
    `avrnn_input_size` of model.input_size and the `avrnn_default_precision` resolver of conf/trainer/gpu.yaml."""
    ConfigStore.instance().store(name="config_schema", node=Config)
    ConfigStore.instance().store(name="evaluate_schema", node=EvaluateConfig)
    ConfigStore.instance().store(name="generate_schema", node=GenerateConfig)
    if not OmegaConf.has_resolver("avrnn_dirname"):
        OmegaConf.register_new_resolver("avrnn_dirname", short_dirname)
    if not OmegaConf.has_resolver("avrnn_input_size"):  # model.input_size: the representation's feature size
        OmegaConf.register_new_resolver("avrnn_input_size", input_size)
    if not OmegaConf.has_resolver("avrnn_default_precision"):  # trainer/gpu.yaml: bf16 on a GPU, fp32 on a CPU
        OmegaConf.register_new_resolver("avrnn_default_precision", default_precision)


MODELS = ("avrnn", "vrnn")
ABLATIONS = ("none", "posterior_only", "hybrid")
UNSUPPORTED_TRAINER_KEYS = {
    "gradient_clip_val": "use training.grad_clip_norm (per-phase clipping)",
    "accumulate_grad_batches": "raise data.batch_size instead",
}


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; choose one of {', '.join(allowed)}")


def _positive(key: str, value) -> None:
    if value is None or value <= 0:
        raise ConfigError(f"{key} must be positive, got {value}")


def check_num_threads(num_threads) -> None:
    """`num_threads` of train, evaluate and generate: null (torch's default, all cores) or a positive
    integer. Raises ConfigError (evaluate's and generate's configs have no schema to type it)."""
    if num_threads is None:
        return
    if isinstance(num_threads, bool) or not isinstance(num_threads, int):
        raise ConfigError(f"num_threads must be a positive integer (or null: all cores), got {num_threads!r}")
    _positive("num_threads", num_threads)


def apply_num_threads(num_threads) -> None:
    """Checks `num_threads` (check_num_threads) and sets torch's CPU threads for this process to it;
    null leaves torch's default (all cores). 1 or 2 beside other jobs: where other processes already
    keep the cores busy, one warning line says so (thread_contention)."""
    import logging

    from avrnn.data.progress import is_rank_zero

    check_num_threads(num_threads)
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        load, cores = os.getloadavg()[0], len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no load average here (e.g. Windows): nothing to say
        return
    line = thread_contention(torch.get_num_threads(), cores, load)
    if line and is_rank_zero():
        logging.getLogger("avrnn.threads").warning(line)


def thread_contention(threads: int, cores: int, load: float) -> str | None:
    """The warning where `threads` torch threads would share `cores` with other processes that keep `load`
    of them busy (the 1-minute load average, taken before this process computes anything), else None. A
    thread that waits for a core makes the others wait at every parallel step: a fresh-user trial measured
    30 A-VRNN iterations in 198 s on both cores of a machine with 2 other jobs, 16 s with num_threads=1."""
    idle = cores - load + 1  # + 1: this process's own start (its imports) is in the load average already
    if threads < 2 or threads <= idle:
        return None
    return (f"this machine is busy (load average {load:.1f} on {counted(cores, 'core')}) and torch computes on "
            f"{counted(threads, 'thread')}: threads that wait for cores other processes hold run several times slower "
            f"(12x measured on 2 busy cores); set num_threads={max(1, int(idle))} (through make: "
            f"ARGS='num_threads={max(1, int(idle))}')")


def check_choices(model, critic) -> None:
    """The names that pick the model's components (VRNNConfig.check_choices), a critic or an
    optimizer, checked here only (the classes trust them): by validate, and on a checkpoint's
    hyper-parameters before anything is built from them (keys that a checkpoint of an earlier version
    lacks are skipped; their defaults are allowed)."""
    try:
        VRNNConfig.from_dict(model).check_choices()
    except ModelConfigError as error:
        raise ConfigError(str(error)) from None
    for path in OPTIMIZER_NODES:
        owner, key = path.split(".")
        node = (model if owner == "model" else critic).get(key)
        if node is not None and not node.get("_target_"):
            _choice(f"{path}.name", node["name"], tuple(OPTIMIZERS))
    if "readout" in critic:
        _choice("critic.readout", critic["readout"], READOUTS)
    if "networks" in critic:
        _choice("critic.input", critic["input"], tuple(critic["networks"]))


def emission_fits(emission: str, data) -> str | None:
    """Why model.emission is no likelihood of data.representation's features (None where it is one): its
    density must be defined on every value the features take (avrnn.models.emissions, Support)."""
    from avrnn.data import representations
    from avrnn.models.emissions import EMISSIONS

    _, support = EMISSIONS[emission]
    representation = representations.REPRESENTATIONS[representations.settings(data)["name"]]
    low, high = representation.value_range
    if support.holds(low, high):
        return None
    takes = [name for name, (_, other) in EMISSIONS.items() if other.holds(low, high)]
    return (f"model.emission={emission} is a density of {support.words}, and the {representation.name} "
            f"representation's features take values in [{low:g}, {high:g}]; use model.emission="
            f"{' or '.join(takes)}")


def check_synthetic_root(cfg, overrides: list[str] | None) -> None:
    """ConfigError where the command line (`overrides`, Hydra's; None outside Hydra: nothing to check) sets
    data.root to a folder that does not exist but chooses no data config: the default, data=synthetic,
    would generate its built-in corpus there and train on it, where the user most likely meant their own
    audio (a mistyped path, or data=audio_dir forgotten). data=synthetic given explicitly generates it."""
    if overrides is None or cfg.data.get("name") != "synthetic":
        return
    from hydra.core.override_parser.overrides_parser import OverridesParser

    keys = {override.key_or_group for override in OverridesParser.create().parse_overrides(list(overrides))}
    root = cfg.data.root
    if "data.root" in keys and "data" not in keys and not os.path.exists(root):
        raise ConfigError(f"data.root={root} does not exist, and without a data config the default data=synthetic "
                          "would generate its built-in corpus there: for your own audio add data=audio_dir (any "
                          "folder of audio) or data=timit and check the path; to generate the built-in corpus there, "
                          "add data=synthetic")


def validate(cfg) -> None:
    """Check names, sizes and combinations; raise ConfigError with a one-line fix."""
    model, critic, ablation = cfg.model, cfg.critic, cfg.ablation
    if OmegaConf.is_missing(cfg.data, "root"):
        raise ConfigError(f"data={cfg.data.name} needs its location: add data.root=/path/to/your/corpus")
    _choice("model.name", model.name, MODELS)
    _choice("ablation.name", ablation.name, ABLATIONS)
    # the allowed values are defined once, beside what they select (avrnn.models, avrnn.training.optimizers)
    check_choices(model, critic)
    for path in OPTIMIZER_NODES:
        _positive(f"{path}.lr", OmegaConf.select(cfg, path).lr)
    try:
        VRNNConfig.from_dict(model).check_sizes().check_widths()
    except ModelConfigError as error:
        raise ConfigError(str(error)) from None
    data = DataOptions.from_dict(OmegaConf.to_container(cfg.data, resolve=True)).check()  # raises DataError
    if (data.representation or {}).get("earlier_version_overlap"):
        raise ConfigError("data.representation.earlier_version_overlap marks checkpoints of earlier versions (they "
                          "evaluate); new runs cannot train on overlapping waveform frames: drop it, set data.hop=null, "
                          "or use data/representation=stft")
    if (why := emission_fits(model.emission, OmegaConf.to_container(cfg.data, resolve=True))) is not None:
        raise ConfigError(why)
    for key in ("lstm_size", "fc_size", "n_critic"):
        _positive(f"critic.{key}", critic[key])
    _positive("training.iterations_per_epoch", cfg.training.iterations_per_epoch)
    _positive("training.max_bad_steps", cfg.training.max_bad_steps)
    for key in ("max_iterations", "checkpoint_every_iterations", "checkpoint_every_minutes", "log_every_seconds"):
        if cfg.training[key] is not None:
            _positive(f"training.{key}", cfg.training[key])
    # critic.name is a label (a user's own conf/critic/<name>.yaml is allowed); no critic = no objective
    if model.name == "vrnn" and critic.objective is not None:
        raise ConfigError(f"model=vrnn is the KL-only ELBO baseline and has no critic, but critic={critic.name}; "
                          "use critic=none, or model=avrnn for adversarial training")
    if model.name == "vrnn" and ablation.name != "none":
        raise ConfigError(f"ablation={ablation.name} changes the adversarial training of model=avrnn; "
                          "use ablation=none with model=vrnn")
    if model.name == "vrnn" and (critic.input != "sequence" or model.prior_path != "shared"):
        raise ConfigError(f"critic.input={critic.input} and model.prior_path={model.prior_path} shape what the critic of "
                          "model=avrnn reads, and model=vrnn has no critic; leave them at sequence and shared, or use "
                          "model=avrnn")
    if model.name == "avrnn" and critic.objective is None:
        raise ConfigError("model=avrnn needs a critic to train its prior (TR); choose critic=wgan, wgan_gp or gan, "
                          "or use model=vrnn for the KL-only baseline")
    if model.name == "avrnn" and not ablation.kl_weight and (model.kl_warmup_iterations or model.free_bits):
        raise ConfigError(f"model.kl_warmup_iterations={model.kl_warmup_iterations} and model.free_bits={model.free_bits} "
                          "shape a KL term of the loss, and this A-VRNN trains on none (ablation.kl_weight=0: its KL "
                          "is only logged); set model.kl_warmup_iterations=0 model.free_bits=0 (an experiment such as "
                          "dvae_vrnn sets a warm-up), or use ablation=hybrid or model=vrnn")
    if critic.name == "wgan":
        _positive("critic.clip_value (weight clipping of critic=wgan)", critic.clip_value)
    if critic.name == "wgan_gp":
        _positive("critic.gp_weight (gradient penalty of critic=wgan_gp)", critic.gp_weight)
    if ablation.kl_weight < 0:
        raise ConfigError(f"ablation.kl_weight must be 0 or more, got {ablation.kl_weight}")
    check_num_threads(cfg.num_threads)
    if cfg.trainer.get("use_distributed_sampler"):
        raise ConfigError("trainer.use_distributed_sampler must stay false: the data module shards batches over DDP "
                          "processes itself (a pure function of seed, epoch and rank); remove the override")
    for key, fix in UNSUPPORTED_TRAINER_KEYS.items():
        value = cfg.trainer.get(key)
        harmless = value is None if key == "gradient_clip_val" else value in (None, 1)
        if not harmless:
            raise ConfigError(f"trainer.{key}={value} is not supported with manual optimization; {fix}")
