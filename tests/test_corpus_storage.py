"""Corpora as they are stored: speaker folders linked in from elsewhere (followed; loops and second ways
to a folder named and read once), and files cut short (a header promising more than the file holds:
named in one line, or skipped with data.on_bad_file=skip; never read as a shorter utterance)."""

import logging
import os
import struct

import numpy as np
import pytest
import soundfile as sf

from avrnn.data import audio
from avrnn.data.audio import read_audio
from avrnn.data.corpus import find_corpus, split_folder_files
from avrnn.data.datamodule import SpeechDataModule
from avrnn.data.errors import DataError
from avrnn.data.headers import shortfall
from avrnn.data.options import DataOptions

RATE = 8000


def speech(index: int, n: int = 1600) -> np.ndarray:
    return (0.3 * np.sin(np.arange(n) * (0.05 + 0.01 * index))).astype(np.float32)


def speaker_folder(folder, name: str, files: int = 2):
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        sf.write(folder / f"{name}_{index}.wav", speech(index), RATE, subtype="PCM_16")
    return folder


def linked_corpus(tmp_path):
    """data.root holds two speaker folders and links to three more kept elsewhere (shared storage), plus a
    link from a speaker folder back to data.root (a loop) and a second link to one linked speaker."""
    root, store = tmp_path / "corpus", tmp_path / "store"
    for speaker in ("anna", "ben"):
        speaker_folder(root / speaker, speaker)
    for speaker in ("cleo", "dan", "eve"):
        os.symlink(speaker_folder(store / f"volume_{speaker}", speaker), root / speaker)
    os.symlink(root, root / "anna" / "again")  # a loop
    os.symlink(store / "volume_eve", root / "eve_too")  # eve's folder a second time
    os.symlink(tmp_path / "gone", root / "lost")  # leads nowhere
    return root


def test_linked_speaker_folders_are_read_under_their_link_names(tmp_path):
    root = linked_corpus(tmp_path)
    found = find_corpus(root, "folder")
    assert sorted(str(p.relative_to(root)) for p in found.files) == [
        f"{speaker}/{speaker}_{index}.wav" for speaker in ("anna", "ben", "cleo", "dan", "eve") for index in (0, 1)]
    assert [str(item) for item in found.unread] == [
        f"{root / 'anna' / 'again'} (a loop: it leads back to {root})",
        f"{root / 'eve_too'} (the same folder as {root / 'eve'}, read there)",
        f"{root / 'lost'} (a link that leads nowhere)",
    ]
    # the speaker comes from the path under data.root, not from the link's target (volume_<name>)
    splits = split_folder_files(found.files, root, val_fraction=0.2, test_fraction=0.2, seed=0,
                                speaker_pattern=r"^([a-z]+)/")
    by_split = {name: {p.relative_to(root).parts[0] for p in files} for name, files in splits.as_dict().items()}
    assert set().union(*by_split.values()) == {"anna", "ben", "cleo", "dan", "eve"}
    assert sum(len(s) for s in by_split.values()) == 5  # each speaker in one split


def test_the_data_module_reads_every_linked_file_and_names_the_links_it_did_not_follow(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    root = linked_corpus(tmp_path)
    dm = SpeechDataModule(DataOptions(root=str(root), layout="folder", frame_size=200, cache_dir=None,
                                      sample_rate=RATE))
    dm.setup()
    assert sum(len(paths) for paths in dm.paths.values()) == 10
    (warning,) = [r.getMessage() for r in caplog.records if "not read" in r.getMessage()]
    assert warning.startswith("data: 3 paths under data.root not read (folders, links or files): ") and \
        "(a loop: it leads back to" in warning


def test_a_hidden_link_never_stands_in_for_the_folder_it_points_to(tmp_path):
    root = tmp_path / "corpus"
    for speaker in ("anna", "ben"):
        speaker_folder(root / speaker, speaker)
    os.symlink(root / "ben", root / ".backup_ben")  # sorts before "ben" by name
    found = find_corpus(root, "folder")
    assert sorted(str(p.relative_to(root)) for p in found.files) == [
        "anna/anna_0.wav", "anna/anna_1.wav", "ben/ben_0.wav", "ben/ben_1.wav"]
    assert [str(item) for item in found.unread] == [f"{root / '.backup_ben'} (the same folder as {root / 'ben'}, "
                                                    "read there)"]


def test_a_file_linked_in_twice_is_one_utterance(tmp_path):
    root = tmp_path / "corpus"
    for speaker in ("anna", "cleo"):
        speaker_folder(root / speaker, speaker)
    os.symlink(root / "anna" / "anna_0.wav", root / "cleo" / "cleo_dup.wav")
    found = find_corpus(root, "folder")
    assert len(found.files) == 4 and root / "cleo" / "cleo_dup.wav" not in found.files
    assert [str(item) for item in found.unread] == [
        f"{root / 'cleo' / 'cleo_dup.wav'} (the same file as {root / 'anna' / 'anna_0.wav'}, read there)"]


def test_a_timit_speaker_linked_into_both_train_and_test_is_read_in_train_only(tmp_path):
    root = tmp_path / "timit"
    for split, speaker in (("TRAIN", "FAKS0"), ("TRAIN", "MDAC0"), ("TEST", "MDAB0")):
        speaker_folder(root / split / "DR1" / speaker, "SI")
    os.symlink(root / "TRAIN" / "DR1" / "FAKS0", root / "TEST" / "DR1" / "FAKS0")
    found = find_corpus(root, "timit")
    assert {p.parent.name for p in found.pools["train"]} == {"FAKS0", "MDAC0"}
    assert {p.parent.name for p in found.pools["test"]} == {"MDAB0"}
    assert [str(item) for item in found.unread] == [
        f"{root / 'TEST' / 'DR1' / 'FAKS0'} (the same folder as {root / 'TRAIN' / 'DR1' / 'FAKS0'}, read there)"]


def test_a_folder_that_cannot_be_listed_is_named(tmp_path, monkeypatch):
    """As a folder without read permission does for any user but root (tests may run as root)."""
    root = tmp_path / "corpus"
    for speaker in ("anna", "ben"):
        speaker_folder(root / speaker, speaker)
    listing = os.scandir

    def scandir(path):
        if os.fspath(path) == str(root / "ben"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return listing(path)
    monkeypatch.setattr(os, "scandir", scandir)  # what os.walk lists folders with
    found = find_corpus(root, "folder")
    assert [str(item) for item in found.unread] == [f"{root / 'ben'} (cannot be listed: Permission denied)"]
    assert [p.parent.name for p in found.files] == ["anna", "anna"]


def wav_bytes(samples: int, subtype: str = "PCM_16", format: str = "WAV") -> bytes:
    path_like = __import__("io").BytesIO()
    sf.write(path_like, speech(0, samples), RATE, subtype=subtype, format=format)
    return path_like.getvalue()


def sphere_cut_short(path, promised: int = 8000, held: int = 300):
    sf.write(path, speech(0, promised), RATE, format="NIST", subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[:1024 + 2 * held])  # the header says sample_count 8000; 300 samples follow it


@pytest.mark.parametrize("name, make, words", [
    ("cut.sph", lambda p: sphere_cut_short(p),
     "its NIST SPHERE header promises 8000 samples (sample_count), the file holds 300"),
    ("cut.wav", lambda p: p.write_bytes(wav_bytes(8000)[:44 + 600]),
     "its data chunk promises 8000 samples (16000 bytes), the file holds 300"),
    ("cut_float.wav", lambda p: p.write_bytes(wav_bytes(8000, "FLOAT")[:-4 * 7000]),
     "its data chunk promises 8000 samples (32000 bytes), the file holds 1000"),
    ("cut.rf64", lambda p: p.write_bytes(wav_bytes(8000, format="RF64")[:-2 * 7700]),
     "its data chunk promises 8000 samples (16000 bytes), the file holds 300"),
])
def test_a_file_cut_short_is_named_with_what_its_header_promises(tmp_path, name, make, words):
    path = tmp_path / name
    make(path)
    assert shortfall(path) == words
    with pytest.raises(DataError) as refused:
        read_audio(path, RATE)
    assert str(refused.value) == (f"{path} is cut short: {words} (a copy or download that stopped early?); copy it "
                                  "again, delete it, or set data.on_bad_file=skip")


def test_where_the_data_size_is_unknown_the_riff_size_says_what_the_file_must_hold(tmp_path):
    data = bytearray(streaming(wav_bytes(800), 0xFFFFFFFF))  # a streaming writer's data size ...
    data[4:8] = struct.pack("<I", len(data) - 8 + 200)  # ... and a RIFF size written at the end, 200 bytes ago
    path = tmp_path / "cut_stream.wav"
    path.write_bytes(bytes(data))
    assert shortfall(path) == f"its RIFF header promises {len(data) + 200} bytes, the file holds {len(data)}"


def test_a_compressed_wav_cut_short_counts_bytes_not_samples(tmp_path):
    path = tmp_path / "adpcm.wav"
    sf.write(path, speech(0, 8000), RATE, subtype="IMA_ADPCM")
    data = path.read_bytes()
    path.write_bytes(data[:-2000])
    at = data.find(b"data")
    promised = struct.unpack("<I", data[at + 4:at + 8])[0]
    assert shortfall(path) == f"its data chunk promises {promised} bytes, the file holds {promised - 2000}"


def streaming(data: bytes, value: int) -> bytes:
    """A WAV whose RIFF and data sizes are a streaming writer's placeholder."""
    data = bytearray(data)
    at = data.find(b"data")
    data[4:8] = struct.pack("<I", value)
    data[at + 4:at + 8] = struct.pack("<I", value)
    return bytes(data)


def odd_without_pad(samples: int = 801) -> bytes:
    """8-bit mono with an odd number of samples: an odd data chunk, its pad byte left out (RIFF size counts it)."""
    data = bytearray(wav_bytes(samples, "PCM_U8"))
    if len(data) % 2 == 0 and data[-1] == 0:
        data = data[:-1]
    data[4:8] = struct.pack("<I", len(data) + 1 - 8)
    return bytes(data)


def riff_size_of_the_whole_file(data: bytes) -> bytes:
    """A known writer's bug: the RIFF size set to the file's length, not the length less 8."""
    return data[:4] + struct.pack("<I", len(data)) + data[8:]


def rf64_streamed(data: bytes) -> bytes:
    """RF64 as a streaming writer leaves it: ds64's sizes 0, the data chunk's 0xFFFFFFFF."""
    data = bytearray(data)
    data[20:36] = bytes(16)  # ds64: RIFF size and data size unknown
    return bytes(data)


def empty_data_then_list(data: bytes) -> bytes:
    """A real (non-placeholder) RIFF size, an empty data chunk, then a LIST chunk: no samples."""
    at = data.find(b"data")
    head = bytearray(data[:at]) + b"data" + struct.pack("<I", 0) + b"LIST" + struct.pack("<I", 4) + b"INFO"
    head[4:8] = struct.pack("<I", len(head) - 8)
    return bytes(head)


@pytest.mark.parametrize("make, samples", [
    (lambda: streaming(wav_bytes(800), 0xFFFFFFFF), 800),
    (lambda: streaming(wav_bytes(800), 0), 800),  # libsndfile alone would read no samples
    (lambda: streaming(wav_bytes(800), 0x7FFFF000), 800),  # SoX writing to a pipe
    (lambda: rf64_streamed(wav_bytes(800, format="RF64")), 800),
    (lambda: riff_size_of_the_whole_file(wav_bytes(800)), 800),
    (odd_without_pad, 801),
    (lambda: wav_bytes(800), 800),
    (lambda: empty_data_then_list(wav_bytes(800)), 0),  # the LIST chunk is not audio
])
def test_streaming_placeholders_and_pad_bytes_are_whole_files(tmp_path, make, samples):
    path = tmp_path / "whole.wav"
    path.write_bytes(make())
    assert shortfall(path) is None
    assert len(read_audio(path, RATE)) == samples


def test_a_whole_sphere_file_promises_what_it_holds(tmp_path):
    path = tmp_path / "whole.sph"
    sf.write(path, speech(0, 8000), RATE, format="NIST", subtype="PCM_16")
    assert shortfall(path) is None and len(read_audio(path, RATE)) == 8000


def test_a_flac_file_cut_short_is_named(tmp_path):
    path = tmp_path / "cut.flac"
    sf.write(path, speech(0, 8000), RATE, format="FLAC", subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:-3000])
    with pytest.raises(DataError, match=f"^cannot read audio file {path} "):
        read_audio(path, RATE)


def test_fewer_samples_decoded_than_the_header_promises_is_named(tmp_path, monkeypatch):
    """Where libsndfile itself reports the promised count (FLAC's STREAMINFO) and decodes fewer."""
    path = tmp_path / "short.flac"
    sf.write(path, speech(0, 800), RATE, format="FLAC", subtype="PCM_16")
    real = sf.SoundFile

    class Promising(real):
        frames = 8000
    monkeypatch.setattr(audio.sf, "SoundFile", Promising)
    with pytest.raises(DataError, match=r"is cut short: its header promises 8000 samples, 800 decode \("):
        read_audio(path, RATE)


def test_a_file_cut_short_is_skipped_and_counted_with_on_bad_file_skip(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    root = tmp_path / "corpus"
    for speaker in ("anna", "ben", "cleo", "dan", "eve"):
        speaker_folder(root / speaker, speaker)
    sphere_cut_short(root / "anna" / "anna_9.sph")
    options = dict(root=str(root), layout="folder", frame_size=200, cache_dir=None, sample_rate=RATE)
    with pytest.raises(DataError, match=f"^{root / 'anna' / 'anna_9.sph'} is cut short: "):
        SpeechDataModule(DataOptions(**options)).setup()
    dm = SpeechDataModule(DataOptions(**options, on_bad_file="skip"))
    dm.setup()
    assert dm.skipped == [str(root / "anna" / "anna_9.sph")]
    assert sum(len(paths) for paths in dm.paths.values()) == 10
