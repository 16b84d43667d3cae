"""Corpora as users have them (field reports): copies of one utterance, corrupt samples, resource-fork
files, odd sample rates and SPHERE codings libsndfile cannot read. Each builds its input in tmp_path
and asserts the right value."""

import hashlib
import itertools
import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from avrnn.data import cache
from avrnn.data.audio import MAX_FLOAT_AMPLITUDE, read_audio, resample, write_sphere
from avrnn.data.corpus import CORE_TEST_SPEAKERS, find_corpus, one_copy_each, utterance_id
from avrnn.data.datamodule import SpeechDataModule
from avrnn.data.errors import DataError
from avrnn.data.framing import MIN_STD, Normalization
from avrnn.data.options import DataOptions

TRAIN = ["DR1/FAAA0", "DR1/MBBB0", "DR2/FCCC0", "DR2/MDDD0"]
TEST = ["DR1/MDAB0", "DR1/MXYZ0"]  # MDAB0 is a core test speaker
SENTENCES = ["SA1", "SA2", "SI1", "SX1", "SX2"]
assert "MDAB0" in CORE_TEST_SPEAKERS


def tone(index: int, n: int = 1600, rate: int = 16000) -> np.ndarray:
    t = np.arange(n) / rate
    noise = 0.02 * np.random.default_rng(index).standard_normal(n)
    return (0.3 * np.sin(2 * np.pi * (110 + 10 * index) * t) + noise).astype(np.float32)


def make_timit(root, twins=False):
    """A miniature TIMIT (SPHERE); with twins, each file also as a RIFF copy `X.WAV.wav`."""
    index = 0
    for split, speakers in (("TRAIN", TRAIN), ("TEST", TEST)):
        for speaker in speakers:
            for sentence in SENTENCES:
                path = root / split / speaker / f"{sentence}.WAV"
                write_sphere(path, tone(index), 16000)
                if twins:
                    sf.write(f"{path}.wav", tone(index), 16000, subtype="PCM_16")
                index += 1
    return root


def make_folder(root, count=10, subtype="PCM_16"):
    root.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        sf.write(str(root / f"{index:02d}_{'abcde'[index % 5]}.wav"), tone(index), 16000, subtype=subtype)
    return root


def module(root, **options) -> SpeechDataModule:
    dm = SpeechDataModule(DataOptions(root=str(root), **options))
    dm.setup()
    return dm


def test_the_resampling_lines_count_only_the_files_used(tmp_path, caplog):
    """A skipped file at another rate was counted as resampled, and towards "N of M files ... upsampled"."""
    root = make_folder(tmp_path / "r")
    sf.write(str(root / "10_a.wav"), tone(10, 800, 8000), 8000, subtype="PCM_16")  # used: upsampled
    sf.write(str(root / "11_b.wav"), tone(11, 50, 8000), 8000, subtype="PCM_16")  # read, resampled, too short for
    # one frame, skipped: not counted
    with caplog.at_level(logging.INFO):
        module(root, layout="folder", val_fraction=0.2, test_fraction=0.2, on_bad_file="skip")
    assert "data: resampled 1 file from 8000 Hz to data.sample_rate=16000 Hz (soxr)" in caplog.messages
    assert [m for m in caplog.messages if "upsampled" in m] == [
        "data: 1 of 11 files (at 8000 Hz) was upsampled to 16000 Hz: nothing above 4000 Hz is in it, and a model of "
        "those frequencies (a spectrogram's upper bins) learns the resampler from it; move it out of data.root if the "
        "rest of the corpus is what you mean to model"]


def test_the_skipped_files_line_names_three_with_their_faults_and_counts_the_rest(tmp_path, caplog):
    root = make_folder(tmp_path / "corpus", count=14, subtype="FLOAT")
    for index in range(4):
        broken = tone(index)
        broken[10 * (index + 1)] = np.nan
        sf.write(str(root / f"{index:02d}_{'abcde'[index % 5]}.wav"), broken, 16000, subtype="FLOAT")
    with caplog.at_level(logging.WARNING):
        dm = module(root, layout="folder", on_bad_file="skip")
    assert len(dm.skipped) == 4
    (line,) = [message for message in caplog.messages if "bad file" in message]
    named = "; ".join(f"{root / name}: holds 1 non-finite sample (NaN or infinity; the first at sample {sample})"
                      for name, sample in (("00_a.wav", 10), ("01_b.wav", 20), ("02_c.wav", 30)))
    assert line == f"data: skipped 4 bad files (data.on_bad_file=skip): {named}; and 1 more"


def test_each_kind_of_skipped_file_is_named_once_with_its_fault(tmp_path, caplog):
    """Unreadable, another rate with resampling off, shorter than a frame: the fault without the fix, and the
    path once (libsndfile's own message repeats it)."""
    root = make_folder(tmp_path / "corpus", count=14)
    (root / "00_a.wav").write_bytes(b"not audio at all" * 64)
    sf.write(str(root / "01_b.wav"), tone(1, rate=8000), 8000)
    sf.write(str(root / "02_c.wav"), tone(2, n=100), 16000)
    with caplog.at_level(logging.WARNING):
        module(root, layout="folder", on_bad_file="skip", resample=False, frame_size=200)
    (line,) = [message for message in caplog.messages if "bad file" in message]
    unreadable, rate, short = line.split(": ", 1)[1].removeprefix("skipped 3 bad files (data.on_bad_file=skip): ") \
        .split("; ")
    assert unreadable.startswith(f"{root / '00_a.wav'}: cannot be read (") and line.count(str(root / "00_a.wav")) == 1
    assert rate == f"{root / '01_b.wav'}: has sample rate 8000 Hz, not data.sample_rate=16000 (data.resample=false)"
    assert short == f"{root / '02_c.wav'}: is shorter than one frame (100 < data.frame_size=200 samples)"


def ids(dm: SpeechDataModule) -> dict[str, set[str]]:
    return {split: {utterance_id(Path(p), dm.root) for p in paths}
            for split, paths in dm.paths.items()}


# --- 1. several copies of one utterance ---------------------------------------------------------
def test_utterance_identity_removes_every_audio_suffix_and_case():
    root = Path("/corpus")
    assert utterance_id(root / "TRAIN/DR1/F/SI1.WAV", root) == utterance_id(root / "TRAIN/DR1/F/si1.wav.WAV", root)
    assert utterance_id(root / "TRAIN/DR1/F/SI1.WAV.wav", root) == "train/dr1/f/si1"
    assert utterance_id(root / "spk1/001.wav", root) != utterance_id(root / "spk2/001.wav", root)


TIMIT_OPTIONS = [dict(test_set=t, val_split=v, exclude_sa=e)
                 for t, v, e in itertools.product(("full", "core"), ("utterance", "speaker"), (False, True))]


@pytest.mark.parametrize("options", TIMIT_OPTIONS, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_timit_twins_are_one_utterance_in_one_split(tmp_path, caplog, options):
    plain = module(make_timit(tmp_path / "plain"), val_fraction=0.25, **options)
    with caplog.at_level(logging.WARNING):
        twins = module(make_timit(tmp_path / "twins", twins=True), val_fraction=0.25, **options)
    found = ids(twins)
    assert not (found["train"] & found["val"]) and not (found["train"] & found["test"]) \
        and not (found["val"] & found["test"])
    assert found == ids(plain)  # exactly the split of the corpus without copies
    assert all(p.endswith(".WAV") for paths in twins.paths.values() for p in paths)  # the SPHERE original kept
    used = {path for paths in twins.paths.values() for path in paths}  # the RIFF twin of each is left out; those of
    said = re.search(rf"data: {len(used)} files are further copies of utterances already found \(the same path "  # SA
                     r"without its audio suffixes: e\.g\. (\S+) is used, (\S+) is not\)", caplog.text)  # or core: not
    assert said and said[1] in used and said[2] == f"{said[1]}.wav", caplog.text  # counted, never the example
    for split in ("train", "val", "test"):
        assert all(torch.equal(a, b) for a, b in zip(plain.frames[split], twins.frames[split]))


@pytest.mark.parametrize("lossy", [("mp3", "MP3", "MPEG_LAYER_III"), ("ogg", "OGG", "VORBIS"),
                                   ("opus", "OGG", "OPUS"), ("au", "AU", "ULAW")], ids=lambda lossy: lossy[0])
def test_of_copies_in_a_lossless_and_a_lossy_format_the_lossless_one_is_kept(tmp_path, lossy):
    extension, container, subtype = lossy
    if container not in sf.available_formats():
        pytest.skip(f"this libsndfile ({sf.__libsndfile_version__}) has no {container}")
    samples = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype("float32")
    for name in ("a.flac", "b.wav"):
        sf.write(str(tmp_path / name), samples, 16000)
    for name in (f"a.{extension}", f"b.{extension}"):  # by name the lossy copy sorts after a.flac, before b.wav
        sf.write(str(tmp_path / name), samples, 16000, format=container, subtype=subtype)
    kept, copies = one_copy_each(sorted(tmp_path.iterdir()), tmp_path)
    assert kept == [tmp_path / "a.flac", tmp_path / "b.wav"]
    assert copies == {tmp_path / "a.flac": [tmp_path / f"a.{extension}"], tmp_path / "b.wav": [tmp_path / f"b.{extension}"]}


@pytest.mark.parametrize("pattern", [None, r"_([a-e])\."])
def test_folder_copies_are_one_utterance_in_one_split(tmp_path, caplog, pattern):
    plain = make_folder(tmp_path / "plain")
    twins = make_folder(tmp_path / "twins")
    for path in sorted(twins.glob("*.wav"))[:4]:
        samples, rate = sf.read(str(path), dtype="int16")
        sf.write(str(path.with_suffix(".flac")), samples, rate)  # 00_a.flac beside 00_a.wav: the same samples
    options = dict(layout="folder", val_fraction=0.2, test_fraction=0.2, speaker_pattern=pattern)
    with caplog.at_level(logging.WARNING):
        dm = module(twins, **options)
    found = ids(dm)
    assert sum(map(len, found.values())) == 10 and not (found["train"] & (found["val"] | found["test"]))
    assert found == ids(module(plain, **options))
    assert "4 files are further copies" in caplog.text and "differ" not in caplog.text
    caplog.clear()
    (twins / "00_a.flac").rename(tmp_path / "00_a.flac")  # no longer a copy: three remain
    for path in sorted(twins.glob("*.flac"))[1:]:
        path.unlink()
    with caplog.at_level(logging.WARNING):
        module(twins, **options)
    assert (f"data: 1 file is a further copy of an utterance already found (the same path without its audio "
            f"suffixes: e.g. {twins / '01_b.flac'} is used, {twins / '01_b.wav'} is not)") in caplog.text


def test_copies_whose_samples_differ_are_reported(tmp_path, caplog):
    root = make_timit(tmp_path / "twins", twins=True)
    other = root / "TRAIN/DR1/FAAA0/SI1.WAV.wav"
    sf.write(str(other), tone(99), 16000, subtype="PCM_16")
    with caplog.at_level(logging.WARNING):
        module(root, val_fraction=0.25)
    assert f"1 utterance has copies whose samples differ, e.g. {root / 'TRAIN/DR1/FAAA0/SI1.WAV'} (used) and {other}" \
        in caplog.text


# --- 2. corrupt samples -------------------------------------------------------------------------
@pytest.mark.parametrize("bad,words", [(float("nan"), "non-finite sample"), (float("inf"), "non-finite sample"),
                                       (1e30, "magnitude 1e+30")])
def test_a_corrupt_float_sample_names_the_file_or_is_skipped(tmp_path, caplog, bad, words):
    root = make_folder(tmp_path / "corpus", subtype="FLOAT")
    broken = tone(99)
    broken[800] = bad
    sf.write(str(root / "00_a.wav"), broken, 16000, subtype="FLOAT")
    with pytest.raises(DataError, match=rf"{root / '00_a.wav'} holds .*{re.escape(words)}.*data.on_bad_file=skip"):
        module(root, layout="folder")
    with caplog.at_level(logging.WARNING):
        skipped = module(root, layout="folder", on_bad_file="skip")
    (root / "00_a.wav").unlink()
    without = module(root, layout="folder")  # the folder holding only the good files
    assert skipped.skipped == [str(root / "00_a.wav")] and "skipped 1 bad file" in caplog.text
    # the line names each skipped file with what is wrong with it (not the fix: it was skipped)
    (line,) = [message for message in caplog.messages if "skipped 1 bad file" in message]
    assert line.startswith(f"data: skipped 1 bad file (data.on_bad_file=skip): {root / '00_a.wav'}: holds ")
    assert words in line and "replace or delete" not in line
    assert skipped.paths == without.paths and skipped.statistics == without.statistics
    assert np.isfinite(skipped.statistics["std"]) and 0.1 < skipped.statistics["std"] < 1


def test_float_samples_within_the_bound_and_integer_pcm_are_accepted(tmp_path):
    loud = tone(1) * (MAX_FLOAT_AMPLITUDE * 0.9 / 0.32)  # over full scale, within the bound
    sf.write(str(tmp_path / "loud.wav"), loud, 16000, subtype="FLOAT")
    assert np.abs(read_audio(tmp_path / "loud.wav", 16000)).max() == pytest.approx(np.abs(loud).max(), rel=1e-6)
    sf.write(str(tmp_path / "pcm.wav"), np.clip(loud, -1, 1), 16000, subtype="PCM_16")
    assert np.abs(read_audio(tmp_path / "pcm.wav", 16000)).max() <= 1.0


def test_normalisation_statistics_are_checked_wherever_they_come_from(tmp_path):
    for stats in (Normalization(float("nan"), 1.0), Normalization(0.0, float("inf")), Normalization(0.0, MIN_STD / 2)):
        with pytest.raises(DataError, match="normalisation statistics here are unusable"):
            stats.check("here")
    silent = tmp_path / "silent"
    silent.mkdir()
    for index in range(10):
        sf.write(str(silent / f"{index}.wav"), np.zeros(1600, np.float32), 16000, subtype="PCM_16")
    with pytest.raises(DataError, match="statistics fitted on the training split are unusable .*std 0"):
        module(silent, layout="folder")
    root = make_folder(tmp_path / "corpus")
    cache_dir = tmp_path / "cache"
    module(root, layout="folder", cache_dir=str(cache_dir))
    (cache_file,) = cache_dir.glob("*.pt")
    content = cache.load(cache_file)
    content["normalization"]["std"] = float("nan")  # as a cache written before samples were checked may hold
    cache.save(cache_file, content)
    with pytest.raises(DataError, match=rf"read from the data cache {cache_file} are unusable"):
        module(root, layout="folder", cache_dir=str(cache_dir))
    assert cache_file.exists()  # nothing saved is lost


# --- 3. resource forks and hidden files ---------------------------------------------------------
def test_resource_forks_are_ignored_and_bad_files_dropped_before_the_split(tmp_path, caplog):
    plain = make_folder(tmp_path / "plain")
    copied = tmp_path / "copied"
    shutil.copytree(plain, copied)
    for path in sorted(plain.glob("*.wav")):
        (copied / f"._{path.name}").write_bytes(b"\x00\x05\x16\x07 resource fork")
        (copied / "__MACOSX").mkdir(exist_ok=True)
        (copied / "__MACOSX" / f"._{path.name}").write_bytes(b"\x00\x05\x16\x07")
    (copied / "03_d.wav").write_bytes(b"RIFF broken")  # one truly bad file
    with caplog.at_level(logging.INFO):
        skipped = module(copied, layout="folder", val_fraction=0.2, test_fraction=0.2, on_bad_file="skip")
    assert "ignored 20 hidden files" in caplog.text and skipped.skipped == [str(copied / "03_d.wav")]
    (plain / "03_d.wav").unlink()
    without = module(plain, layout="folder", val_fraction=0.2, test_fraction=0.2)
    assert ids(skipped) == ids(without)  # the split of a folder holding only the good files
    assert sum(len(f) for f in skipped.frames.values()) == 9


def test_a_folder_without_bad_files_splits_as_before(tmp_path):
    """The split of a plain folder is the seeded one of the files found (fsdd-3spk's did not move)."""
    root = make_folder(tmp_path / "plain", count=20)
    dm = module(root, layout="folder", val_fraction=0.2, test_fraction=0.2, split_seed=3)
    files = sorted(root.glob("*.wav"))
    assert sorted(p for paths in dm.paths.values() for p in paths) == sorted(map(str, files))
    assert [len(dm.paths[s]) for s in ("train", "val", "test")] == [12, 4, 4]
    assert dm.paths == module(root, layout="folder", val_fraction=0.2, test_fraction=0.2, split_seed=3).paths
    assert find_corpus(root, "folder").hidden == []


# --- 6. resampling at any rate ------------------------------------------------------------------
def band_limited(rate: int, seconds: float = 0.5) -> np.ndarray:
    """A sum of sines below 3.5 kHz at `rate`, in float64, from the closed form (the exact reference)."""
    t = np.arange(round(seconds * rate)) / rate
    return sum(a * np.sin(2 * np.pi * f * t + p) for a, f, p in ((0.3, 220.0, 0.1), (0.2, 1234.5, 1.0),
                                                                  (0.1, 3456.7, 2.0)))


@pytest.mark.parametrize("from_rate,to_rate", [(16001, 16000), (44099, 16000), (7999, 16000), (8000, 16000),
                                               (44100, 16000), (22050, 16000)])
def test_resampling_is_accurate_for_any_rate_pair(from_rate, to_rate):
    out = resample(band_limited(from_rate).astype(np.float32), from_rate, to_rate)
    reference = band_limited(to_rate)
    assert out.dtype == np.float32 and abs(len(out) - len(reference)) <= 1
    n = min(len(out), len(reference))
    middle = slice(n // 10, n - n // 10)  # leave out the edges, where no resampler sees the whole kernel
    error = out[:n][middle].astype(np.float64) - reference[:n][middle]
    snr = 10 * np.log10(np.sum(reference[:n][middle] ** 2) / np.sum(error ** 2))
    assert snr >= 60, f"{from_rate} -> {to_rate} Hz: SNR {snr:.1f} dB"


# --- 8. SPHERE codings libsndfile cannot read ---------------------------------------------------
def test_shorten_sphere_names_its_coding_and_how_to_convert(tmp_path):
    root = make_timit(tmp_path / "corpus")
    path = root / "TRAIN/DR1/FAAA0/SI1.WAV"
    header = ("NIST_1A\n   1024\nsample_count -i 1600\nsample_n_bytes -i 2\nchannel_count -i 1\n"
              "sample_byte_format -s2 01\nsample_rate -i 16000\nsample_coding -s26 pcm,embedded-shorten-v2.00\n"
              "sample_sig_bits -i 16\nend_head\n").encode().ljust(1024, b" ")
    path.write_bytes(header + b"ajkg" + bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8)))
    with pytest.raises(DataError) as error:
        module(root, val_fraction=0.25)
    message = str(error.value)
    assert str(path) in message and "sample_coding pcm,embedded-shorten-v2.00" in message
    assert "sph2pipe" in message and "\n" not in message


def test_the_synthetic_corpus_is_never_generated_into_a_folder_of_other_files(tmp_path):
    """data.root given without data=audio_dir: the default data=synthetic must not write into (and train
    on) a user's own folder."""
    from avrnn.data.synthetic import SyntheticCorpusSpec, generate_corpus

    own = make_folder(tmp_path / "own")
    before = sorted(own.iterdir())
    with pytest.raises(DataError, match=rf"data.root={own} holds files that are not the built-in synthetic corpus.*"
                                        "add data=audio_dir"):
        generate_corpus(own, SyntheticCorpusSpec(train_speakers=2, test_speakers=1, utterances_per_speaker=2))
    assert sorted(own.iterdir()) == before
    small = SyntheticCorpusSpec(train_speakers=2, test_speakers=1, utterances_per_speaker=2, min_seconds=0.2,
                                max_seconds=0.3)
    generate_corpus(tmp_path / "synthetic", SyntheticCorpusSpec(train_speakers=3, test_speakers=1,
                                                                utterances_per_speaker=2, min_seconds=0.2,
                                                                max_seconds=0.3))
    generate_corpus(tmp_path / "synthetic", small)  # other settings: the earlier corpus is replaced whole
    assert len(list((tmp_path / "synthetic").rglob("*.WAV"))) == 3 * 2


# --- every file under data.root read or counted (#36 item 9) -------------------------------------
def test_every_format_libsndfile_reads_is_read_and_every_other_file_is_counted(tmp_path, caplog):
    """The field report: .mp3 and .aiff beside WAVs (both read by the installed libsndfile) were left out
    without a word. Here: 6 WAVs, 2 MP3s, 2 AIFFs, 1 AU; a notes file, a label file, a .DS_Store."""
    formats = {"MP3": ".mp3", "AIFF": ".aiff", "AU": ".au"}
    missing = [name for name in formats if name not in sf.available_formats()]
    if missing:
        pytest.skip(f"this libsndfile ({sf.__libsndfile_version__}) reads no {', '.join(missing)}")
    root = make_folder(tmp_path / "mixed", count=6)
    for index, (name, ext) in enumerate([("MP3", ".mp3"), ("MP3", ".mp3"), ("AIFF", ".aiff"), ("AIFF", ".AIFF"),
                                         ("AU", ".au")]):
        sf.write(str(root / f"other_{index}{ext}"), tone(10 + index), 16000, format=name)
    (root / "notes.txt").write_text("recorded in 2019")
    (root / "other_0.PHN").write_text("0 1600 h#")
    (root / ".DS_Store").write_bytes(b"\x00")
    with caplog.at_level(logging.INFO, logger="avrnn.data.datamodule"):
        dm = module(root, layout="folder", val_fraction=0.2, test_fraction=0.2)
    assert sum(len(paths) for paths in dm.paths.values()) == 11
    assert any(path.endswith("other_0.mp3") for paths in dm.paths.values() for path in paths)
    assert "data: left out 2 files that libsndfile does not read as audio (.PHN: 1, .txt: 1)" in caplog.text
    assert "data: ignored 1 hidden file" in caplog.text


def test_the_timit_layout_counts_the_files_outside_its_splits_and_its_label_files(tmp_path, caplog):
    root = make_timit(tmp_path / "timit")
    (root / "DOC").mkdir()
    (root / "DOC" / "TIMITDIC.TXT").write_text("a")
    (root / "README.DOC").write_text("b")
    (root / "TRAIN" / "DR1" / "FAAA0" / "SA1.PHN").write_text("0 1600 h#")
    with caplog.at_level(logging.INFO, logger="avrnn.data.datamodule"):
        dm = module(root, layout="timit", val_fraction=0.1)
    assert sum(len(paths) for paths in dm.paths.values()) == 30
    assert "data: left out 1 file that libsndfile does not read as audio (.PHN: 1)" in caplog.text
    assert ("data: left out 2 files outside TRAIN/ and TEST/ (DOC/TIMITDIC.TXT, README.DOC; the timit layout reads "
            "only those)") in caplog.text


# --- a cache that knows when the audio changed (#36 item 3) ---------------------------------------
def test_a_corpus_replaced_with_the_same_sizes_and_times_is_not_served_from_the_cache(tmp_path, caplog):
    """The field report: a release tarball with fixed modification times, replaced by its next version
    (every file at half the level, the same sizes): the cache served the old audio."""
    import os

    root, cache_dir = make_folder(tmp_path / "corpus"), tmp_path / "cache"
    first = module(root, layout="folder", cache_dir=str(cache_dir))
    times = {path: path.stat() for path in root.iterdir()}
    for path in sorted(root.glob("*.wav")):
        audio, rate = sf.read(str(path), dtype="float32")
        sf.write(str(path), 0.5 * audio, rate, subtype="PCM_16")
        os.utime(path, ns=(times[path].st_atime_ns, times[path].st_mtime_ns))  # as the tarball sets them
        assert path.stat().st_size == times[path].st_size
    with caplog.at_level(logging.INFO, logger="avrnn.data.datamodule"):
        second = module(root, layout="folder", cache_dir=str(cache_dir))
    assert "data: loaded" not in caplog.text
    assert second.statistics["std"] == pytest.approx(first.statistics["std"] / 2, rel=1e-3)
    assert len(list(cache_dir.glob("*.pt"))) == 2  # the earlier version's cache is kept, not served
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="avrnn.data.datamodule"):
        third = module(root, layout="folder", cache_dir=str(cache_dir))
    assert "data: loaded" in caplog.text and third.statistics == second.statistics


def test_a_cache_folder_that_cannot_be_written_means_running_without_it(tmp_path, caplog, monkeypatch):
    from avrnn.data.files import WriteFailed

    root = make_folder(tmp_path / "corpus")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")  # as read-only storage: nothing can be made below it
    with caplog.at_level(logging.WARNING, logger="avrnn.data.datamodule"):
        dm = module(root, layout="folder", cache_dir=str(blocker / "cache"))
    assert f"data: the cache folder {blocker / 'cache'} cannot be written (" in caplog.text
    assert "running without the cache (set data.cache_dir to a writable folder, or null)" in caplog.text
    assert sum(len(f) for f in dm.frames.values()) == 10
    caplog.clear()

    def full(path, content):
        raise WriteFailed(28, f"no space left on the filesystem of {path.parent}")

    monkeypatch.setattr(cache, "save", full)  # the disk fills while the corpus is read
    with caplog.at_level(logging.WARNING, logger="avrnn.data.datamodule"):
        dm = module(root, layout="folder", cache_dir=str(tmp_path / "cache"))
    assert "data: the corpus was not cached (no space left on the filesystem of" in caplog.text
    assert sum(len(f) for f in dm.frames.values()) == 10


def test_an_unchanged_corpus_is_hashed_once_and_a_file_written_again_is_hashed_again(tmp_path, monkeypatch):
    """The digest memo in the cache folder: a second run reads no file to hash it; a file rewritten in
    place with its size and modification time set back (a tarball) is hashed again (its ctime moved)."""
    import os

    monkeypatch.setattr(cache.DigestMemo, "RACY_SECONDS", 0.0)  # files written just now may be remembered
    root, cache_dir = make_folder(tmp_path / "corpus"), tmp_path / "cache"
    hashed = []
    real = cache.content_digest
    monkeypatch.setattr(cache, "content_digest", lambda path: hashed.append(path) or real(path))
    first = module(root, layout="folder", cache_dir=str(cache_dir))
    assert len(hashed) == 10 and (cache_dir / cache.DigestMemo.MEMO_NAME).exists()
    hashed.clear()
    second = module(root, layout="folder", cache_dir=str(cache_dir))
    assert hashed == [] and second.split_membership() == first.split_membership()
    path = sorted(root.glob("*.wav"))[3]
    before = path.stat()
    audio, rate = sf.read(str(path), dtype="float32")
    sf.write(str(path), 0.5 * audio, rate, subtype="PCM_16")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    third = module(root, layout="folder", cache_dir=str(cache_dir))
    assert hashed == [path]
    changed = next(split for split, files in third.split_membership().items() if path.name in files["files"])
    assert third.split_membership()[changed]["content"] != first.split_membership()[changed]["content"]


def test_a_file_changed_while_it_is_hashed_is_not_remembered(tmp_path):
    """Within RACY_SECONDS of a change a file is hashed every time (a filesystem keeping times to the second
    could not tell a second write in the same second)."""
    root, cache_dir = make_folder(tmp_path / "corpus", count=2), tmp_path / "cache"
    memo = cache.DigestMemo(cache_dir)
    for path in sorted(root.iterdir()):
        memo.digest(path)
    assert memo.hashed == 2 and memo.entries == {}


def test_an_unreadable_memo_means_hashing_again(tmp_path, monkeypatch):
    monkeypatch.setattr(cache.DigestMemo, "RACY_SECONDS", 0.0)
    root, cache_dir = make_folder(tmp_path / "corpus", count=2), tmp_path / "cache"
    cache_dir.mkdir()
    (cache_dir / cache.DigestMemo.MEMO_NAME).write_text("{torn")
    memo = cache.DigestMemo(cache_dir)
    digests = [memo.digest(path) for path in sorted(root.iterdir())]
    assert digests == [cache.content_digest(path) for path in sorted(root.iterdir())] and memo.hashed == 2
    memo.save()
    assert cache.DigestMemo(cache_dir).entries == memo.entries != {}
    first = sorted(root.iterdir())[0]
    (cache_dir / cache.DigestMemo.MEMO_NAME).write_text(json.dumps({str(first): 5, str(tmp_path / "gone.wav"): [1]}))
    memo = cache.DigestMemo(cache_dir)  # entries of another shape: hashed again; files that are gone: dropped
    assert memo.digest(first) == cache.content_digest(first) and memo.hashed == 1
    memo.save()
    assert list(cache.DigestMemo(cache_dir).entries) == [str(first)]


def test_the_split_hash_is_of_the_files_not_of_the_frames_as_one_machine_rounds_them(tmp_path):
    """Another CPU's resampler may round a sample otherwise: the same files are the same splits."""
    dm = module(make_folder(tmp_path / "corpus"), layout="folder", cache_dir=None)
    before = dm.split_membership()
    dm.frames = {split: [frames + 1e-7 for frames in utterances] for split, utterances in dm.frames.items()}
    assert dm.split_membership() == before
    expected = {}
    for split, paths in dm.paths.items():
        digest = hashlib.blake2b(digest_size=16)
        for path in paths:
            with open(path, "rb") as handle:
                content = hashlib.blake2b(handle.read(), digest_size=16).hexdigest()
            digest.update(f"{Path(path).name}\0{content}\0".encode())
        expected[split] = {"files": [Path(path).name for path in paths], "content": digest.hexdigest()}
    assert before == expected
