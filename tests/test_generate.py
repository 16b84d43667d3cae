"""src/generate.py: WAVs from the prior and reconstructions; prior samples as TensorBoard audio."""

import numpy as np
import soundfile as sf

from avrnn.evaluation.sampling import generate
from avrnn.training.fit import train


def test_samples_and_reconstructions_are_written_as_audio(make_cfg, compose_config, tmp_path, capsys):
    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=2"))
    cfg = compose_config("generate", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "n=3", "seconds=0.5",
                         "reconstructions=2", f"output_dir={tmp_path / 'wav'}")
    written = generate(cfg)
    assert (f"wrote 7 WAV files (16000 Hz) to {tmp_path / 'wav'}: 3 prior samples and 2 original + reconstruction "
            "pairs;") in capsys.readouterr().out
    names = sorted(p.name for p in written)
    assert names == ["sample_00.wav", "sample_01.wav", "sample_02.wav", "test_00_original.wav",
                     "test_00_reconstruction.wav", "test_01_original.wav", "test_01_reconstruction.wav"]
    samples = [sf.read(str(tmp_path / "wav" / f"sample_0{i}.wav")) for i in range(3)]
    assert all(rate == 16000 and len(wave) == 40 * 200 for wave, rate in samples)  # 0.5 s = 40 frames
    assert not np.allclose(samples[0][0], samples[1][0])  # independent draws from the prior
    original, _ = sf.read(str(tmp_path / "wav" / "test_00_original.wav"))
    reconstruction, _ = sf.read(str(tmp_path / "wav" / "test_00_reconstruction.wav"))
    assert len(original) == len(reconstruction) and np.isfinite(reconstruction).all()
    # the original is the test utterance itself, in the waveform's own units (normalisation undone)
    assert 0.05 < np.abs(original).max() <= 1.0


def test_what_generation_wrote_is_also_in_its_jobs_log(make_cfg, run_in_process, tmp_path):
    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=2"))
    result = run_in_process("generate.py", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "n=1", "seconds=0.2",
                            "reconstructions=0", f"output_dir={tmp_path / 'wav'}", f"hydra.run.dir={tmp_path / 'job'}")
    assert result.returncode == 0, result.stderr[-2000:]
    (job_log,) = [path.read_text() for path in (tmp_path / "job").glob("*.log")]
    assert f"results:\nwrote 1 WAV file (16000 Hz) to {tmp_path / 'wav'}: 1 prior sample" in job_log
    assert f"wrote 1 WAV file (16000 Hz) to {tmp_path / 'wav'}: 1 prior sample" in result.stdout


def test_validation_logs_prior_samples_as_audio(make_cfg, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=2", "training.audio_seconds=0.25"))
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"audio": 0})
    events.Reload()
    assert {"samples/prior_0", "samples/prior_1"} <= set(events.Tags()["audio"])


def test_generation_refuses_a_bad_thread_count_before_loading_anything(compose_config, tmp_path):
    import pytest

    from avrnn.config import ConfigError

    cfg = compose_config("generate", f"ckpt_path={tmp_path / 'absent.ckpt'}", "num_threads=-1",
                         f"output_dir={tmp_path / 'wav'}")
    with pytest.raises(ConfigError, match=r"^num_threads must be positive, got -1$"):
        generate(cfg)
    assert not (tmp_path / "wav").exists()


def test_sample_batches_bound_the_frames_held_at_once_not_the_count():
    from avrnn.evaluation.sampling import sample_batches

    assert sample_batches(0, 100, 10, 10**6) == []
    assert sample_batches(5, 100, 10, 10**6) == [5]  # 5 x 4,000 bytes fit
    assert sample_batches(5, 100, 10, 8_000) == [2, 2, 1]  # two samples of 4,000 bytes per batch
    assert sample_batches(3, 100, 10, 10) == [1, 1, 1]  # one sample longer than the budget still gets drawn


def test_many_long_samples_are_drawn_in_batches_within_the_budget(make_cfg, compose_config, tmp_path, monkeypatch):
    from avrnn.evaluation import sampling
    from avrnn.models.vrnn import VRNN

    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=2"))
    drawn, sample = [], VRNN.sample

    def recording(self, batch, steps, device=None):
        drawn.append(batch)
        return sample(self, batch, steps, device)

    monkeypatch.setattr(VRNN, "sample", recording)
    monkeypatch.setattr(sampling, "SAMPLE_BATCH_BYTES", 2 * 40 * 200 * 4)  # two samples of 40 frames of 200
    cfg = compose_config("generate", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "n=5", "seconds=0.5",
                         "reconstructions=0", f"output_dir={tmp_path / 'wav'}")
    written = generate(cfg)
    assert drawn == [2, 2, 1]
    assert sorted(p.name for p in written) == [f"sample_0{i}.wav" for i in range(5)]
    waves = [sf.read(str(path))[0] for path in sorted(written)]
    assert all(len(wave) == 40 * 200 for wave in waves)
    assert not np.allclose(waves[0], waves[2])  # the second batch draws afresh, not a copy of the first


def test_griffin_lim_iterations_override_the_checkpoints_for_spectrogram_samples(make_cfg, compose_config, tmp_path):
    import json

    import pytest

    from avrnn.config import ConfigError

    run = tmp_path / "spectro"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=1", "data/representation=stft",
                   "model.emission=itakura_saito", "data.frame_size=64", "data.hop=16",
                   "data.representation.trim_top_db=null"))
    written = {}
    for iterations in ("null", "32", "1", "64"):
        out = tmp_path / f"wav-{iterations}"
        generate(compose_config("generate", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "n=1", "seconds=0.25",
                                "reconstructions=0", f"griffin_lim_iterations={iterations}", f"output_dir={out}"))
        manifest = json.loads((out / "generated.json").read_text())["files"]["sample_00.wav"]
        written[iterations] = (manifest["decoded"], sf.read(str(out / "sample_00.wav"))[0])
    assert "Griffin-Lim (32 iterations" in written["null"][0]  # the checkpoint's (the yaml's default)
    assert "Griffin-Lim (64 iterations" in written["64"][0] and "Griffin-Lim (1 iteration;" in written["1"][0]
    assert json.loads((tmp_path / "wav-64" / "generated.json").read_text())["files"]["sample_00.wav"][
        "griffin_lim_iterations"] == 64
    assert np.array_equal(written["null"][1], written["32"][1]) and not np.allclose(written["1"][1], written["64"][1])
    waveform = tmp_path / "waveform"
    train(make_cfg(f"paths.output_dir={waveform}", "training.max_iterations=1"))
    with pytest.raises(ConfigError, match=r"^griffin_lim_iterations=8: this checkpoint's model reads data/representation=waveform, whose"):
        generate(compose_config("generate", f"ckpt_path={waveform / 'checkpoints' / 'last.ckpt'}", "n=1",
                                "griffin_lim_iterations=8", f"output_dir={tmp_path / 'none'}"))
    with pytest.raises(ConfigError, match=r"^griffin_lim_iterations must be positive, got 0$"):
        generate(compose_config("generate", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
                                "griffin_lim_iterations=0", f"output_dir={tmp_path / 'none'}"))
