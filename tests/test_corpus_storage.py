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
    assert [str(link) for link in found.links] == [
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
    (warning,) = [r.getMessage() for r in caplog.records if "not followed" in r.getMessage()]
    assert warning.startswith("data: 3 link(s) under data.root not followed: ") and "(a loop: it leads back to" \
        in warning


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


def test_a_wav_whose_riff_size_promises_more_than_the_file_holds_is_named(tmp_path):
    data = bytearray(wav_bytes(800))
    data += b"LIST" + struct.pack("<I", 100) + b"INFO"  # a trailing chunk cut after 4 of its 100 bytes
    data[4:8] = struct.pack("<I", len(data) - 8 + 96)
    path = tmp_path / "cut_list.wav"
    path.write_bytes(bytes(data))
    assert shortfall(path) == f"its RIFF header promises {len(data) + 96} bytes, the file holds {len(data)}"


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


@pytest.mark.parametrize("make, samples", [
    (lambda: streaming(wav_bytes(800), 0xFFFFFFFF), 800),
    (lambda: streaming(wav_bytes(800), 0), 800),
    (odd_without_pad, 801),
    (lambda: wav_bytes(800), 800),
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
