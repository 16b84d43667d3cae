"""Finding the utterances of a TIMIT-layout corpus and splitting them.

Layout: ROOT/TRAIN/<dialect>/<speaker>/<utt>.WAV and ROOT/TEST/..., any letter case, optionally
with a data/ folder between ROOT and TRAIN/TEST (a common re-packaging).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from avrnn.data.errors import DataError

LAYOUT = "ROOT/TRAIN/DR1/FCJF0/SA1.WAV and ROOT/TEST/... (TIMIT layout)"


@dataclass(frozen=True)
class Splits:
    train: list[Path]
    val: list[Path]
    test: list[Path]


def _child(folder: Path, name: str) -> Path | None:
    matches = [p for p in folder.iterdir() if p.is_dir() and p.name.lower() == name]
    return matches[0] if matches else None


def find_split_dirs(root: Path) -> tuple[Path, Path]:
    """TRAIN and TEST folders of a TIMIT-layout root, or a DataError naming the expected layout."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data.root {root} does not exist; set data.root to a folder laid out as {LAYOUT}")
    for base in (root, _child(root, "data")):
        if base is None:
            continue
        train, test = _child(base, "train"), _child(base, "test")
        if train and test:
            return train, test
    hint = " (it looks like a split folder: point data.root at its parent)" if root.name.lower() in ("train", "test") else ""
    raise DataError(f"no TRAIN/ and TEST/ folders under data.root {root}{hint}; expected {LAYOUT}")


def list_audio(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".wav" and p.is_file())
    if not files:
        raise DataError(f"no .wav/.WAV files under {folder}; expected {LAYOUT}")
    return files


def split_corpus(root: Path, val_fraction: float, seed: int) -> Splits:
    """Official TEST for test; a seeded `val_fraction` of TRAIN utterances for validation."""
    if not 0 < val_fraction < 1:
        raise DataError(f"data.val_fraction must lie in (0, 1), got {val_fraction}")
    train_dir, test_dir = find_split_dirs(root)
    train = list_audio(train_dir)
    shuffled = train[:]
    random.Random(seed).shuffle(shuffled)
    n_val = max(1, round(val_fraction * len(train)))
    if n_val >= len(train):
        raise DataError(f"{train_dir} holds {len(train)} utterance(s): too few to hold out a validation split")
    val = set(shuffled[:n_val])
    return Splits(train=[p for p in train if p not in val], val=sorted(val), test=list_audio(test_dir))
