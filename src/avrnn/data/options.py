"""What a corpus is and how it is framed and batched: the `data` config node, passed whole.

`DataOptions` is both the schema of `data` (conf/data/*.yaml fill it; avrnn.config adds the
interpolated cache folder) and what SpeechDataModule takes. `check` is the one place that checks
its values, each with a one-line message naming the key and what to use instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Optional

from avrnn.data import representations
from avrnn.data.errors import DataError
from avrnn.data.progress import plural
from avrnn.data.synthetic import SyntheticCorpusSpec

CHOICES = {"layout": ("timit", "folder"), "last_frame": ("pad", "drop"), "on_bad_file": ("fail", "skip")}
TIMIT_CHOICES = {"test_set": ("full", "core"), "val_split": ("utterance", "speaker")}


def check_fraction(key: str, value: float) -> None:
    """data.val_fraction and data.test_fraction: by DataOptions.check at start-up, and by
    avrnn.data.corpus's split functions for their direct callers."""
    if not 0 < value < 1:
        raise DataError(f"data.{key} must lie in (0, 1), got {value}")


def check_speaker_pattern(pattern: str | None) -> None:
    """data.speaker_pattern: null, or a regular expression with a group (the speaker)."""
    if pattern is None:
        return
    try:
        groups = re.compile(pattern).groups
    except re.error as error:
        raise DataError(f"data.speaker_pattern={pattern!r} is not a regular expression ({error}); "
                        "fix it (its first group is the speaker) or set data.speaker_pattern=null") from None
    if groups < 1:
        raise DataError(f"data.speaker_pattern={pattern!r} has no group; put the speaker in parentheses, "
                        "e.g. '_([a-z]+)_', or set data.speaker_pattern=null")


def check_timit_choices(test_set: str, val_split: str) -> None:
    """data.test_set and data.val_split (TIMIT's split options): by DataOptions.check at start-up, and
    by avrnn.data.corpus's split functions for their direct callers."""
    for key, value in (("test_set", test_set), ("val_split", val_split)):
        if value not in TIMIT_CHOICES[key]:
            raise DataError(f"data.{key}={value!r} is not allowed; choose {' or '.join(TIMIT_CHOICES[key])}")


@dataclass
class DataOptions:
    name: str = "custom"  # a label: which conf/data/<name>.yaml filled this
    root: str = "???"  # the corpus folder (data=synthetic: where it is generated)
    layout: str = "timit"  # timit (TRAIN/ and TEST/ folders) | folder (any folder of audio)
    sample_rate: int = 16000  # files at other rates are resampled (resample=true) or refused
    resample: bool = True
    # what a timestep is: {name: waveform | stft, its own keys} (conf/data/representation/; avrnn.data.representations)
    representation: Any = field(default_factory=lambda: {"name": "waveform"})
    frame_size: int = 200  # samples per frame, the STFT's window (200 = 12.5 ms at 16 kHz)
    hop: Optional[int] = None  # samples between frame starts; null = frame_size (no overlap; waveform: must be)
    last_frame: str = "pad"  # pad (zero-pad the last partial frame and keep it) | drop
    batch_size: int = 16
    eval_batch_size: int = 16
    crop_frames: Optional[int] = 40  # training crops of 40 frames = 0.5 s; null: whole utterances, length-bucketed
    val_fraction: float = 0.05
    test_fraction: float = 0.1  # layout=folder only (TIMIT has its own TEST set)
    split_seed: int = 0
    # {train: LIST, val: LIST, test: LIST}: text files naming each split's files (paths relative to data.root, one
    # per line; a relative LIST is read from data.root): exactly another codebase's split. null: split by the keys above
    split_lists: Any = None
    test_set: str = "full"  # timit: full (1,680 utterances) | core (192)
    val_split: str = "utterance"  # timit: utterance | speaker (speaker-disjoint validation)
    exclude_sa: bool = False  # timit: leave out the two SA sentences every speaker reads
    speaker_pattern: Optional[str] = None  # folder: regex whose first group is the speaker; null: split by file
    on_bad_file: str = "fail"  # fail | skip (unreadable or shorter-than-a-frame files; count logged)
    cache_dir: Optional[str] = None  # null: no cache
    num_workers: int = 0
    synthetic: Optional[SyntheticCorpusSpec] = None  # data=synthetic: what to generate at data.root

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DataOptions:
        """From plain data (a composed config, or the dict a checkpoint stores)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise DataError(f"unknown data {plural(len(unknown), 'option')} {', '.join(unknown)}; "
                            f"the data config takes {', '.join(sorted(known))}")
        options = cls(**values)
        if options.representation is None:  # checkpoints of earlier versions: waveform frames
            options.representation = {"name": "waveform"}
        if isinstance(options.synthetic, Mapping):
            options.synthetic = SyntheticCorpusSpec(**options.synthetic)
        return options

    def check(self) -> DataOptions:
        for key in ("frame_size", "batch_size", "sample_rate", "eval_batch_size"):
            if getattr(self, key) < 1:
                raise DataError(f"data.{key} must be a positive integer, got {getattr(self, key)}")
        for key in ("crop_frames", "hop"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise DataError(f"data.{key} must be positive or null, got {getattr(self, key)}")
        for key, allowed in CHOICES.items():
            if getattr(self, key) not in allowed:
                raise DataError(f"data.{key}={getattr(self, key)!r} is not allowed; choose one of {', '.join(allowed)}")
        check_fraction("val_fraction", self.val_fraction)
        if self.split_lists is not None and (not isinstance(self.split_lists, Mapping)
                                             or sorted(self.split_lists) != ["test", "train", "val"]):
            raise DataError(f"data.split_lists={self.split_lists!r} must name three lists: "
                            "data.split_lists={train: LIST, val: LIST, test: LIST}, or be null")
        representations.build(self)  # its name, keys and values, and the framing it allows
        if self.layout == "timit":  # the keys each layout's split reads (split_options)
            check_timit_choices(self.test_set, self.val_split)
        else:
            check_fraction("test_fraction", self.test_fraction)
            check_speaker_pattern(self.speaker_pattern)
        return self

    def split_options(self) -> dict:
        """The keyword arguments of this layout's split function (avrnn.data.corpus)."""
        if self.layout == "timit":
            return dict(val_fraction=self.val_fraction, seed=self.split_seed, test_set=self.test_set,
                        val_split=self.val_split, exclude_sa=self.exclude_sa)
        return dict(val_fraction=self.val_fraction, test_fraction=self.test_fraction, seed=self.split_seed,
                    speaker_pattern=self.speaker_pattern)
