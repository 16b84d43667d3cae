"""LightningDataModule: a TIMIT-layout corpus -> normalised, framed, padded and masked batches.

Each training iteration of A-VRNN runs several phases, each on its own batch (Algorithms 1-2).
The train loader therefore yields a list of `batches_per_iteration` independently padded
(x, mask) batches per step; with one shared batch the list has one element.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

from avrnn.data.audio import read_audio
from avrnn.data.corpus import split_corpus
from avrnn.data.errors import DataError
from avrnn.data.framing import Normalization, frame_signal
from avrnn.data.synthetic import SyntheticCorpusSpec, generate_corpus

log = logging.getLogger(__name__)


def pad_batch(sequences: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad (T_i, F) sequences to (B, T_max, F) and return the (B, T_max) float mask."""
    x = torch.nn.utils.rnn.pad_sequence(sequences, batch_first=True)
    lengths = torch.tensor([len(s) for s in sequences])
    mask = (torch.arange(x.shape[1])[None, :] < lengths[:, None]).float()
    return x, mask


class PhaseCollate:
    """Splits a sampled list of sequences into `groups` batches, each padded on its own."""

    def __init__(self, groups: int):
        self.groups = groups

    def __call__(self, sequences: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        size = len(sequences) // self.groups
        return [pad_batch(sequences[i * size:(i + 1) * size]) for i in range(self.groups)]


class Utterances(Dataset):
    """Whole framed utterances (for validation and test)."""

    def __init__(self, frames: list[torch.Tensor]):
        self.frames = frames

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.frames[index]


class RandomCrops(Utterances):
    """A random window of `crop_frames` frames of an utterance (the whole one if shorter)."""

    def __init__(self, frames: list[torch.Tensor], crop_frames: int):
        super().__init__(frames)
        self.crop_frames = crop_frames

    def __getitem__(self, index: int) -> torch.Tensor:
        frames = self.frames[index]
        if len(frames) <= self.crop_frames:
            return frames
        start = int(torch.randint(len(frames) - self.crop_frames + 1, ()))
        return frames[start:start + self.crop_frames]


class SpeechDataModule(pl.LightningDataModule):
    """Framed speech from a TIMIT-layout folder; `synthetic=True` generates the built-in corpus there."""

    def __init__(
        self,
        root: str,
        sample_rate: int = 16000,
        frame_size: int = 200,
        batch_size: int = 16,
        eval_batch_size: int = 16,
        crop_frames: int | None = 40,
        val_fraction: float = 0.05,
        split_seed: int = 0,
        resample: bool = True,
        num_workers: int = 0,
        synthetic: dict | None = None,
        batches_per_iteration: int = 1,
        iterations_per_epoch: int = 100,
    ):
        super().__init__()
        for name, value in (("frame_size", frame_size), ("batch_size", batch_size), ("sample_rate", sample_rate),
                            ("batches_per_iteration", batches_per_iteration),
                            ("iterations_per_epoch", iterations_per_epoch)):
            if value < 1:
                raise DataError(f"data.{name} must be a positive integer, got {value}")
        if crop_frames is not None and crop_frames < 1:
            raise DataError(f"data.crop_frames must be positive or null (whole utterances), got {crop_frames}")
        self.root = Path(root)
        self.sample_rate, self.frame_size, self.crop_frames = sample_rate, frame_size, crop_frames
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_fraction, self.split_seed, self.resample = val_fraction, split_seed, resample
        self.num_workers = num_workers
        self.synthetic = SyntheticCorpusSpec(**synthetic) if synthetic is not None else None
        self.batches_per_iteration, self.iterations_per_epoch = batches_per_iteration, iterations_per_epoch
        self.normalization: Normalization | None = None
        self.frames: dict[str, list[torch.Tensor]] = {}

    def prepare_data(self) -> None:
        if self.synthetic is not None:
            generate_corpus(self.root, self.synthetic)

    def setup(self, stage: str | None = None) -> None:
        if self.frames:
            return
        splits = split_corpus(self.root, self.val_fraction, self.split_seed)
        waves = {name: [read_audio(p, self.sample_rate, self.resample) for p in getattr(splits, name)]
                 for name in ("train", "val", "test")}
        self.normalization = Normalization.fit(waves["train"])
        for name, paths in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
            self.frames[name] = []
            for path, wave in zip(paths, waves[name]):
                frames = frame_signal(self.normalization.apply(wave), self.frame_size)
                if len(frames) == 0:
                    raise DataError(f"{path} is shorter than one frame ({self.frame_size} samples); remove it "
                                    f"or lower data.frame_size")
                self.frames[name].append(frames)
        counts = {name: (len(f), sum(len(u) for u in f)) for name, f in self.frames.items()}
        log.info("data %s: %s utterances/frames per split; normalisation %s", self.root, counts,
                 self.normalization.to_dict())

    def train_dataloader(self) -> DataLoader:
        dataset = (RandomCrops(self.frames["train"], self.crop_frames) if self.crop_frames
                   else Utterances(self.frames["train"]))
        per_step = self.batch_size * self.batches_per_iteration
        sampler = RandomSampler(dataset, replacement=True, num_samples=per_step * self.iterations_per_epoch)
        return DataLoader(dataset, batch_sampler=BatchSampler(sampler, per_step, drop_last=True),
                          collate_fn=PhaseCollate(self.batches_per_iteration), num_workers=self.num_workers)

    def _eval_loader(self, split: str) -> DataLoader:
        return DataLoader(Utterances(self.frames[split]), batch_size=self.eval_batch_size, shuffle=False,
                          collate_fn=pad_batch, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")
