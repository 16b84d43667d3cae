"""Finding and safely loading checkpoints.

Checkpoints may come from other people, so they are read with torch.load(weights_only=True):
tensors and plain containers only. One that holds any other pickled object (which could run
code while being unpickled) is refused before Lightning sees it.
"""

from __future__ import annotations

import io
import pickle
import re
import zipfile
from pathlib import Path

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from avrnn.data import files


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or unsafe; the message says what to do."""


def load_checkpoint(path: Path) -> dict:
    path = Path(path)
    if path.is_dir():  # a run folder (or its checkpoints/ folder) instead of a file in it
        inside = sorted(path.glob("*.ckpt")) or sorted(path.glob("checkpoints/*.ckpt"))
        example = next((p for p in inside if p.name == "last.ckpt"), inside[0] if inside else None)
        raise CheckpointError(f"ckpt_path={path} is a folder, not a checkpoint file; "
                              + (f"give one of its checkpoints, e.g. ckpt_path={example}" if example else
                                 "it holds no *.ckpt (a run's checkpoints are in <run folder>/checkpoints/)"))
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; check ckpt_path")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"refusing to load {path}: it holds pickled objects other than tensors and plain "
                              f"data, which could run code ({first_line[:120]}); use a checkpoint written by this "
                              "project or from a source you trust") from error
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({type(error).__name__}); "
                              "resume from another checkpoint, e.g. a best-*.ckpt beside it") from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a Lightning checkpoint of this project (no state_dict)")
    return checkpoint


def describe_kept(target: Path) -> str:
    """After a failed checkpoint write: every checkpoint in its folder, each read back now, e.g. 'kept, each
    read back whole: best-iter000002.ckpt (iteration 2), last.ckpt (iteration 2)'; one that does not read
    back is named as such."""
    found = []
    for path in sorted(Path(target).parent.glob("*.ckpt")):
        try:
            found.append(f"{path.name} (iteration {load_checkpoint(path).get('avrnn_iteration', '?')})")
        except CheckpointError as error:
            found.append(f"{path.name} (NOT readable: {error})")
    return f"kept, each read back whole: {', '.join(found)}" if found else "no checkpoint was there before"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, writing beside the target (avrnn.data.files.atomic_file): a full disk or a
    kill mid-write leaves every earlier checkpoint as it was, never a torn last.ckpt or best-*.ckpt."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        serialized = io.BytesIO()  # serialise first (as Lightning does): a failing write is then an OSError
        torch.save(checkpoint, serialized)
        with files.atomic_file(path, kept=describe_kept) as handle:
            handle.write(serialized.getbuffer())


def resolve_ckpt_path(ckpt_path: str | None, output_dir: Path) -> Path | None:
    """ckpt_path=last means <run folder>/checkpoints/last.ckpt of the run being resumed."""
    if ckpt_path is None:
        return None
    if ckpt_path == "last":
        path = output_dir / "checkpoints" / "last.ckpt"
        if not path.is_file():
            raise CheckpointError(f"ckpt_path=last: no {path}; resume a run with hydra.run.dir=<its folder> "
                                  "ckpt_path=last, or give ckpt_path=/path/to/file.ckpt")
        return path
    return Path(ckpt_path).expanduser().resolve()


def upgrade_data_and_model(config: dict) -> dict:
    """The `data` and `model` nodes of a config (a checkpoint's hyper-parameters or stored config) written before
    representations and MLP layouts: data.representation = waveform frames (marked where they overlapped, which
    those versions accepted); model.frame_size read as model.input_size and the later architecture keys at the
    values those versions had (their defaults). Today's configs pass through unchanged."""
    from avrnn.data import representations
    from avrnn.models.vrnn import VRNNConfig

    config = dict(config)
    data, model = config.get("data"), config.get("model")
    if data and data.get("representation") is None:
        config["data"] = {**data, "representation": representations.of_earlier_version(data)}
    if model and ("input_size" in model or "frame_size" in model):
        defaults = VRNNConfig.from_dict(model).to_dict()
        config["model"] = {**defaults, **{key: value for key, value in model.items() if key != "frame_size"}}
    return config


def upgrade_hyper_parameters(critic: dict, ablation: dict) -> tuple[dict, dict]:
    """Checkpoints written before the critic objective became a config object name the critic and
    the ablation only (critic.name, ablation.name); spell those out as today's configs do, so old
    runs still evaluate, generate and resume. Today's hyper-parameters pass through unchanged."""
    critic, ablation = dict(critic), dict(ablation)
    if "objective" not in critic:
        objectives = {
            "wgan": {"_target_": "avrnn.models.objectives.Wasserstein", "clip_value": critic.get("clip_value")},
            "wgan_gp": {"_target_": "avrnn.models.objectives.WassersteinGradientPenalty",
                        "gp_weight": critic.get("gp_weight")},
            "gan": {"_target_": "avrnn.models.objectives.JensenShannon"},
        }
        critic["objective"] = objectives.get(critic.get("name"))
    if "networks" not in critic and critic["objective"] is not None:
        critic["input"] = "sequence"
        critic["networks"] = {"sequence": {"_target_": "avrnn.models.critic.SequenceCritic",
                                           "lstm_size": critic["lstm_size"], "fc_size": critic["fc_size"],
                                           "readout": critic.get("readout", "last")}}
    if "adversarial_trains_prior" not in ablation:
        ablation["adversarial_trains_prior"] = ablation.get("name") != "posterior_only"
        ablation["kl_weight"] = ablation.get("kl_weight", 1.0) if ablation.get("name") == "hybrid" else 0.0
    return critic, ablation


# Parameter names before the VRNN's layers were named (363845d and earlier): positions in
# nn.Sequential blocks. Old name pattern -> today's name.
_RENAMED = [
    (r"^(.*\b(?:phi_x|phi_z|fc))\.0\.", r"\1.fc1."),
    (r"^(.*\b(?:phi_x|phi_z|fc))\.2\.", r"\1.fc2."),
    (r"^(.*\b(?:transition|proposal|emission))\.0\.0\.", r"\1.fc1."),
    (r"^(.*\b(?:transition|proposal|emission))\.0\.2\.", r"\1.fc2."),
    (r"^(.*\b(?:transition|proposal|emission))\.1\.(mean|raw_std)\.", r"\1.\2."),
    (r"^(.*\bemission)\.1\.(weight|bias)$", r"\1.logits.\2"),  # the Bernoulli emission's linear read-out
]


def upgrade_state_dict(state_dict: dict) -> dict:
    """Parameter names of earlier versions mapped to today's (the same tensors, in the same order);
    today's names pass through unchanged."""
    upgraded = {}
    for name, tensor in state_dict.items():
        for pattern, replacement in _RENAMED:
            name = re.sub(pattern, replacement, name)
        upgraded[name] = tensor
    return upgraded


def check_optimizer_states(checkpoint: dict, phase_parameters: dict) -> None:
    """Resuming needs each phase's optimizer to hold the parameters it held when the checkpoint was
    written; an earlier version's checkpoint may not (ablation=hybrid's reconstruction phase now
    trains TR too). Refused in one line, before Lightning fails inside the optimizer."""
    states = checkpoint.get("optimizer_states")
    if not states:
        return  # weights only (evaluation, generation)
    for (phase, params), state in zip(phase_parameters.items(), states):
        held = sum(len(group["params"]) for group in state["param_groups"])
        if held != len(params):
            raise CheckpointError(
                f"cannot resume: this checkpoint's {phase} optimizer holds {held} parameter tensors and this "
                f"version's holds {len(params)} (e.g. ablation=hybrid now trains TR in the reconstruction phase); "
                "evaluate or generate from it, or start a new run")
