"""Finding the utterances of a corpus and splitting them into train / validation / test.

Two layouts:
  timit   ROOT/TRAIN/<dialect>/<speaker>/<utt>.WAV and ROOT/TEST/..., any letter case, optionally
          with a data/ folder between ROOT and TRAIN/TEST (a common re-packaging). Splits follow the
          published TIMIT results (FIVO's create_timit_dataset, SRNN): the official TEST set for test,
          a seeded fraction of TRAIN for validation.
  folder  any folder of audio, searched recursively; split by speaker when a regex on the path
          names the speaker, else by file, with a fixed seed.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from avrnn.data.errors import DataError

TIMIT_LAYOUT = "ROOT/TRAIN/DR1/FCJF0/SA1.WAV and ROOT/TEST/... (TIMIT layout)"
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".sph", ".nist")
# The 24 speakers of TIMIT's core test set (2 male, 1 female per dialect region; 8 SI/SX sentences
# each = 192 utterances), as listed in the TIMIT documentation.
CORE_TEST_SPEAKERS = frozenset({
    "MDAB0", "MWBT0", "FELC0", "MTAS1", "MWEW0", "FPAS0", "MJMP0", "MLNT0", "FPKT0", "MLLL0", "MTLS0", "FJLM0",
    "MBPM0", "MKLT0", "FNLP0", "MCMJ0", "MJDH0", "FMGD0", "MGRT0", "MNJM0", "FDHC0", "MJLN0", "MPAM0", "FMLD0",
})


@dataclass(frozen=True)
class Splits:
    train: list[Path]
    val: list[Path]
    test: list[Path]

    def as_dict(self) -> dict[str, list[Path]]:
        return {"train": self.train, "val": self.val, "test": self.test}


def _child(folder: Path, name: str) -> Path | None:
    matches = [p for p in folder.iterdir() if p.is_dir() and p.name.lower() == name]
    return matches[0] if matches else None


def _require_dir(root: Path, layout: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data.root {root} does not exist; set data.root to a folder laid out as {layout}")
    return root


def find_split_dirs(root: Path) -> tuple[Path, Path]:
    """TRAIN and TEST folders of a TIMIT-layout root, or a DataError naming the expected layout."""
    root = _require_dir(root, TIMIT_LAYOUT)
    for base in (root, _child(root, "data")):
        if base is None:
            continue
        train, test = _child(base, "train"), _child(base, "test")
        if train and test:
            return train, test
    hint = " (it looks like a split folder: point data.root at its parent)" if root.name.lower() in ("train", "test") else ""
    raise DataError(f"no TRAIN/ and TEST/ folders under data.root {root}{hint}; expected {TIMIT_LAYOUT}")


def list_audio(folder: Path, extensions=(".wav",), layout: str = TIMIT_LAYOUT) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in extensions and p.is_file())
    if not files:
        wanted = "/".join(extensions)
        raise DataError(f"no audio files ({wanted}) under {folder}; expected {layout}")
    return files


def timit_speaker(path: Path) -> str:
    return path.parent.name.upper()


def _hold_out(items: list, fraction: float, seed: int, what: str) -> tuple[list, list]:
    """Split items into (kept, held out) with a seeded shuffle; at least one held out."""
    shuffled = items[:]
    random.Random(seed).shuffle(shuffled)
    n_out = max(1, round(fraction * len(items)))
    if n_out >= len(items):
        raise DataError(f"only {len(items)} {what}: too few to hold out {fraction:.0%}; add data or lower the fraction")
    held = set(shuffled[:n_out])
    return [i for i in items if i not in held], [i for i in items if i in held]


def split_timit(root: Path, val_fraction: float = 0.05, seed: int = 0, test_set: str = "full",
                val_split: str = "utterance", exclude_sa: bool = False) -> Splits:
    """TIMIT splits. Utterance counts on the real corpus (TRAIN 4,620 = 462 speakers x 10):

    default                      train 4,389  val 231  test 1,680 (168 speakers x 10, SA included)
    test_set=core                test 192 (24 core speakers x 8; SA sentences never in the core set)
    exclude_sa=true              train 3,511  val 185  test 1,344 (core: 192)
    val_split=speaker            val = all utterances of 23 held-out speakers (230; 184 without SA)
    """
    if not 0 < val_fraction < 1:
        raise DataError(f"data.val_fraction must lie in (0, 1), got {val_fraction}")
    if test_set not in ("full", "core"):
        raise DataError(f"data.test_set={test_set!r} is not allowed; choose full or core")
    if val_split not in ("utterance", "speaker"):
        raise DataError(f"data.val_split={val_split!r} is not allowed; choose utterance or speaker")
    train_dir, test_dir = find_split_dirs(root)
    train, test = list_audio(train_dir), list_audio(test_dir)
    if exclude_sa or test_set == "core":
        is_sa = lambda p: p.stem.upper().startswith("SA")  # noqa: E731
        test = [p for p in test if not is_sa(p)]
        train = [p for p in train if not (exclude_sa and is_sa(p))]
    if test_set == "core":
        test = [p for p in test if timit_speaker(p) in CORE_TEST_SPEAKERS]
        if not test:
            raise DataError(f"none of TIMIT's 24 core test speakers is under {test_dir}; use data.test_set=full")
    if val_split == "speaker":
        speakers = sorted({timit_speaker(p) for p in train})
        _, val_speakers = _hold_out(speakers, val_fraction, seed, "training speakers")
        val = [p for p in train if timit_speaker(p) in set(val_speakers)]
        return Splits(train=[p for p in train if p not in set(val)], val=val, test=test)
    kept, val = _hold_out(train, val_fraction, seed, "training utterances")
    return Splits(train=kept, val=val, test=test)


def split_folder(root: Path, val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0,
                 speaker_pattern: str | None = None) -> Splits:
    """Any folder of audio. With `speaker_pattern` (a regex whose first group, searched in the path
    relative to root, is the speaker) whole speakers go to val and test; else single files do."""
    layout = "any folder holding .wav/.flac/.ogg/.sph files (searched recursively)"
    root = _require_dir(root, layout)
    files = list_audio(root, AUDIO_EXTENSIONS, layout)
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < value < 1:
            raise DataError(f"data.{name} must lie in (0, 1), got {value}")
    if speaker_pattern is None:
        rest, test = _hold_out(files, test_fraction, seed, "audio files")
        train, val = _hold_out(rest, val_fraction / (1 - test_fraction), seed + 1, "audio files")
        return Splits(train=train, val=val, test=test)
    pattern = re.compile(speaker_pattern)
    speaker_of = {}
    for path in files:
        match = pattern.search(str(path.relative_to(root)))
        if match is None or not match.groups():
            raise DataError(f"data.speaker_pattern={speaker_pattern!r} finds no speaker group in {path}; "
                            "fix the regex (its first group is the speaker) or set data.speaker_pattern=null")
        speaker_of[path] = match.group(1)
    speakers = sorted(set(speaker_of.values()))
    rest, test_speakers = _hold_out(speakers, test_fraction, seed, "speakers")
    train_speakers, val_speakers = _hold_out(rest, val_fraction / (1 - test_fraction), seed + 1, "speakers")
    by = lambda group: [p for p in files if speaker_of[p] in set(group)]  # noqa: E731
    return Splits(train=by(train_speakers), val=by(val_speakers), test=by(test_speakers))
