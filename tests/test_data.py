"""Framing, normalisation, TIMIT-layout discovery and batching of the built-in corpus."""

import numpy as np
import pytest
import torch

from avrnn.data.audio import read_audio, write_sphere
from avrnn.data.corpus import find_split_dirs, split_corpus
from avrnn.data.datamodule import PhaseCollate, SpeechDataModule, pad_batch
from avrnn.data.errors import DataError
from avrnn.data.framing import Normalization, frame_signal, unframe
from avrnn.data.synthetic import SyntheticCorpusSpec, generate_corpus

SPEC = SyntheticCorpusSpec(train_speakers=2, test_speakers=1, utterances_per_speaker=4, min_seconds=0.2,
                           max_seconds=0.4)


def test_framing_round_trips_up_to_the_dropped_partial_frame():
    wave = np.arange(1050, dtype=np.float32)
    frames = frame_signal(wave, 200)
    assert frames.shape == (5, 200)
    np.testing.assert_array_equal(unframe(frames).numpy(), wave[:1000])


def test_normalisation_statistics_and_inverse():
    waves = [np.array([1.0, 3.0], dtype=np.float32), np.array([5.0, 7.0], dtype=np.float32)]
    stats = Normalization.fit(waves)
    assert stats.mean == pytest.approx(4.0) and stats.std == pytest.approx(np.std([1, 3, 5, 7]))
    np.testing.assert_allclose(stats.undo(stats.apply(waves[1])), waves[1], rtol=1e-6)


def test_sphere_files_round_trip(tmp_path):
    wave = (0.5 * np.sin(np.arange(1600) / 7)).astype(np.float32)
    write_sphere(tmp_path / "a.WAV", wave, 16000)
    assert (tmp_path / "a.WAV").read_bytes().startswith(b"NIST_1A")
    np.testing.assert_allclose(read_audio(tmp_path / "a.WAV", 16000), wave, atol=1 / 32768)
    with pytest.raises(DataError, match="data.sample_rate=8000"):
        read_audio(tmp_path / "a.WAV", 8000, resample=False)
    assert len(read_audio(tmp_path / "a.WAV", 8000)) == 800  # resampled


def test_synthetic_corpus_is_deterministic_and_in_timit_layout(tmp_path):
    first = generate_corpus(tmp_path / "a", SPEC)
    second = generate_corpus(tmp_path / "b", SPEC)
    files = sorted(p.relative_to(first) for p in first.rglob("*.WAV"))
    assert len(files) == 12 and str(files[0]).startswith("TEST/DR1/MSYN0/SX")
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes()
    splits = split_corpus(first, val_fraction=0.25, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (6, 2, 4)
    assert not set(splits.train) & set(splits.val)


def test_lowercase_and_data_subfolder_layouts_are_found(tmp_path):
    for split in ("data/train/dr1/fabc0", "data/test/dr1/mdef0"):
        (tmp_path / split).mkdir(parents=True)
    train, test = find_split_dirs(tmp_path)
    assert train.name == "train" and test.name == "test"


def test_missing_or_wrong_root_names_the_path_and_the_layout(tmp_path):
    with pytest.raises(DataError, match="does not exist; set data.root"):
        find_split_dirs(tmp_path / "nowhere")
    (tmp_path / "TRAIN").mkdir()
    with pytest.raises(DataError, match="point data.root at its parent"):
        find_split_dirs(tmp_path / "TRAIN")
    with pytest.raises(DataError, match="no TRAIN/ and TEST/ folders"):
        find_split_dirs(tmp_path)


def test_training_statistics_only_and_per_phase_batches(tmp_path):
    generate_corpus(tmp_path, SPEC)
    dm = SpeechDataModule(str(tmp_path), batch_size=2, crop_frames=5, val_fraction=0.25, batches_per_iteration=3,
                          iterations_per_epoch=4)
    dm.setup()
    # scaling the test split changes nothing: statistics come from the training split only
    stats = dm.normalization
    test_file = sorted((tmp_path / "TEST").rglob("*.WAV"))[0]
    write_sphere(test_file, 0.9 * np.ones(16000, dtype=np.float32), 16000)
    dm2 = SpeechDataModule(str(tmp_path), batch_size=2, crop_frames=5, val_fraction=0.25)
    dm2.setup()
    assert dm2.normalization == stats
    train_frames = torch.cat([f.flatten() for f in dm.frames["train"]])
    assert abs(train_frames.mean().item()) < 0.05 and abs(train_frames.std().item() - 1) < 0.05
    batches = list(dm.train_dataloader())
    assert len(batches) == 4 and all(len(b) == 3 for b in batches)  # one batch per phase
    x, mask = batches[0][0]
    assert x.shape[0] == 2 and x.shape[1] <= 5 and x.shape[2] == 200 and mask.shape == x.shape[:2]


def test_padding_mask_marks_real_frames():
    x, mask = pad_batch([torch.ones(3, 2), torch.ones(1, 2)])
    assert x.shape == (2, 3, 2)
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]] and (x[1, 1:] == 0).all()
    groups = PhaseCollate(2)([torch.ones(2, 1), torch.ones(5, 1), torch.ones(1, 1), torch.ones(1, 1)])
    assert [g[0].shape[1] for g in groups] == [5, 1]  # each phase's batch padded on its own
