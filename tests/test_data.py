"""Reading TIMIT-layout and plain audio folders: splits, framing, normalisation, cache, errors."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from avrnn.data.audio import read_audio, write_sphere
from avrnn.data.corpus import find_split_dirs, split_folder, split_timit
from avrnn.data.datamodule import EpochBatchSampler, PhaseCollate, SpeechDataModule, pad_batch
from avrnn.data.errors import DataError
from avrnn.data.framing import Normalization, frame_signal, unframe
from avrnn.data.options import DataOptions
from avrnn.data.synthetic import SyntheticCorpusSpec, generate_corpus

SPEC = SyntheticCorpusSpec(train_speakers=2, test_speakers=1, utterances_per_speaker=4, min_seconds=0.2,
                           max_seconds=0.4)
TRAIN_SPEAKERS = ["DR1/FCJF0", "DR1/MDAC0", "DR2/FAEM0", "DR2/MABC0"]
TEST_SPEAKERS = ["DR1/MDAB0", "DR1/MXYZ0"]  # MDAB0 is a core test speaker, MXYZ0 is not
SENTENCES = ["SA1", "SA2", "SI1", "SX1", "SX2"]


def make_timit(root, lower=False, data_folder=False, seconds=0.1, offset=0.0, rate=16000):
    """A miniature TIMIT: 4 training speakers, 2 test speakers, 5 sentences each, SPHERE files."""
    rng = np.random.default_rng(0)
    base = root / "data" if data_folder else root
    for split, speakers in (("TRAIN", TRAIN_SPEAKERS), ("TEST", TEST_SPEAKERS)):
        for speaker in speakers:
            for sentence in SENTENCES:
                path = f"{split}/{speaker}/{sentence}.WAV"
                wave = 0.1 * rng.standard_normal(int(seconds * rate)) + (offset if split == "TEST" else 0.0)
                write_sphere(base / (path.lower() if lower else path), wave.astype(np.float32), rate)
    return root


# --- framing and normalisation -------------------------------------------------------------------
def test_framing_round_trips_up_to_padding():
    wave = np.arange(1, 1051, dtype=np.float32)
    dropped, padded = frame_signal(wave, 200), frame_signal(wave, 200, pad_last=True)
    assert dropped.shape == (5, 200) and padded.shape == (6, 200)
    np.testing.assert_array_equal(unframe(dropped).numpy(), wave[:1000])
    np.testing.assert_array_equal(unframe(padded).numpy()[:1050], wave)
    assert (unframe(padded)[1050:] == 0).all()
    overlapping = frame_signal(wave, 200, hop=100)
    assert overlapping.shape == (9, 200) and overlapping[1, 0] == 101


def test_normalisation_statistics_and_inverse():
    waves = [np.array([1.0, 3.0], dtype=np.float32), np.array([5.0, 7.0], dtype=np.float32)]
    stats = Normalization.fit(waves)
    assert stats.mean == pytest.approx(4.0) and stats.std == pytest.approx(np.std([1, 3, 5, 7]))
    np.testing.assert_allclose(stats.undo(stats.apply(waves[1])), waves[1], rtol=1e-6)


def test_sphere_files_round_trip_and_resampling(tmp_path):
    wave = (0.5 * np.sin(np.arange(1600) / 7)).astype(np.float32)
    write_sphere(tmp_path / "a.WAV", wave, 16000)
    assert (tmp_path / "a.WAV").read_bytes().startswith(b"NIST_1A")
    np.testing.assert_allclose(read_audio(tmp_path / "a.WAV", 16000), wave, atol=1 / 32768)
    assert len(read_audio(tmp_path / "a.WAV", 8000)) == 800


# --- TIMIT layout --------------------------------------------------------------------------------
@pytest.mark.parametrize("lower,data_folder", [(False, False), (True, False), (False, True)])
def test_timit_layout_variants_give_the_same_splits(tmp_path, lower, data_folder):
    make_timit(tmp_path, lower=lower, data_folder=data_folder)
    splits = split_timit(tmp_path, val_fraction=0.25, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (15, 5, 10)
    assert not set(splits.train) & set(splits.val)
    dm = SpeechDataModule(DataOptions(root=str(tmp_path), val_fraction=0.25, batch_size=2, eval_batch_size=4))
    dm.setup()
    assert [len(dm.frames[s]) for s in ("train", "val", "test")] == [15, 5, 10]
    # 0.1 s = 1600 samples = 8 frames of 200
    assert all(f.shape == (8, 200) for split in dm.frames.values() for f in split)
    x, mask = next(iter(dm.test_dataloader()))
    assert x.shape == (4, 8, 200) and mask.shape == (4, 8) and mask.all()


def test_timit_options_core_test_set_sa_and_speaker_split(tmp_path):
    make_timit(tmp_path)
    core = split_timit(tmp_path, val_fraction=0.25, test_set="core")
    assert {p.parent.name for p in core.test} == {"MDAB0"} and len(core.test) == 3  # SI1, SX1, SX2
    no_sa = split_timit(tmp_path, val_fraction=0.25, exclude_sa=True)
    assert (len(no_sa.train) + len(no_sa.val), len(no_sa.test)) == (12, 6)
    assert not any(p.stem.startswith("SA") for p in no_sa.train + no_sa.val + no_sa.test)
    by_speaker = split_timit(tmp_path, val_fraction=0.25, val_split="speaker")
    val_speakers = {p.parent.name for p in by_speaker.val}
    assert len(val_speakers) == 1 and len(by_speaker.val) == 5
    assert not val_speakers & {p.parent.name for p in by_speaker.train}
    assert split_timit(tmp_path, 0.25, seed=3).val == split_timit(tmp_path, 0.25, seed=3).val  # seeded


def test_normalisation_uses_the_training_split_only(tmp_path):
    make_timit(tmp_path, seconds=0.2, offset=0.0)
    plain = SpeechDataModule(DataOptions(root=str(tmp_path), val_fraction=0.25))
    plain.setup()
    make_timit(tmp_path / "shifted", seconds=0.2, offset=0.5)  # same training files, test shifted by +0.5
    shifted = SpeechDataModule(DataOptions(root=str(tmp_path / "shifted"), val_fraction=0.25))
    shifted.setup()
    assert shifted.statistics == plain.statistics
    train = torch.cat([f.flatten() for f in shifted.frames["train"]])
    test = torch.cat([f.flatten() for f in shifted.frames["test"]])
    assert abs(train.mean().item()) < 0.02 and abs(train.std().item() - 1) < 0.02
    assert test.mean().item() == pytest.approx(0.5 / shifted.statistics["std"], rel=0.05)


def test_second_setup_loads_the_cache_without_reading_audio(tmp_path, monkeypatch):
    make_timit(tmp_path / "corpus")
    first = SpeechDataModule(DataOptions(root=str(tmp_path / "corpus"), val_fraction=0.25,
                                         cache_dir=str(tmp_path / "cache")))
    first.setup()
    assert len(list((tmp_path / "cache").glob("corpus-*.pt"))) == 1

    def no_reading(*args, **kwargs):
        raise AssertionError("audio was read although the cache is valid")

    monkeypatch.setattr("avrnn.data.datamodule.read_audio", no_reading)
    second = SpeechDataModule(DataOptions(root=str(tmp_path / "corpus"), val_fraction=0.25,
                                         cache_dir=str(tmp_path / "cache")))
    second.setup()
    assert second.statistics == first.statistics
    for split in ("train", "val", "test"):
        assert all(torch.equal(a, b) for a, b in zip(first.frames[split], second.frames[split]))
    other = SpeechDataModule(DataOptions(root=str(tmp_path / "corpus"), val_fraction=0.25, frame_size=100,
                             cache_dir=str(tmp_path / "cache")))
    with pytest.raises(AssertionError, match="audio was read"):
        other.setup()  # different options -> a different cache key -> rebuilt


# --- any folder of audio -------------------------------------------------------------------------
def make_folder(root, speakers=("anna", "ben", "cleo", "dan", "eve"), per_speaker=4, rate=8000):
    rng = np.random.default_rng(1)
    for speaker in speakers:
        for index in range(per_speaker):
            wave = (0.1 * rng.standard_normal(rate // 4)).astype(np.float32)
            sub = root / speaker[0]
            sub.mkdir(parents=True, exist_ok=True)
            # mixed formats, one stereo file
            if index == 0:
                import soundfile as sf
                sf.write(str(sub / f"{index}_{speaker}.flac"), np.stack([wave, wave], 1), rate)
            else:
                import soundfile as sf
                sf.write(str(sub / f"{index}_{speaker}.wav"), wave, rate)
    return root


def test_folder_layout_splits_by_speaker_or_by_file_and_resamples(tmp_path, caplog):
    make_folder(tmp_path)
    by_speaker = split_folder(tmp_path, val_fraction=0.2, test_fraction=0.2, speaker_pattern=r"_([a-z]+)\.")
    speakers = {name: {p.stem.split("_")[1] for p in getattr(by_speaker, name)} for name in ("train", "val", "test")}
    assert [len(speakers[n]) for n in ("train", "val", "test")] == [3, 1, 1]
    assert not (speakers["train"] & speakers["val"]) and not (speakers["train"] & speakers["test"])
    by_file = split_folder(tmp_path, val_fraction=0.2, test_fraction=0.2)
    assert (len(by_file.train), len(by_file.val), len(by_file.test)) == (12, 4, 4)
    dm = SpeechDataModule(DataOptions(root=str(tmp_path), layout="folder", speaker_pattern=r"_([a-z]+)\.",
                                      val_fraction=0.2, test_fraction=0.2))
    dm.setup()
    # 0.25 s at 8 kHz -> resampled to 16 kHz = 4000 samples = 20 frames (stereo flac -> mono)
    assert all(f.shape == (20, 200) for split in dm.frames.values() for f in split)
    # upsampled: a warning says what the top of the spectrum holds and how to model the corpus at its own rate
    warning = next(r.getMessage() for r in caplog.records if "upsampled" in r.getMessage())
    assert warning.startswith("data: files at 8000 Hz were upsampled to 16000 Hz: nothing above 4000 Hz is in them")
    assert warning.endswith("set data.sample_rate=8000 (and data.frame_size, data.hop to match)")


@pytest.mark.parametrize("resampled, files, fixed_by, expected", [
    ({"8000": 20}, 20, None, "files at 8000 Hz were upsampled to 16000 Hz: nothing above 4000 Hz is in them, and a "
     "model of those frequencies (a spectrogram's upper bins) learns the resampler; to model the corpus at its own "
     "rate set data.sample_rate=8000 (and data.frame_size, data.hop to match)"),
    # the field case: one 4001 Hz file among ten at 16 kHz. data.sample_rate=4001 would downsample the ten
    ({"4001": 1}, 11, None, "1 of 11 files (at 4001 Hz) was upsampled to 16000 Hz: nothing above 2000 Hz is in it, "
     "and a model of those frequencies (a spectrogram's upper bins) learns the resampler from it; move it out of "
     "data.root if the rest of the corpus is what you mean to model"),
    ({"8000": 2, "11025": 1, "22050": 4}, 10, None, "3 of 10 files (at 8000 Hz and 11025 Hz) were upsampled to 16000 "
     "Hz: nothing above half its own rate is in each, and a model of those frequencies (a spectrogram's upper bins) learns the "
     "resampler from them; move them out of data.root if the rest of the corpus is what you mean to model"),
    ({"8000": 1}, 1, "the checkpoint", "the file at 8000 Hz was upsampled to 16000 Hz, the rate the checkpoint fixes: "
     "nothing above 4000 Hz is in it, so the bounds and reconstructions of those frequencies (a spectrogram's upper "
     "bins) measure the resampler, not this corpus"),
    ({"22050": 3}, 3, None, None),  # downsampled only: nothing to say
])
def test_upsampled_files_are_named_with_the_fix_that_fits_how_many_they_are(resampled, files, fixed_by, expected):
    from avrnn.data.datamodule import upsampling_warning

    assert upsampling_warning(resampled, files, 16000, fixed_by) == expected


def test_training_holds_features_not_the_waveforms_they_came_from(make_cfg):
    """Training reads features only (evaluation scores the reconstructions, with a datamodule of its own): on
    waveform frames the waveforms would hold the corpus a second time (the data cache keeps them)."""
    from avrnn.training.fit import build_datamodule

    datamodule = build_datamodule(make_cfg())
    datamodule.prepare_data()
    datamodule.setup("fit")
    assert set(datamodule.frames) == {"train", "val", "test"} and datamodule.audio == {}
    with pytest.raises(RuntimeError, match=r"^use_statistics needs every split's audio, but this datamodule kept "
                                           r"only \[\] \(audio_splits\)"):
        datamodule.use_statistics({key: value + 1 for key, value in datamodule.statistics.items()}, "elsewhere")


# --- bad input: one clear message each ----------------------------------------------------------
def test_missing_root_wrong_layout_and_empty_folders(tmp_path):
    with pytest.raises(DataError, match=r"data.root .*nowhere does not exist; set data.root to a folder laid out as"):
        find_split_dirs(tmp_path / "nowhere")
    make_timit(tmp_path / "timit")
    with pytest.raises(DataError, match="looks like a split folder: point data.root at its parent"):
        find_split_dirs(tmp_path / "timit" / "TRAIN")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no TRAIN/ and TEST/ folders under data.root"):
        find_split_dirs(tmp_path / "empty")
    with pytest.raises(DataError, match=r"no audio files under .*: it holds no files; expected any folder of audio files"):
        split_folder(tmp_path / "empty")
    for split in ("TRAIN", "TEST"):
        (tmp_path / "noaudio" / split / "DR1").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no audio files under .*TRAIN: it holds no files; expected ROOT/TRAIN"):
        split_timit(tmp_path / "noaudio")
    (tmp_path / "texts").mkdir()
    for name in ("a.txt", "b.txt", "c.PHN", ".hidden.wav"):
        (tmp_path / "texts" / name).write_text("x")
    with pytest.raises(DataError, match=r"no audio files under .*texts: its 3 files are of no format libsndfile "
                                        r"reads \(.txt: 2, .PHN: 1\); expected any folder"):
        split_folder(tmp_path / "texts")


def test_corrupt_file_fails_by_name_or_is_skipped_and_counted(tmp_path, caplog):
    make_timit(tmp_path)
    bad = tmp_path / "TRAIN" / "DR1" / "FCJF0" / "SX2.WAV"
    bad.write_bytes(b"NIST_1A\n garbage")
    with pytest.raises(DataError, match=r"cannot read audio file .*FCJF0/SX2.WAV .*or set data.on_bad_file=skip"):
        SpeechDataModule(DataOptions(root=str(tmp_path), val_fraction=0.25)).setup()
    dm = SpeechDataModule(DataOptions(root=str(tmp_path), val_fraction=0.25, on_bad_file="skip"))
    with caplog.at_level(logging.WARNING):
        dm.setup()
    assert dm.skipped == [str(bad)] and "skipped 1 bad file" in caplog.text
    assert sum(len(dm.frames[s]) for s in ("train", "val")) == 19


def test_wrong_rate_without_resampling_and_too_short_utterances(tmp_path):
    make_timit(tmp_path, rate=8000)
    with pytest.raises(DataError, match=r"has sample rate 8000 Hz but data.sample_rate=16000; set data.resample=true "
                                        r"\(or, for a model trained anew, data.sample_rate=8000; a resumed run can "
                                        r"change neither: give it the corpus it trained on\)$"):
        SpeechDataModule(DataOptions(root=str(tmp_path), val_fraction=0.25, resample=False)).setup()
    with pytest.raises(DataError, match=r"FCJF0/S[AIX]\d.WAV is shorter than one frame \(1600 < data.frame_size=2000 samples\)"):
        SpeechDataModule(DataOptions(root=str(tmp_path), val_fraction=0.25, frame_size=2000)).setup()


def test_bad_option_values_name_the_allowed_ones(tmp_path):
    with pytest.raises(DataError, match="data.last_frame='keep' is not allowed; choose one of pad, drop"):
        SpeechDataModule(DataOptions(root=str(tmp_path), last_frame="keep"))
    with pytest.raises(DataError, match="data.test_set='tiny' is not allowed; choose full or core"):
        make_timit(tmp_path)
        split_timit(tmp_path, test_set="tiny")


# --- batching ----------------------------------------------------------------------------------
def test_synthetic_corpus_is_deterministic_and_in_timit_layout(tmp_path):
    first = generate_corpus(tmp_path / "a", SPEC)
    second = generate_corpus(tmp_path / "b", SPEC)
    files = sorted(p.relative_to(first) for p in first.rglob("*.WAV"))
    assert len(files) == 12 and str(files[0]).startswith("TEST/DR1/MSYN0/SX")
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes()


def test_per_phase_crops_and_padding_masks(tmp_path):
    generate_corpus(tmp_path, SPEC)
    dm = SpeechDataModule(DataOptions(root=str(tmp_path), batch_size=2, crop_frames=5, val_fraction=0.25),
                          batches_per_iteration=3, iterations_per_epoch=4)
    dm.setup()
    batches = list(dm.train_dataloader())
    assert len(batches) == 4 and all(len(b) == 3 for b in batches)  # one batch per phase
    x, mask = batches[0][0]
    assert x.shape == (2, 5, 200) and mask.shape == (2, 5)
    x, mask = pad_batch([torch.ones(3, 2), torch.ones(1, 2)])
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]] and (x[1, 1:] == 0).all()
    groups = PhaseCollate(2)([torch.ones(2, 1), torch.ones(5, 1), torch.ones(1, 1), torch.ones(1, 1)])
    assert [g[0].shape[1] for g in groups] == [5, 1]  # each phase's batch padded on its own


def test_whole_utterance_batches_are_length_bucketed():
    lengths = list(range(10, 410))
    batches = list(EpochBatchSampler(lengths, batch_size=8, batches=50, seed=0))
    assert len(batches) == 50 and all(len(b) == 8 for b in batches)
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])
    assert spread < 40  # random batches of 8 from 10..409 would span about 300 frames


def test_training_batches_depend_only_on_seed_and_epoch_and_resume_skips():
    lengths = [50, 12, 80, 41]
    sampler = EpochBatchSampler(lengths, batch_size=3, batches=6, seed=7, crop_frames=20)
    epoch0 = list(sampler)
    assert list(sampler) == epoch0  # no hidden global RNG
    assert all(0 <= start <= max(0, lengths[i] - 20) for batch in epoch0 for i, start in batch)
    sampler.set_epoch(1)
    assert list(sampler) != epoch0
    resumed = EpochBatchSampler(lengths, batch_size=3, batches=6, seed=7, crop_frames=20)
    resumed.skip = 4
    assert list(resumed) == epoch0[4:] and list(resumed) == epoch0  # only the first epoch is partial


# --- data.split_lists: exactly another codebase's files -----------------------------------------
def write_lists(root, lists: dict[str, list[str]], folder="splits"):
    (root / folder).mkdir(exist_ok=True)
    for split, names in lists.items():
        (root / folder / f"{split}.txt").write_text("# a comment\n" + "\n".join(names) + "\n\n")
    return {split: f"{folder}/{split}.txt" for split in lists}


LISTS = {"train": ["b/1_ben.wav", "a/2_anna.wav", "c/0_cleo.flac", "d/3_dan.wav"], "val": ["e/1_eve.wav"],
         "test": ["a/3_anna.wav", "e/2_eve.wav"]}


def test_split_lists_give_exactly_the_listed_files_in_their_order_and_nothing_else_is_read(tmp_path, caplog):
    make_folder(tmp_path)
    (tmp_path / "e" / "9_eve.wav").write_bytes(b"RIFF not audio")  # listed nowhere: never read, no failure
    lists = write_lists(tmp_path, {**LISTS, "val": ["./e//1_eve.wav"]})  # the same file, written otherwise
    dm = SpeechDataModule(DataOptions(root=str(tmp_path), layout="folder", split_lists=lists).check())
    with caplog.at_level(logging.INFO):
        dm.setup()
    assert {split: [Path(path).relative_to(tmp_path).as_posix() for path in paths]
            for split, paths in dm.paths.items()} == LISTS
    assert "14 of 21 audio files" in caplog.text and "in none of data.split_lists (not read)" in caplog.text
    assert "data.split_lists gives the splits: data.val_fraction, data.test_fraction, data.split_seed" in caplog.text


def test_split_lists_read_from_an_absolute_path_and_the_cache_follows_their_content(tmp_path):
    make_folder(tmp_path / "corpus")
    elsewhere = tmp_path / "lists"
    elsewhere.mkdir()
    absolute = {split: str(elsewhere / path) for split, path in write_lists(elsewhere, LISTS, ".").items()}
    options = dict(root=str(tmp_path / "corpus"), layout="folder", split_lists=absolute,
                   cache_dir=str(tmp_path / "cache"))
    first = SpeechDataModule(DataOptions(**options))
    first.setup()
    write_lists(elsewhere, {**LISTS, "test": ["a/3_anna.wav"]}, ".")  # the same list files, other content
    second = SpeechDataModule(DataOptions(**options))
    second.setup()
    assert len(first.paths["test"]) == 2 and len(second.paths["test"]) == 1


@pytest.mark.parametrize("lists, message", [
    ({**LISTS, "test": ["a/3_anna.wav", "z/nobody.wav"]},
     r"data.split_lists.test lists 1 file that is not an audio file under .*, e.g. z/nobody.wav; fix the list"),
    ({**LISTS, "val": ["e/1_eve.wav", "./b/1_ben.wav"]},
     r"data.split_lists: b/1_ben.wav is b/1_ben.wav's utterance, listed twice \(train and val\); each utterance"),
    ({**LISTS, "test": ["a/3_anna.wav", "B/1_ben.WAV.flac"]},  # another copy of one utterance
     r"data.split_lists: B/1_ben.WAV.flac is b/1_ben.wav's utterance, listed twice \(train and test\)"),
    ({**LISTS, "val": ["../outside.wav"]}, r"'../outside.wav' in .* is not a path inside data.root"),
    ({**LISTS, "val": ["# only a comment"]}, r"data.split_lists.val: .*val.txt lists no files"),
])
def test_a_split_list_naming_a_missing_repeated_or_outside_file_is_refused_in_one_line(tmp_path, lists, message):
    make_folder(tmp_path)
    paths = write_lists(tmp_path, lists)
    with pytest.raises(DataError, match=message):
        SpeechDataModule(DataOptions(root=str(tmp_path), layout="folder", split_lists=paths)).setup()


def test_split_lists_must_name_three_readable_lists(tmp_path):
    make_folder(tmp_path)
    with pytest.raises(DataError, match=r"must name three lists: data.split_lists=\{train: LIST, val: LIST, test"):
        DataOptions(root=str(tmp_path), layout="folder", split_lists={"train": "a", "test": "b"}).check()
    with pytest.raises(DataError, match=r"data.split_lists.train: cannot read .*nothing.txt .*one per line"):
        SpeechDataModule(DataOptions(root=str(tmp_path), layout="folder",
                                     split_lists={"train": "nothing.txt", "val": "v", "test": "t"})).setup()
