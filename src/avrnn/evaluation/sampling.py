"""`generate(cfg)`: WAV files sampled from a checkpoint's prior (free-running, no teacher forcing)
and reconstructions of test utterances, decoded by the data representation the model was trained on
(waveform frames de-normalised; power spectrograms with the original's phase for reconstructions, a
Griffin-Lim phase for prior samples)."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import soundfile as sf
import torch
from omegaconf import DictConfig

from avrnn.config import ConfigError, apply_num_threads
from avrnn.data.progress import counted
from avrnn.training import denormals
from avrnn.evaluation.scoring import build_eval_data, load_module
from avrnn.evaluation.settings import check_generate
from avrnn.training.run_folder import print_and_log

SAMPLE_BATCH_BYTES = 256 * 2**20  # the prior's frames held at once (float32); more samples are drawn in batches


def sample_batches(n: int, steps: int, feature_size: int, budget_bytes: int) -> list[int]:
    """Batch sizes that draw n samples of `steps` timesteps of `feature_size` float32 features, each batch
    holding at most `budget_bytes` of frames (at least one sample, however long): memory is bounded by the
    length of one sample, not by n x seconds. (VRNN.sample stacks its per-step frames, so the peak is about
    twice the budget.) The draws depend on the batches: with the same seed, n samples of one length are
    the same whatever else is asked, but not the same as before batching where n x length exceeds a batch."""
    per_sample = max(1, steps * feature_size * 4)
    size = max(1, min(n, budget_bytes // per_sample))
    return [min(size, n - start) for start in range(0, n, size)]


def with_griffin_lim(representation, iterations: int | None):
    """`representation` with its prior samples' phase estimated in `iterations` Griffin-Lim iterations (None:
    as the checkpoint says). ConfigError where the representation estimates no phase (waveform frames)."""
    if iterations is None:
        return representation
    if not hasattr(representation.settings, "griffin_lim_iterations"):
        raise ConfigError(f"griffin_lim_iterations={iterations}: this checkpoint's model reads data/representation="
                          f"{representation.name}, whose samples need no phase estimate; drop griffin_lim_iterations "
                          "(it is for data/representation=stft models)")
    changed = copy.copy(representation)  # the module's own stays as it was trained
    changed.settings = dataclasses.replace(representation.settings, griffin_lim_iterations=iterations).check()
    return changed


def generate(cfg: DictConfig) -> list[Path]:
    check_generate(cfg)  # before the checkpoint is read
    apply_num_threads(cfg.get("num_threads"))
    denormals.apply(cfg.get("flush_denormal", True))
    torch.manual_seed(cfg.seed)
    module = load_module(Path(cfg.ckpt_path).expanduser(), cfg.trusted_targets)
    representation = with_griffin_lim(module.representation, cfg.get("griffin_lim_iterations"))
    sample_rate = int((module.hparams.data or {}).get("sample_rate", 16000))
    # the data for reconstructions first: a corpus that does not fit the model is refused before anything is written
    datamodule = build_eval_data(module, cfg.get("data"), "test", cfg.reconstructions) if cfg.reconstructions > 0 \
        else None
    output = Path(cfg.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    written, manifest = [], {}  # manifest: file -> what it is (generated.json beside the files)
    steps = representation.steps(cfg.seconds, sample_rate)
    index = 0
    for batch in sample_batches(cfg.n, steps, representation.feature_size, SAMPLE_BATCH_BYTES):  # each batch written before the next
        for frames in module.vrnn.sample(batch, steps):
            path = output / f"sample_{index:02d}.wav"
            sf.write(str(path), representation.decode(frames), sample_rate, subtype="PCM_16")
            written.append(path)
            manifest[path.name] = {"kind": "prior sample", "decoded": representation.decoded_how(with_original=False)}
            if hasattr(representation.settings, "griffin_lim_iterations"):
                manifest[path.name]["griffin_lim_iterations"] = representation.settings.griffin_lim_iterations
            index += 1
    if datamodule is not None:
        x, mask, audio = next(iter(datamodule.eval_dataloader("test", with_audio=True)))
        reconstruction = module.vrnn.reconstruct(x, mask)
        for index in range(x.shape[0]):
            length = int(mask[index].sum())
            estimate = representation.decode(reconstruction[index, :length], audio[index])
            for kind, wave in (("original", audio[index][:len(estimate)]), ("reconstruction", estimate)):
                path = output / f"test_{index:02d}_{kind}.wav"
                sf.write(str(path), wave, sample_rate, subtype="PCM_16")
                written.append(path)
                manifest[path.name] = {"kind": kind, "source": datamodule.paths["test"][index]}
                if kind == "reconstruction":
                    manifest[path.name]["decoded"] = representation.decoded_how(with_original=True)
    (output / "generated.json").write_text(json.dumps({"sample_rate": sample_rate, "files": manifest}, indent=1))
    samples = sum(entry["kind"] == "prior sample" for entry in manifest.values())
    pairs = (len(written) - samples) // 2
    lines = [f"wrote {counted(len(written), 'WAV file')} ({sample_rate} Hz) to {output}: "
             f"{counted(samples, 'prior sample')} and {counted(pairs, 'original + reconstruction pair')}; "
             "generated.json says what each is"]
    if cfg.n:
        lines.append(f"  prior samples: {representation.decoded_how(with_original=False)}")
    if datamodule is not None:
        lines.append(f"  reconstructions: {representation.decoded_how(with_original=True)}")
    print_and_log("\n".join(lines))
    return written
