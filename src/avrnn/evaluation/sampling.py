"""`generate(cfg)`: WAV files sampled from a checkpoint's prior (free-running, no teacher forcing)
and reconstructions of test utterances, in the training data's units (normalisation undone)."""

from __future__ import annotations

from pathlib import Path

import soundfile as sf
import torch
from omegaconf import DictConfig

from avrnn.config import apply_num_threads
from avrnn.training import denormals
from avrnn.data.framing import Normalization, to_waveform
from avrnn.evaluation.scoring import build_eval_data, load_module
from avrnn.evaluation.settings import check_generate


def generate(cfg: DictConfig) -> list[Path]:
    check_generate(cfg)  # before the checkpoint is read
    apply_num_threads(cfg.get("num_threads"))
    denormals.apply(cfg.get("flush_denormal", True))
    torch.manual_seed(cfg.seed)
    module = load_module(Path(cfg.ckpt_path).expanduser(), cfg.trusted_targets)
    normalization = Normalization(**module.hparams.normalization)
    sample_rate = int((module.hparams.data or {}).get("sample_rate", 16000))
    frame_size = module.hparams.model["frame_size"]
    # the data for reconstructions first: a corpus that does not fit the model is refused before anything is written
    datamodule = build_eval_data(module, cfg.get("data"), "test", cfg.reconstructions) if cfg.reconstructions > 0 \
        else None
    output = Path(cfg.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    written = []
    steps = max(1, round(cfg.seconds * sample_rate / frame_size))
    for index, frames in enumerate(module.vrnn.sample(cfg.n, steps) if cfg.n else []):
        path = output / f"sample_{index:02d}.wav"
        sf.write(str(path), to_waveform(frames, normalization), sample_rate, subtype="PCM_16")
        written.append(path)
    if datamodule is not None:
        x, mask = next(iter(datamodule.test_dataloader()))
        reconstruction = module.vrnn.reconstruct(x, mask)
        for index in range(x.shape[0]):
            length = int(mask[index].sum())
            for kind, frames in (("original", x[index, :length]), ("reconstruction", reconstruction[index, :length])):
                path = output / f"test_{index:02d}_{kind}.wav"
                sf.write(str(path), to_waveform(frames, normalization), sample_rate, subtype="PCM_16")
                written.append(path)
    print(f"wrote {len(written)} WAV files ({sample_rate} Hz) to {output}")
    return written
