"""Finding the utterances of a corpus and splitting them into train / validation / test.

Two layouts:
  timit   ROOT/TRAIN/<dialect>/<speaker>/<utt>.WAV and ROOT/TEST/..., any letter case, optionally
          with a data/ folder between ROOT and TRAIN/TEST (a common re-packaging). Splits follow the
          published TIMIT results (FIVO's create_timit_dataset, SRNN): the official TEST set for test,
          a seeded fraction of TRAIN for validation.
  folder  any folder of audio, searched recursively; split by speaker when a regex on the path
          names the speaker, else by file, with a fixed seed.

What counts as one utterance (find_corpus): a file's path relative to the corpus root with every
audio suffix removed, case-folded, so that re-packaged copies (`SI1.WAV` beside a RIFF `SI1.WAV.wav`)
are one utterance and reach one split only; `spk1/001.wav` and `spk2/001.wav` stay two. Hidden
files, macOS resource forks (`._name.wav`) and `__MACOSX/` folders are not audio and are ignored.
Splitting takes the files that were found (and, in data.on_bad_file=skip, read), never the folder.
"""

from __future__ import annotations

import os
import posixpath
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from avrnn.data.errors import DataError
from avrnn.data.options import check_fraction, check_speaker_pattern, check_timit_choices
from avrnn.data.progress import counted

TIMIT_LAYOUT = "ROOT/TRAIN/DR1/FCJF0/SA1.WAV and ROOT/TEST/... (TIMIT layout)"
# file extensions of the formats libsndfile reads (soundfile.available_formats() says which this one
# has); RAW (headerless: no rate to read) and MAT (MATLAB files are not all audio) are not taken by name
FORMAT_EXTENSIONS = {"WAV": (".wav",), "WAVEX": (".wav",), "RF64": (".rf64",), "W64": (".w64",),
                     "FLAC": (".flac",), "OGG": (".ogg", ".oga", ".opus"), "MP3": (".mp3",),
                     "AIFF": (".aiff", ".aif", ".aifc"), "CAF": (".caf",), "AU": (".au", ".snd"),
                     "NIST": (".sph", ".nist"), "IRCAM": (".sf",), "VOC": (".voc",), "HTK": (".htk",),
                     "PAF": (".paf",), "SVX": (".8svx", ".iff"), "AVR": (".avr",), "SD2": (".sd2",),
                     "WVE": (".wve",), "XI": (".xi",), "MPC2K": (".mpc2k",), "SDS": (".sds",), "PVF": (".pvf",)}
AUDIO_EXTENSIONS = tuple(sorted({ext for name in sf.available_formats() for ext in FORMAT_EXTENSIONS.get(name, ())}
                                | {".wav", ".sph"}))  # TIMIT's .WAV is SPHERE: NIST is in every libsndfile
FOLDER_LAYOUT = "any folder of audio files libsndfile reads (.wav, .flac, .mp3, .sph, ...; searched recursively)"
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


def is_hidden(path: Path, root: Path) -> bool:
    """A hidden file or folder (`.name`, macOS resource forks `._name`) or macOS's `__MACOSX/`."""
    return any(part.startswith(".") or part == "__MACOSX" for part in path.relative_to(root).parts)


@dataclass(frozen=True)
class Unread:
    """A folder, link or file under the corpus that is not read: `path` (under data.root) and why."""
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path} ({self.reason})"


def _hidden_last(name: str) -> tuple[bool, str]:
    return name.startswith(".") or name == "__MACOSX", name


def walk_files(folder: Path, unread: list[Unread] | None = None, seen: dict | None = None) -> list[Path]:
    """Every file under `folder`, links to folders followed wherever they point (shared storage often
    links speaker folders in), each path kept as it lies under `folder` (the speaker is read from it, not
    from the link's target). A folder or file reached a second time, identified by device and inode, is not
    read again: a link back to a folder above it (a loop), a second way to a folder or file already read
    (its files would be two utterances, perhaps in two splits; pass one `seen` to several walks, e.g.
    TIMIT's TRAIN and TEST, to catch it across them). Ways are taken by name, hidden ones last, so that a
    hidden link never stands in for a folder. Links that lead nowhere and folders that cannot be listed
    are left out too. Each is added to `unread`."""
    unread = [] if unread is None else unread
    seen = {} if seen is None else seen
    first = os.stat(folder)
    seen.setdefault((first.st_dev, first.st_ino), Path(folder))
    files = []

    def cannot_list(error: OSError) -> None:
        unread.append(Unread(Path(error.filename), f"cannot be listed: {error.strerror}"))

    def first_time(path: Path, kind: str) -> bool:
        try:
            status = os.stat(path)
        except OSError as error:
            reason = "a link that leads nowhere" if path.is_symlink() else f"cannot be read: {error.strerror}"
            unread.append(Unread(path, reason))
            return False
        key = (status.st_dev, status.st_ino)
        if key not in seen:
            seen[key] = path
            return True
        earlier = seen[key]
        reason = (f"a loop: it leads back to {earlier}" if earlier in path.parents
                  else f"the same {kind} as {earlier}, read there")
        unread.append(Unread(path, reason))
        return False

    for current, folders, names in os.walk(folder, followlinks=True, onerror=cannot_list):
        current = Path(current)
        folders[:] = [name for name in sorted(folders, key=_hidden_last) if first_time(current / name, "folder")]
        files += [current / name for name in sorted(names, key=_hidden_last)
                  if (current / name).is_file() or (current / name).is_symlink()
                  if first_time(current / name, "file")]
    return sorted(files)


def list_audio(folder: Path, layout: str = TIMIT_LAYOUT, hidden: list[Path] | None = None,
               unread: list[Unread] | None = None, seen: dict | None = None,
               not_audio: list[Path] | None = None) -> list[Path]:
    """Audio files under `folder` (walk_files, sorted; by AUDIO_EXTENSIONS), hidden ones left out (and
    added to `hidden`), files of other kinds added to `not_audio`, what was not read added to `unread`."""
    every = walk_files(folder, unread, seen)
    ignored = {p for p in every if is_hidden(p, folder)}
    if hidden is not None:
        hidden.extend(sorted(ignored))
    if not_audio is not None:
        not_audio.extend(p for p in every if p not in ignored and p.suffix.lower() not in AUDIO_EXTENSIONS)
    files = [p for p in every if p not in ignored and p.suffix.lower() in AUDIO_EXTENSIONS]
    if not files:
        others = [p for p in every if p not in ignored]
        are = "is" if len(others) == 1 else "are"
        held = (f"its {counted(len(others), 'file')} {are} of no format libsndfile reads ({by_extension(others)})"
                if others else "it holds no files" + (f" but {counted(len(ignored), 'hidden one')}" if ignored else ""))
        raise DataError(f"no audio files under {folder}: {held}; expected {layout}")
    return files


def by_extension(paths: list[Path]) -> str:
    """e.g. ".txt: 10, .PHN: 4, no extension: 1", the most common first."""
    counts: dict[str, int] = {}
    for path in paths:
        counts[path.suffix or "no extension"] = counts.get(path.suffix or "no extension", 0) + 1
    return ", ".join(f"{ext}: {count}" for ext, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def utterance_id(path: Path, root: Path) -> str:
    """The path relative to `root` with every audio suffix removed, case-folded: TRAIN/DR1/FCJF0/SI1.WAV
    and TRAIN/DR1/FCJF0/SI1.WAV.wav are one utterance, spk1/001.wav and spk2/001.wav two."""
    relative = path.relative_to(root)
    name = relative.name
    while Path(name).suffix.lower() in AUDIO_EXTENSIONS:
        name = name[: -len(Path(name).suffix)]
    return (relative.parent / name).as_posix().casefold()


def is_sphere(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(7) == b"NIST_1A"
    except OSError:
        return False


def is_readable(path: Path) -> bool:
    """Whether libsndfile can open the file (a shorten-compressed SPHERE file it cannot)."""
    try:
        sf.info(str(path))
        return True
    except (sf.LibsndfileError, RuntimeError, OSError):
        return False


# libsndfile's subtypes that drop information (perceptual codecs, ADPCM, GSM, 8-bit mu-law and A-law):
# another copy is kept first (DWVW and FLAC are lossless compressions)
LOSSY_SUBTYPES = frozenset({"VORBIS", "OPUS", "MPEG_LAYER_I", "MPEG_LAYER_II", "MPEG_LAYER_III", "GSM610",
                            "IMA_ADPCM", "MS_ADPCM", "VOX_ADPCM", "G721_32", "G723_24", "G723_40",
                            "NMS_ADPCM_16", "NMS_ADPCM_24", "NMS_ADPCM_32", "ULAW", "ALAW"})


def is_lossy(path: Path) -> bool:
    """Whether libsndfile reads the file as a lossy encoding (LOSSY_SUBTYPES: mp3, Ogg Vorbis, Opus, ...)."""
    try:
        return sf.info(str(path)).subtype in LOSSY_SUBTYPES
    except (sf.LibsndfileError, RuntimeError, OSError):
        return False


def _preference(path: Path) -> tuple:
    """Which copy of an utterance is kept: a readable one (a PCM conversion beside a shorten original),
    a lossless one among those (a .wav or .flac before its .mp3), a NIST SPHERE file (TIMIT's original)
    among those, then the one with the fewest suffixes (the name it was distributed under), then by name."""
    return (not is_readable(path), is_lossy(path), not is_sphere(path), len(path.suffixes), str(path))


@dataclass(frozen=True)
class Found:
    """The audio of a corpus, one file per utterance: `pools` (timit: train and test; folder: all),
    `copies` (kept file -> the other copies of its utterance, left out), `hidden` (ignored files),
    `unread` (loops, second ways to a folder or file, links that lead nowhere, folders not listable) and
    `not_audio` (files of no format libsndfile reads) and `outside_splits` (timit layout: files outside
    TRAIN/ and TEST/, e.g. DOC/)."""
    root: Path
    pools: dict[str, list[Path]]
    copies: dict[Path, list[Path]]
    hidden: list[Path]
    unread: list[Unread] = field(default_factory=list)
    not_audio: list[Path] = field(default_factory=list)
    outside_splits: list[Path] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        return [p for pool in self.pools.values() for p in pool]


def one_copy_each(files: list[Path], root: Path) -> tuple[list[Path], dict[Path, list[Path]]]:
    """(one file per utterance, in the order of `files`; kept file -> its other copies)."""
    by_id: dict[str, list[Path]] = {}
    for path in files:
        by_id.setdefault(utterance_id(path, root), []).append(path)
    copies = {}
    for group in by_id.values():
        if len(group) > 1:
            kept, *others = sorted(group, key=_preference)
            copies[kept] = others
    dropped = {p for others in copies.values() for p in others}
    return [p for p in files if p not in dropped], copies


def find_corpus(root: Path, layout: str) -> Found:
    """The utterances of a corpus (see the module's docstring), or a DataError naming the layout."""
    hidden: list[Path] = []
    unread: list[Unread] = []
    not_audio: list[Path] = []
    outside: list[Path] = []
    if layout == "timit":
        train_dir, test_dir = find_split_dirs(root)
        seen: dict = {}  # one folder or file linked into both TRAIN and TEST is read once
        pools = {"train": list_audio(train_dir, hidden=hidden, unread=unread, seen=seen, not_audio=not_audio),
                 "test": list_audio(test_dir, hidden=hidden, unread=unread, seen=seen, not_audio=not_audio)}
        outside = [p for p in walk_files(Path(root), [], dict(seen))  # DOC/, README: not read, counted
                   if not is_hidden(p, Path(root)) and train_dir not in p.parents and test_dir not in p.parents]
    else:
        pools = {"all": list_audio(_require_dir(root, FOLDER_LAYOUT), FOLDER_LAYOUT, hidden, unread,
                                   not_audio=not_audio)}
    root = Path(root)
    unread.sort(key=lambda item: str(item.path))
    copies: dict[Path, list[Path]] = {}
    for name, files in pools.items():
        pools[name], found = one_copy_each(files, root)
        copies.update(found)
    return Found(root=root, pools=pools, copies=copies, hidden=hidden, unread=unread, not_audio=sorted(not_audio),
                 outside_splits=sorted(outside))


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
    """split_timit_files of the utterances found under `root` (find_corpus)."""
    found = find_corpus(root, "timit")
    return split_timit_files(found.pools["train"], found.pools["test"], val_fraction, seed, test_set, val_split,
                             exclude_sa)


def timit_candidates(train: list[Path], test: list[Path], test_set: str = "full",
                     exclude_sa: bool = False) -> tuple[list[Path], list[Path]]:
    """The files the options leave in play, before any random choice: SA sentences out (exclude_sa, and
    always from the core test set), only the 24 core speakers in test (test_set=core). Idempotent."""
    if exclude_sa or test_set == "core":
        is_sa = lambda p: Path(p.stem).stem.upper().startswith("SA")  # noqa: E731
        test = [p for p in test if not is_sa(p)]
        train = [p for p in train if not (exclude_sa and is_sa(p))]
    if test_set == "core":
        test = [p for p in test if timit_speaker(p) in CORE_TEST_SPEAKERS]
        if not test:
            raise DataError("none of TIMIT's 24 core test speakers is in the TEST folder; use data.test_set=full")
    return train, test


def split_timit_files(train: list[Path], test: list[Path], val_fraction: float = 0.05, seed: int = 0,
                      test_set: str = "full", val_split: str = "utterance", exclude_sa: bool = False) -> Splits:
    """TIMIT splits. Utterance counts on the real corpus (TRAIN 4,620 = 462 speakers x 10):

    default                      train 4,389  val 231  test 1,680 (168 speakers x 10, SA included)
    test_set=core                test 192 (24 core speakers x 8; SA sentences never in the core set)
    exclude_sa=true              train 3,511  val 185  test 1,344 (core: 192)
    val_split=speaker            val = all utterances of 23 held-out speakers (230; 184 without SA)
    """
    check_fraction("val_fraction", val_fraction)
    check_timit_choices(test_set, val_split)
    train, test = timit_candidates(train, test, test_set, exclude_sa)
    if val_split == "speaker":
        speakers = sorted({timit_speaker(p) for p in train})
        _, val_speakers = _hold_out(speakers, val_fraction, seed, "training speakers")
        val = [p for p in train if timit_speaker(p) in set(val_speakers)]
        return Splits(train=[p for p in train if p not in set(val)], val=val, test=test)
    kept, val = _hold_out(train, val_fraction, seed, "training utterances")
    return Splits(train=kept, val=val, test=test)


def split_folder(root: Path, val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0,
                 speaker_pattern: str | None = None) -> Splits:
    """split_folder_files of the utterances found under `root` (find_corpus)."""
    return split_folder_files(find_corpus(root, "folder").pools["all"], root, val_fraction, test_fraction, seed,
                              speaker_pattern)


def split_folder_files(files: list[Path], root: Path, val_fraction: float = 0.1, test_fraction: float = 0.1,
                       seed: int = 0, speaker_pattern: str | None = None) -> Splits:
    """Any folder of audio. With `speaker_pattern` (a regex whose first group, searched in the path
    relative to root, is the speaker) whole speakers go to val and test; else single files do."""
    root = Path(root)
    check_fraction("val_fraction", val_fraction)
    check_fraction("test_fraction", test_fraction)
    check_speaker_pattern(speaker_pattern)
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


SPLITS = ("train", "val", "test")


def read_file_list(path: Path, label: str = "the list") -> list[str]:
    """The file names a list holds: one path relative to the corpus folder per line, blank lines and lines
    starting with # skipped, each normalised (./a.wav and a//b.wav name a.wav and a/b.wav). Raises DataError,
    starting with `label`, for a list that cannot be read, is empty or names a path outside the corpus folder."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{label}: cannot read {path} ({error}); give a text file of paths relative to data.root, "
                        "one per line") from None
    names = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not names:
        raise DataError(f"{label}: {path} lists no files; give one path per line")
    for index, name in enumerate(names):
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise DataError(f"{label}: {name!r} in {path} is not a path inside data.root; write it relative to "
                            "data.root")
        names[index] = posixpath.normpath(name)
    return names


def read_split_lists(root: Path, lists: dict[str, str]) -> dict[str, list[str]]:
    """data.split_lists: split -> the file names its list holds (read_file_list). A list path that is relative
    is read relative to data.root. Raises DataError for a list read_file_list refuses or an utterance listed
    twice."""
    root, entries, where = Path(root), {}, {}
    for split in SPLITS:
        names = read_file_list(root / lists[split], f"data.split_lists.{split}")
        for name in names:
            utterance = utterance_id(root / name, root)  # a.WAV and its copy a.WAV.wav are one utterance
            if utterance in where:
                raise DataError(f"data.split_lists: {name} is {where[utterance][1]}'s utterance, listed twice "
                                f"({where[utterance][0]} and {split}); each utterance belongs to one split")
            where[utterance] = (split, name)
        entries[split] = names
    return entries


def split_listed_files(files: list[Path], root: Path, entries: dict[str, list[str]],
                       unreadable: set[Path] = frozenset()) -> Splits:
    """The splits data.split_lists names (read_split_lists), in each list's order, from the audio files found
    under root (`files`; skipped `unreadable` ones are left out). Raises DataError naming a listed file that is
    not among them."""
    root = Path(root)
    by_name = {path.relative_to(root).as_posix(): path for path in files}
    splits = {}
    for split in SPLITS:
        missing = [name for name in entries[split] if name not in by_name and root / name not in unreadable]
        if missing:
            what = "is not an audio file" if len(missing) == 1 else "are not audio files"
            raise DataError(f"data.split_lists.{split} lists {counted(len(missing), 'file')} that {what} under "
                            f"{root}, e.g. {missing[0]}; fix the list or data.root")
        splits[split] = [by_name[name] for name in entries[split] if name in by_name]
        if not splits[split]:
            raise DataError(f"every file data.split_lists.{split} lists was unreadable or too short; check the "
                            "files or data.frame_size")
    return Splits(**splits)
