"""LightningDataModule: a corpus -> normalised, framed, padded and masked batches.

Each training iteration of A-VRNN runs several phases, each on its own batch (Algorithms 1-2).
The train loader therefore yields a list of `batches_per_iteration` independently padded
(x, mask) batches per step; with one shared batch the list has one element.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import logging
import os
import random
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pytorch_lightning as pl
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from avrnn.data import cache, representations
from avrnn.data.audio import read_audio
from avrnn.data.corpus import (Found, Splits, by_extension, find_corpus, read_split_lists, split_folder_files,
                               split_listed_files, split_timit_files, timit_candidates)
from avrnn.data.errors import DataError
from avrnn.data.options import DataOptions
from avrnn.data.synthetic import generate_corpus
from avrnn.data.progress import counted, progress

log = logging.getLogger(__name__)
# 2: samples checked when read, one copy per utterance, hidden files ignored, bad files dropped before
#    the split, soxr resampling (caches of version 1 may hold unchecked or differently resampled frames)
# 3: files cut short refused, links to folders followed (caches of version 2 may hold files read short)
# 4: every libsndfile format read by its extension (.mp3, .aiff, ...), files left out counted; keyed by
#    the files' contents (caches of version 3 were keyed by modification times, and may hold replaced audio)
# 5: a representation's features (data.representation) and the audio they were encoded from
CACHE_VERSION = 5


def describe(statistics: Mapping[str, float]) -> str:
    """Normalisation statistics in one phrase, as the data line writes them: "mean 0.001, std 0.1"."""
    return ", ".join(f"{key} {value:.4g}" for key, value in statistics.items())


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
    """Whole framed utterances (with `audio`: each with the waveform it was encoded from)."""

    def __init__(self, frames: list[torch.Tensor], audio: list[np.ndarray] | None = None):
        self.frames, self.audio = frames, audio

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int):
        return self.frames[index] if self.audio is None else (self.frames[index], self.audio[index])


def pad_batch_with_audio(items: list[tuple[torch.Tensor, np.ndarray]]):
    """(x, mask, [waveform of each utterance]): pad_batch with the audio the frames were encoded from."""
    x, mask = pad_batch([frames for frames, _ in items])
    return x, mask, [audio for _, audio in items]


class Crops(Utterances):
    """The window (utterance index, start frame) chosen by the sampler, `crop_frames` long."""

    def __init__(self, frames: list[torch.Tensor], crop_frames: int):
        super().__init__(frames)
        self.crop_frames = crop_frames

    def __getitem__(self, item: tuple[int, int]) -> torch.Tensor:
        index, start = item
        return self.frames[index][start:start + self.crop_frames]


class _EpochHook:
    """Lightning calls `dataloader.batch_sampler.sampler.set_epoch(epoch)` before each epoch."""

    def __init__(self, owner: "EpochBatchSampler"):
        self.owner = owner

    def set_epoch(self, epoch: int) -> None:
        self.owner.epoch = epoch


class EpochBatchSampler(Sampler[list]):
    """Training batches that are a pure function of (seed, epoch), so a run resumed from a
    checkpoint sees exactly the batches an uninterrupted run would (`skip` drops those an
    interrupted epoch already trained on).

    Where the position comes from: `position()` (given) returns (epoch, batches of it done) when each
    epoch's iterator starts: the training module's own iteration counter (SpeechDataModule), so the
    data follow the iterations trained however the run stopped and resumed (Lightning's epoch counter
    runs one ahead after a stop mid-epoch). Without it, Lightning's `set_epoch` and `skip`.

    crop_frames set: random (utterance, start) windows, utterances drawn with replacement.
    crop_frames None: whole utterances in length-bucketed batches (sorted by length within pools
    of 32 batches, then shuffled), so little compute goes to padding.

    Under DDP every process draws the same `batches * world_size` batches of the epoch and keeps
    every world_size-th one from `rank` on: the shards are disjoint, equally long (DDP needs the
    same number of steps everywhere) and still a pure function of (seed, epoch).
    """

    def __init__(self, lengths: list[int], batch_size: int, batches: int, seed: int,
                 crop_frames: int | None = None, pool: int = 32, rank: int = 0, world_size: int = 1,
                 position: Callable[[], tuple[int, int]] | None = None):
        self.lengths, self.batch_size, self.batches, self.seed = lengths, batch_size, batches, seed
        self.crop_frames, self.pool = crop_frames, pool
        self.rank, self.world_size = rank, world_size
        self.epoch, self.skip = 0, 0
        self.position = position
        self.sampler = _EpochHook(self)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches  # also after a resume: Lightning restores how many batches are done

    def epoch_batches(self) -> list[list]:
        rng = random.Random(f"{self.seed}-{self.epoch}")
        total = self.batches * self.world_size
        drawn = [rng.randrange(len(self.lengths)) for _ in range(total * self.batch_size)]
        if self.crop_frames:
            items = [(i, rng.randrange(max(1, self.lengths[i] - self.crop_frames + 1))) for i in drawn]
            batches = [items[b * self.batch_size:(b + 1) * self.batch_size] for b in range(total)]
        else:
            batches = []
            step = self.pool * self.batch_size
            for start in range(0, len(drawn), step):
                pool = sorted(drawn[start:start + step], key=lambda i: self.lengths[i])
                batches += [pool[i:i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
            rng.shuffle(batches)
        return batches[self.rank::self.world_size]

    def __iter__(self):
        if self.position is not None:
            self.epoch, self.skip = self.position()
        batches = self.epoch_batches()[self.skip:]
        self.skip = 0  # only the first epoch after a resume is partial
        return iter(batches)


def different_copies(copies: dict[Path, list[Path]]) -> list[list[str]]:
    """[kept, other] path pairs whose decoded samples (and rates) differ: a copy that is not one."""
    different = []
    for kept, others in copies.items():
        try:
            reference = sf.read(str(kept), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, OSError):
            continue  # the kept copy's own reading reports it
        for other in others:
            try:
                samples, rate = sf.read(str(other), dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, OSError):
                continue  # cannot be compared: a shorten original beside the PCM conversion that is kept

            if rate != reference[1] or not np.array_equal(samples, reference[0]):
                different.append([str(kept), str(other)])
    return different


def upsampling_warning(resampled: Mapping[str, int], files: int, sample_rate: int,
                       rate_fixed_by: str | None = None) -> str | None:
    """What upsampling some of the `files` read ({their rate: how many}, `resampled`) to `sample_rate` does to a
    model of them (nothing above half their rate is in them: a spectrogram's upper bins hold resampling residue),
    and the fix: the corpus's own rate where all of it was upsampled, leaving those files out where only some
    were; none where `rate_fixed_by` (a checkpoint's) fixes the rate. None where nothing was upsampled."""
    upsampled = {int(rate): count for rate, count in resampled.items() if int(rate) < sample_rate}
    if not upsampled:
        return None
    count, lowest = sum(upsampled.values()), min(upsampled)
    them = "it" if count == 1 else "them"
    empty = (f"nothing above {lowest // 2} Hz is in {them}" if len(upsampled) == 1 else
             "nothing above half its own rate is in each")
    rates = " and ".join(f"{rate} Hz" for rate in sorted(upsampled))
    which = (("the file at" if count == 1 else "files at") + f" {rates}" if count >= files else
             f"{count} of {files} files (at {rates})") + (" was" if count == 1 else " were")
    if rate_fixed_by:  # evaluating a model of a higher rate
        return (f"{which} upsampled to {sample_rate} Hz, the rate {rate_fixed_by} fixes: {empty}, so the bounds and "
                "reconstructions of those frequencies (a spectrogram's upper bins) measure the resampler, not this corpus")
    said = (f"{which} upsampled to {sample_rate} Hz: {empty}, and a model of those frequencies (a spectrogram's "
            "upper bins) learns the resampler")
    if count >= files:
        return (f"{said}; to model the corpus at its own rate set data.sample_rate={lowest} (and data.frame_size, "
                "data.hop to match)")
    return f"{said} from {them}; move {them} out of data.root if the rest of the corpus is what you mean to model"


class SpeechDataModule(pl.LightningDataModule):
    """Framed speech from a TIMIT-layout folder (layout="timit") or any folder of audio
    (layout="folder"); `synthetic` generates the built-in corpus at `root` first."""

    def __init__(self, options: DataOptions | Mapping, *, seed: int = 0, batches_per_iteration: int = 1,
                 iterations_per_epoch: int = 100, rate_fixed_by: str | None = None,
                 audio_splits: Sequence[str] | None = None):
        """`options`: the `data` config, whole (a DataOptions or its plain dict); the other
        arguments come from elsewhere in the config (the seed, and training's phases per iteration).
        `rate_fixed_by`: what sets data.sample_rate where the user cannot change it (evaluation: "the
        checkpoint"), so that the log does not advise another rate. `audio_splits`: the splits whose
        waveforms are kept beside their features after setup (None: all, for evaluation's scores of the
        reconstructions; training reads none, and on waveform frames they would hold the corpus twice)."""
        super().__init__()
        options = (options if isinstance(options, DataOptions) else DataOptions.from_dict(options)).check()
        for name, value in (("batches_per_iteration", batches_per_iteration),
                            ("iterations_per_epoch", iterations_per_epoch)):
            if value < 1:
                raise DataError(f"{name} must be a positive integer, got {value}")
        self.options = options
        self.root = Path(options.root)
        self.batches_per_iteration, self.iterations_per_epoch = batches_per_iteration, iterations_per_epoch
        self.seed = seed  # training batch order (the split has its own split_seed)
        self.rate_fixed_by = rate_fixed_by
        self.audio_splits = None if audio_splits is None else tuple(audio_splits)
        self.representation = representations.build(options)  # its statistics fitted or read in setup
        self.frames: dict[str, list[torch.Tensor]] = {}  # split -> (T, F) features of each utterance
        self.audio: dict[str, list[np.ndarray]] = {}  # split -> the waveform each was encoded from (prepared)
        self.paths: dict[str, list[str]] = {}
        self.file_digests: dict[str, str] = {}  # path -> content digest (cache.content_digest)
        self.skipped: list[str] = []
        self._split_entries: dict[str, list[str]] | None = None  # data.split_lists read (split_entries)

    # --- building the framed corpus ----------------------------------------------------------
    def prepare_data(self) -> None:
        if self.options.synthetic is not None:
            generate_corpus(self.root, self.options.synthetic)

    def candidates(self, found: Found) -> Found:
        """Only the files the options leave in play (data.split_lists: the files they name; TIMIT: no SA
        sentences with exclude_sa, only core speakers with test_set=core): files that no split takes are never
        read."""
        if self.options.split_lists:
            entries = self.split_entries()
            listed = {name for names in entries.values() for name in names}
            every = found.files + [p for copies in found.copies.values() for p in copies]
            keep = [p for p in every if p.relative_to(self.root).as_posix() in listed]
            split_listed_files(keep, self.root, entries)  # a listed file that is not there: refused before reading
            unused = ", ".join("data.split_seed" if key == "seed" else f"data.{key}"
                               for key in self.options.split_options())
            log.info("data: data.split_lists gives the splits: %s are not used", unused)
            if len(every) > len(keep):
                log.info("data: %d of %s under %s %s in none of data.split_lists (not read)", len(every) - len(keep),
                         counted(len(every), "audio file"), self.root, "is" if len(every) - len(keep) == 1 else "are")
            return dataclasses.replace(found, pools={"all": keep}, copies={})
        if self.options.layout != "timit":
            return found
        train, test = timit_candidates(found.pools["train"], found.pools["test"], self.options.test_set,
                                       self.options.exclude_sa)
        kept = set(train) | set(test)  # copies of utterances left out (SA, non-core speakers) are not "left out" again
        return dataclasses.replace(found, pools={"train": train, "test": test},
                                   copies={path: others for path, others in found.copies.items() if path in kept})

    def split(self, found: Found, unreadable: set[Path] = frozenset()) -> Splits:
        """The found utterances less `unreadable` ones, split as a corpus holding only them would be."""
        pools = {name: [p for p in files if p not in unreadable] for name, files in found.pools.items()}
        for name, files in pools.items():
            if not files:
                where = f"{name} " if name != "all" else ""
                raise DataError(f"every {where}file under {self.root} was unreadable or too short; "
                                "check the files or data.frame_size")
        if self.options.split_lists:
            return split_listed_files(pools["all"], self.root, self.split_entries(), unreadable)
        if self.options.layout == "timit":
            return split_timit_files(pools["train"], pools["test"], **self.options.split_options())
        return split_folder_files(pools["all"], self.root, **self.options.split_options())

    def split_entries(self) -> dict[str, list[str]]:
        """data.split_lists read (once per set-up): split -> the file names it lists (relative to data.root)."""
        if self._split_entries is None:
            self._split_entries = read_split_lists(self.root, self.options.split_lists)
        return self._split_entries

    def _options(self) -> dict:
        """Everything that changes the cached frames."""
        o = self.options
        return {"version": CACHE_VERSION, "root": str(self.root.resolve()), "layout": o.layout,
                "split_lists": self.split_entries() if o.split_lists else None,
                "representation": representations.settings(o), "sample_rate": o.sample_rate,
                "frame_size": o.frame_size, "hop": o.hop,
                "last_frame": o.last_frame, "resample": o.resample, "on_bad_file": o.on_bad_file,
                **o.split_options()}

    def _read(self, path: Path, skipped: list[str], resampled: dict[int, int] | None = None,
              because: dict[str, str] | None = None):
        """Waveform of one file as the representation takes it (`prepare`: e.g. silence trimmed), or None
        when it is bad and data.on_bad_file=skip."""
        try:
            read = read_audio(path, self.options.sample_rate, self.options.resample, resampled)
            wave = self.representation.prepare(read)
            least = self.representation.min_samples
            if len(wave) < least:
                needs = f"data.frame_size={least}" if least == self.options.frame_size else \
                    f"{least}, the least the {self.representation.name} representation encodes at data.frame_size=" \
                    f"{self.options.frame_size}"
                trimmed = (f" after trimming its silence (from {len(read)} samples; data.representation.trim_top_db)"
                           if len(wave) < len(read) else "")
                fault = f"is shorter than one frame{trimmed} ({len(wave)} < {needs} samples)"
                raise DataError(f"{path} {fault}; remove it, lower data.frame_size or set data.on_bad_file=skip", fault)
        except DataError as error:
            if self.options.on_bad_file == "fail":
                raise
            skipped.append(str(path))
            if because is not None:
                because[str(path)] = error.fault or str(error)  # without its path and the fix
            return None
        return wave

    def _build(self, found: Found) -> dict:
        """Read every found file, drop the bad ones (skip mode), split what is left, fit the
        representation's statistics on its training split and encode everything."""
        waves, skipped, rates, because = {}, [], {}, {}
        for path in progress(found.files, f"reading {self.root.name}", log, unit="file", leave=False):
            resampled = {}
            wave = self._read(path, skipped, resampled, because)
            if wave is not None:
                waves[path] = wave
                rates.update((path, rate) for rate in resampled)  # the rate a used file was resampled from
        splits = self.split(found, unreadable={Path(p) for p in skipped})
        resampled = collections.Counter(rates.values())
        copies = {kept: others for kept, others in found.copies.items() if kept in waves}  # the kept copy was used
        statistics = self.representation.fit([waves[p] for p in splits.train])  # training split only
        frames = {split: [self.representation.encode(waves[p]) for p in files] for split, files in splits.as_dict().items()}
        return {"frames": frames, "paths": {split: [str(p) for p in files] for split, files in splits.as_dict().items()},
                "audio": {split: [torch.from_numpy(waves[p]) for p in files] for split, files in splits.as_dict().items()},
                "normalization": statistics, "skipped": skipped, "skipped_because": because,
                "copies_dropped": sum(len(c) for c in found.copies.values()),
                "copies_example": next(([str(kept), str(others[0])] for kept, others in copies.items()), None),
                "copies_differing": different_copies(copies), "hidden_ignored": len(found.hidden),
                "unread": [str(item) for item in found.unread], "not_audio": len(found.not_audio),
                "not_audio_kinds": by_extension(found.not_audio), "outside_splits": len(found.outside_splits),
                "outside_examples": [str(p.relative_to(found.root)) for p in found.outside_splits[:3]],
                "resampled": {str(rate): count for rate, count in sorted(resampled.items())}}

    def setup(self, stage: str | None = None) -> None:
        if self.frames:
            return
        found = self.candidates(find_corpus(self.root, self.options.layout))
        cache_file = None
        content = None
        memo = cache.DigestMemo(self.options.cache_dir)
        every = found.files + [p for c in found.copies.values() for p in c]
        digests = {path: memo.digest(path) for path in every}
        memo.save()
        if self.options.cache_dir:  # the copies too: which of them differ is part of what is cached
            key = cache.cache_key(self._options(), digests)
            cache_file = Path(self.options.cache_dir) / f"{self.root.name}-{key}.pt"
            content = cache.load(cache_file)
        if content is None:
            if cache_file is not None and (why := cache.writable(cache_file.parent)):
                log.warning("data: the cache folder %s cannot be written (%s): running without the cache (set "
                            "data.cache_dir to a writable folder, or null)", cache_file.parent, why)
                cache_file = None
            content = self._build(found)  # the representation's fit checks the statistics
            if cache_file is not None:
                try:
                    cache.save(cache_file, content)
                except OSError as error:  # e.g. the disk filled while the corpus was read: train on what was read
                    log.warning("data: the corpus was not cached (%s); running without the cache",
                                " ".join(str(error).split()))
        else:
            log.info("data: loaded %s", cache_file)
            self.representation.use(content["normalization"], f"read from the data cache {cache_file}")
        self.frames, self.paths = content["frames"], content["paths"]
        self.audio = {split: [wave.numpy() for wave in audio] for split, audio in content["audio"].items()
                      if self.audio_splits is None or split in self.audio_splits}
        self.file_digests = {str(path): digest for path, digest in digests.items()}
        self.skipped = content["skipped"]
        self._report(content)

    @property
    def statistics(self) -> dict[str, float]:
        """The representation's statistics the features are in (fitted on the training split, or a
        checkpoint's after use_statistics): plain data, what checkpoints store."""
        return dict(self.representation.statistics)

    def _report(self, content: dict) -> None:
        if content["hidden_ignored"]:
            log.info("data: ignored %s (.*, macOS resource forks ._*, __MACOSX/)",
                     counted(content["hidden_ignored"], "hidden file"))
        if content["not_audio"]:
            log.info("data: left out %s that libsndfile does not read as audio (%s)", counted(content["not_audio"], "file"),
                     content["not_audio_kinds"])
        if content["outside_splits"]:
            examples = ", ".join(content["outside_examples"]) + (", ..." if content["outside_splits"] > 3 else "")
            log.info("data: left out %s outside TRAIN/ and TEST/ (%s; the timit layout reads only those)",
                     counted(content["outside_splits"], "file"), examples)
        unread = content.get("unread", [])  # (a data cache of an earlier version has no such entry)
        if unread:
            log.warning("data: %s under data.root not read (folders, links or files): %s", counted(len(unread), "path"),
                        "; ".join(unread[:3]) + ("; ..." if len(unread) > 3 else ""))
        if content.get("resampled"):
            log.info("data: resampled %s to data.sample_rate=%d Hz (soxr)", ", ".join(
                f"{counted(count, 'file')} from {rate} Hz" for rate, count in content["resampled"].items()),
                self.options.sample_rate)
            warning = upsampling_warning(content["resampled"], sum(len(p) for p in content["paths"].values()),
                                         self.options.sample_rate, self.rate_fixed_by)
            if warning:
                log.warning("data: %s", warning)
        if content["copies_dropped"]:
            dropped = content["copies_dropped"]
            example = content.get("copies_example")  # (a data cache of an earlier version has none)
            log.warning("data: %s (the same path without its audio suffixes%s); one copy of each is used (a readable "
                        "one, lossless before lossy, SPHERE first)",
                        "1 file is a further copy of an utterance already found" if dropped == 1 else
                        f"{dropped} files are further copies of utterances already found",
                        f": e.g. {example[0]} is used, {example[1]} is not" if example else "")
        if content["copies_differing"]:
            differing = content["copies_differing"]
            log.warning("data: %s copies whose samples differ, e.g. %s (used) and %s; check which copy is right",
                        counted(len(differing), "utterance") + (" has" if len(differing) == 1 else " have"),
                        *differing[0])
        if self.skipped:
            because = content.get("skipped_because") or {}  # (a data cache of an earlier version has no reasons)
            named = "; ".join(f"{path}: {because[path]}" if path in because else path for path in self.skipped[:3])
            more = f"; and {len(self.skipped) - 3} more" if len(self.skipped) > 3 else ""
            log.warning("data: skipped %s (data.on_bad_file=skip): %s%s", counted(len(self.skipped), "bad file"), named,
                        more)
        counts = ", ".join(f"{split} {counted(len(f), 'utterance')} / {counted(sum(len(u) for u in f), 'frame')}"
                           for split, f in self.frames.items())
        log.info("data %s: %s; %s representation (%d features per timestep), %s", self.root, counts,
                 self.representation.name, self.representation.feature_size, describe(self.statistics))

    def split_membership(self) -> dict[str, dict]:
        """split -> {"files": paths relative to data.root, in order; "content": a hash of those paths and
        of each file's bytes (cache.content_digest)}: what a resume compares
        (avrnn.training.resume.check_same_splits), unchanged by a moved data.root or by another machine
        reading the same files (its resampler may round otherwise), changed by any file added, removed,
        renamed or whose bytes changed."""
        membership = {}
        for split, paths in self.paths.items():
            digest = hashlib.blake2b(digest_size=16)
            names = [os.path.relpath(path, self.root) for path in paths]
            for name, path in zip(names, paths):
                digest.update(f"{name}\0{self.file_digests[path]}\0".encode())
            membership[split] = {"files": names, "content": digest.hexdigest()}
        return membership

    def earlier_split_membership(self) -> dict[str, dict]:
        """split_membership as versions before the content hash wrote it ("digest": of each file's name
        and its frames as read and normalised), to compare a checkpoint of such a version as it did."""
        membership = {}
        for split, frames in self.frames.items():
            digest = hashlib.blake2b(digest_size=16)
            names = [os.path.relpath(path, self.root) for path in self.paths[split]]
            for name, utterance in zip(names, frames):
                digest.update(name.encode() + b"\0")
                digest.update(utterance.detach().cpu().contiguous().numpy().tobytes())
            membership[split] = {"files": names, "digest": digest.hexdigest()}
        return membership

    def use_statistics(self, statistics: Mapping[str, float], source: str) -> None:
        """Re-encode every utterance in other statistics (a checkpoint's, for evaluation: `source` says
        where they come from), and say so in the log: the data line gave the corpus's own."""
        own = self.representation.statistics
        if own == dict(statistics):
            return
        if set(self.frames) - set(self.audio):  # their features could not be re-encoded
            raise RuntimeError(f"use_statistics needs every split's audio, but this datamodule kept only "
                               f"{sorted(self.audio)} (audio_splits)")
        self.representation.use(statistics, source)
        instead = f", not this corpus's own ({describe(own)}, as the data line says)" if own else ""
        log.info("data: normalised with the statistics %s (%s)%s", source, describe(self.representation.statistics),
                 instead)
        self.frames = {split: [self.representation.encode(wave) for wave in audio] for split, audio in self.audio.items()}

    # --- loaders --------------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        crop_frames, per_step = self.options.crop_frames, self.options.batch_size * self.batches_per_iteration
        lengths = [len(f) for f in self.frames["train"]]
        sampler = EpochBatchSampler(lengths, per_step, self.iterations_per_epoch, self.seed, crop_frames,
                                    **self._shard(), position=self.position)
        dataset = Crops(self.frames["train"], crop_frames) if crop_frames else Utterances(self.frames["train"])
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=PhaseCollate(self.batches_per_iteration),
                          num_workers=self.options.num_workers, generator=self._own_generator())

    def position(self) -> tuple[int, int]:
        """(epoch, batches of it trained) of the training data: from the training module's iteration
        counter (the iterations it has trained, restored from a checkpoint on resume); a module
        without one starts at Lightning's epoch."""
        module = self.trainer.lightning_module if self.trainer is not None else None
        iteration = getattr(module, "iteration", None)
        if iteration is None:
            return (self.trainer.current_epoch if self.trainer is not None else 0), 0
        return divmod(iteration, self.iterations_per_epoch)

    def _shard(self) -> dict[str, int]:
        """This process's place among the DDP processes (rank 0 of 1 outside DDP)."""
        trainer = self.trainer
        if trainer is None:
            return {"rank": 0, "world_size": 1}
        return {"rank": trainer.global_rank, "world_size": trainer.world_size}

    def eval_dataloader(self, split: str, with_audio: bool = False) -> DataLoader:
        """Whole utterances of a split (train, val or test), padded and masked, in order. Under DDP
        each process scores every world_size-th utterance, none twice (DistributedSampler would pad
        with repeats and bias the bound); the logged sums are then reduced over processes. A split with
        fewer utterances than processes is scored whole by every process (a process with none would skip
        the reduction the others wait in): every sum and every frame count is then world_size times
        larger, and the bounds, ratios of the two, are the same. with_audio: batches are (x, mask, the
        waveform of each utterance) (pad_batch_with_audio)."""
        shard, count = self._shard(), len(self.frames[split])
        indices = range(shard["rank"], count, shard["world_size"]) if count >= shard["world_size"] else range(count)
        dataset = Utterances(self.frames[split], self.audio[split] if with_audio else None)
        return DataLoader(dataset, batch_size=self.options.eval_batch_size, sampler=list(indices),
                          collate_fn=pad_batch_with_audio if with_audio else pad_batch, num_workers=self.options.num_workers,
                          generator=self._own_generator())

    def _own_generator(self) -> torch.Generator:
        """Each new DataLoader iterator draws a seed; from its own generator it leaves torch's
        global RNG (the model's noise) alone, so a resumed run draws the same noise."""
        return torch.Generator().manual_seed(self.seed)

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")
