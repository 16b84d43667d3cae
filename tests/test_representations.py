"""avrnn.data.representations: waveform frames and the STFT power spectrogram, each one pluggable choice
(data/representation=...): round trips, values against independent computations, framing edges, what is
refused, and a checkpoint of each representation trained, evaluated and generated from."""

import json
import logging
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from avrnn.data.errors import DataError
from avrnn.data.representations import REPRESENTATIONS, build, settings


def speech_like(length: int, seed: int = 0, rate: int = 16000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(length) / rate
    wave = 0.3 * np.sin(2 * np.pi * 140 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.standard_normal(length)
    return wave.astype(np.float32)


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    return 10 * math.log10(np.sum(reference.astype(np.float64) ** 2) /
                           np.sum((reference.astype(np.float64) - estimate) ** 2))


STFT = {"frame_size": 256, "hop": 64, "representation": {"name": "stft", "trim_top_db": None}}
WAVEFORM = {"frame_size": 200, "hop": None, "representation": {"name": "waveform"}}


# lengths at the framing edges: shorter than a hop, one frame exactly, one sample past it, a multiple of the hop,
# one short of one
@pytest.mark.parametrize("length", [129, 200, 256, 257, 1600, 1599, 4801])
def test_the_spectrogram_with_the_original_phase_gives_the_waveform_back(length):
    wave = speech_like(length)
    representation = build(STFT)
    representation.fit([speech_like(8000, seed=1)])
    features = representation.encode(wave)
    assert features.shape == (1 + length // 64, 129) and features.dtype == torch.float32
    decoded = representation.decode(features, wave)
    assert decoded.shape == wave.shape and snr_db(wave, decoded) >= 60


@pytest.mark.parametrize("length,frames", [(200, 1), (399, 2), (400, 2), (401, 3)])
def test_waveform_frames_give_the_waveform_back_without_the_padding(length, frames):
    wave = speech_like(length)
    representation = build(WAVEFORM)
    representation.fit([wave])
    features = representation.encode(wave)
    assert features.shape == (frames, 200)  # data.last_frame=pad: a last partial frame is padded and kept
    decoded = representation.decode(features, wave)
    assert decoded.shape == wave.shape and snr_db(wave, decoded) >= 60
    assert len(representation.decode(features)) == frames * 200  # no original: every frame's samples


def test_dropping_the_last_partial_frame_decodes_what_the_frames_hold():
    wave = speech_like(450)
    representation = build({**WAVEFORM, "last_frame": "drop"})
    representation.fit([wave])
    decoded = representation.decode(representation.encode(wave), wave)
    assert decoded.shape == (400,) and snr_db(wave[:400], decoded) >= 60


# the benchmark's settings, then a hop that is not the window's quarter (torch.stft's default), zero padding,
# and uncentred frames
@pytest.mark.parametrize("hop,pad_mode,center", [(64, "reflect", True), (100, "constant", True), (100, "reflect", False)])
def test_the_power_spectrogram_equals_an_independent_dft_of_sine_windowed_frames(hop, pad_mode, center):
    """By hand (numpy): frames on t * hop of the signal (centred: padded by n_fft / 2 as pad_mode says),
    windowed by sin(pi (n + 1/2) / N), |rfft|^2, divided by the training split's mean power; the original's
    phase gives the waveform back at the same settings."""
    n_fft = 256
    wave, train = speech_like(1000), [speech_like(3000, seed=1), speech_like(1700, seed=2)]
    representation = build({**STFT, "hop": hop, "representation": {**STFT["representation"], "pad_mode": pad_mode,
                                                                   "center": center}})
    representation.fit(train)

    def power(signal):
        padded = np.pad(signal.astype(np.float64), n_fft // 2 if center else 0, mode=pad_mode)
        window = np.sin(np.pi * (np.arange(n_fft) + 0.5) / n_fft)
        frames = np.stack([padded[t * hop:t * hop + n_fft] for t in range(1 + (len(padded) - n_fft) // hop)])
        return np.abs(np.fft.rfft(frames * window, axis=1)) ** 2

    scale = np.concatenate([power(w).ravel() for w in train]).mean()
    assert representation.statistics["scale"] == pytest.approx(scale, rel=1e-6)
    np.testing.assert_allclose(representation.encode(wave).numpy(), power(wave) / scale, rtol=1e-4, atol=1e-6)
    assert representation.log_jacobian_per_timestep() == pytest.approx(-129 * math.log(scale))
    covered = wave if center else wave[:(len(power(wave)) - 1) * hop + n_fft]  # uncentred: whole windows only
    decoded = representation.decode(representation.encode(covered), covered)
    assert snr_db(covered, decoded) >= 60


def test_the_waveform_statistics_are_the_training_splits_mean_and_std():
    train = [speech_like(3000, seed=1) + 0.1, speech_like(1700, seed=2)]
    representation = build(WAVEFORM)
    representation.fit(train)
    joined = np.concatenate(train).astype(np.float64)
    assert representation.statistics == pytest.approx({"mean": joined.mean(), "std": joined.std()}, rel=1e-6)
    assert representation.bits_per_sample(-200 * math.log(2)) == pytest.approx(1.0)
    assert representation.log_jacobian_per_timestep() == pytest.approx(-200 * math.log(joined.std()))


def test_a_spectrogram_has_no_bits_per_sample_and_says_what_its_bound_is_on():
    representation = build(STFT)
    assert representation.bits_per_sample(-10.0) is None
    assert "power spectrogram" in representation.bound_on and "4x redundant" in representation.bound_on


def test_prior_samples_are_rebuilt_by_griffin_lim_to_the_length_their_frames_cover():
    representation = build(STFT)
    representation.fit([speech_like(4000)])
    features = representation.encode(speech_like(4000, seed=3))
    wave = representation.decode(features)
    assert wave.shape == ((len(features) - 1) * 64,) and np.isfinite(wave).all() and np.abs(wave).max() <= 1
    assert representation.decoded_how(with_original=False) == ("the predicted power with a phase estimated by "
                                                                "Griffin-Lim (32 iterations; prior samples have no "
                                                                "phase)")
    assert "original's phase" in representation.decoded_how(with_original=True)


def test_griffin_lim_rebuilds_a_waveform_whose_spectrogram_is_the_one_asked_for_the_same_each_time():
    representation = build({**STFT, "hop": 100})
    representation.fit([speech_like(4000)])
    features = representation.encode(speech_like(4000, seed=3))
    wave = representation.decode(features)
    assert np.array_equal(wave, representation.decode(features))  # no random initial phase
    rebuilt = representation.encode(wave)[:len(features) - 1]  # the last frame covers samples past the end
    target = features[:len(features) - 1]
    convergence = float((rebuilt.sqrt() - target.sqrt()).norm() / target.sqrt().norm())  # spectral convergence
    assert convergence < 0.35


def test_decoded_audio_is_clipped_to_full_scale_at_both_ends():
    representation = build(STFT)
    loud = 1.5 * np.sin(2 * np.pi * 140 * np.arange(4000) / 16000).astype(np.float32)
    representation.fit([loud])
    decoded = representation.decode(representation.encode(loud), loud)
    assert decoded.max() == 1.0 and decoded.min() == -1.0 and decoded.dtype == np.float32


def test_the_scale_is_fitted_on_something_or_refused():
    representation = build(STFT)
    with pytest.raises(RuntimeError, match="^the stft representation has no statistics yet: fit it on the training "
                                           "split or give a checkpoint's$"):
        representation.encode(speech_like(1000))
    with pytest.raises(DataError, match=r"^the spectrogram's scale fitted on the training split is unusable \(0;"):
        representation.fit([np.zeros(1000, dtype=np.float32)])  # silent audio
    with pytest.raises(DataError, match="^cannot fit the spectrogram's scale on an empty training split$"):
        representation.fit([])
    representation.use({"scale": 0.5}, "given")  # any finite positive scale, below 1 too
    with pytest.raises(DataError, match=r"^the spectrogram's scale from a test is unusable \(0; it must be finite "
                                        r"and positive\): the training audio is silent or corrupt; check the files "
                                        r"or retrain$"):
        representation.use({"scale": 0.0}, "from a test")


def test_the_edges_of_what_a_spectrogram_accepts_are_accepted():
    from avrnn.data.options import DataOptions

    for representation in ({"name": "stft", "griffin_lim_iterations": 1}, {"name": "stft", "trim_top_db": 0.5}):
        DataOptions.from_dict({"root": "/nowhere", "frame_size": 256, "hop": 256, "representation": representation}).check()
    build({"frame_size": 256, "hop": 256, "representation": {"name": "stft"}})  # a hop of the whole window


def test_features_of_another_length_cannot_take_an_originals_phase():
    representation = build(STFT)
    representation.fit([speech_like(4000)])
    with pytest.raises(ValueError, match="features of 24 frames cannot take the phase of a waveform of 16 frames"):
        representation.decode(representation.encode(speech_like(1500)), speech_like(960))


def test_a_spectrograms_frames_scored_says_its_edges_and_its_trimming():
    centred = build(STFT).frames_scored
    assert centred == ("all STFT frames of each utterance (centred frames, the audio reflect-padded by half a window "
                       "at both ends)")
    trimmed = build({**STFT, "representation": {"name": "stft", "trim_top_db": 30, "window": "sine",
                                                "center": False}}).frames_scored
    assert trimmed == ("all STFT frames of each utterance (uncentred frames: samples after the last whole window are "
                       "in none, after trimming leading and trailing audio more than 30 dB below the utterance's peak)")


def test_silence_is_trimmed_where_asked_and_kept_otherwise():
    silence = np.zeros(4000, dtype=np.float32)
    wave = np.concatenate([silence, speech_like(3000), silence])
    assert len(build(STFT).prepare(wave)) == len(wave)
    trimmed = build({**STFT, "representation": {"name": "stft", "trim_top_db": 30}}).prepare(wave)
    # librosa's trim: RMS of 2048-sample frames every 512 samples; every sample of the speech kept
    assert 3000 <= len(trimmed) <= 3000 + 2048 + 512
    assert np.sum(trimmed.astype(np.float64) ** 2) == pytest.approx(np.sum(wave.astype(np.float64) ** 2))
    # the threshold asked for, not librosa's default (60 dB): a lead 40 dB below the speech goes at 30 dB, stays at 50
    quiet = np.concatenate([0.01 * speech_like(4000, seed=4), speech_like(3000)])
    at = {db: len(build({**STFT, "representation": {"name": "stft", "trim_top_db": db}}).prepare(quiet))
          for db in (30, 50)}
    assert at[30] < len(quiet) - 2048 and at[50] == len(quiet)


@pytest.mark.parametrize("options,message", [
    ({"frame_size": 200, "hop": 100}, r"^data.hop=100 differs from data.frame_size=200, and waveform frames cannot "
                                      r"overlap or leave gaps .*; set data.hop=null, or use data/representation=stft"),
    ({"frame_size": 200, "hop": 300}, r"^data.hop=300 differs from data.frame_size=200"),
    ({"representation": {"name": "mel"}}, r"^data.representation.name='mel' is not allowed; choose one of "
                                          r"waveform, stft"),
    ({"representation": {"name": "stft", "windw": "hann"}}, r"^unknown data.representation key windw; this "
                                                            r"representation takes name and center, "),
    ({"representation": {"name": "waveform", "window": "hann"}}, r"^unknown data.representation key window; this "
                                                                 r"representation takes name and no other key$"),
    ({"representation": {"name": "waveform", "window": "hann", "hops": 2}}, r"^unknown data.representation keys "
                                                                             r"hops, window; this representation"),
    ({"representation": {"name": "stft", "window": "kaiser"}}, r"^data.representation.window='kaiser' is not "
                                                               r"allowed; choose one of sine, hann$"),
    ({"representation": {"name": "stft", "trim_top_db": 0}}, r"^data.representation.trim_top_db must be positive"),
    ({"frame_size": 256, "hop": 512, "representation": {"name": "stft"}},
     r"^data.hop=512 is longer than the window, data.frame_size=256: samples between windows would be lost and no "
     r"waveform rebuilt; use a hop of at most the window$"),
    ({"representation": {"name": "stft", "pad_mode": "zeros"}}, r"^data.representation.pad_mode='zeros' is not "
                                                                r"allowed; choose one of reflect, constant, "
                                                                r"replicate, circular$"),
    ({"representation": {"name": "stft", "griffin_lim_iterations": 0}},
     r"^data.representation.griffin_lim_iterations must be a positive integer, got 0$"),
    ({"frame_size": 256, "hop": 64, "representation": {"name": "stft", "window": "hann", "center": False}},
     r"^data.representation.window=hann is zero at its edge, so with data.representation.center=false the first "
     r"sample is in no frame and no waveform can be rebuilt; use center=true or window=sine$"),
    ({"frame_size": 256, "hop": 64, "last_frame": "drop", "representation": {"name": "stft"}},
     r"^data.last_frame=drop applies to waveform frames; the spectrogram's edges are set by "
     r"data.representation.center \(true: every sample is in a frame; false: samples after the last whole window "
     r"are in none\): drop data.last_frame$"),
])
def test_a_representation_that_cannot_work_is_refused_in_one_line(options, message):
    from avrnn.data.options import DataOptions

    with pytest.raises(DataError, match=message):
        DataOptions.from_dict({"root": "/nowhere", **options}).check()


def test_waveform_frames_are_accepted_with_no_hop_or_the_frame_size_as_hop():
    from avrnn.data.options import DataOptions

    for hop in (None, 200):
        DataOptions.from_dict({"root": "/nowhere", "frame_size": 200, "hop": hop}).check()


def test_data_configs_and_checkpoints_of_earlier_versions_mean_waveform_frames():
    assert settings({}) == settings({"representation": None}) == {"name": "waveform"}
    assert isinstance(build({"frame_size": 160}), REPRESENTATIONS["waveform"])


def test_statistics_of_another_representation_are_refused_by_name():
    with pytest.raises(DataError, match=r"^the stft representation's statistics stored in x lack scale \(they hold "
                                        r"mean, std\)"):
        build(STFT).use({"mean": 0.0, "std": 1.0}, "stored in x")
    with pytest.raises(DataError, match=r"^the waveform representation's statistics stored in y lack mean, std \(they "
                                        r"hold nothing\): written for another representation; use the data config it "
                                        r"was written with, or retrain$"):
        build(WAVEFORM).use({}, "stored in y")
    with pytest.raises(DataError, match="scale given is unusable"):
        build(STFT, {"scale": 0.0})


def test_the_model_reads_the_representations_feature_size(make_cfg):
    assert make_cfg().model.input_size == 200
    assert make_cfg("data/representation=stft").model.input_size == 513
    assert make_cfg("data/representation=stft", "data.frame_size=512", "data.hop=128").model.input_size == 257


@pytest.fixture
def stft_cfg(make_cfg, tmp_path):
    def _cfg(*overrides):
        return make_cfg("data/representation=stft", "data.frame_size=256", "data.hop=64",
                        "data.representation.trim_top_db=null", "model.emission=itakura_saito", *overrides)
    return _cfg


def test_a_spectrogram_checkpoint_trains_evaluates_and_generates(stft_cfg, compose_config, tmp_path, capsys):
    from avrnn.evaluation.sampling import generate
    from avrnn.evaluation.scoring import evaluate
    from avrnn.training.fit import train

    run = tmp_path / "run"
    train(stft_cfg(f"paths.output_dir={run}", "training.max_iterations=2"))
    trained = json.loads((run / "metrics.json").read_text())  # the training run says what its bounds are on too
    assert "power spectrogram" in trained["bounds_are_on"] and math.isfinite(trained["log_jacobian"])
    assert trained["frames_scored"].startswith("all STFT frames of each utterance (centred frames")
    checkpoint = run / "checkpoints" / "last.ckpt"
    hyper = torch.load(checkpoint, weights_only=True)["hyper_parameters"]
    assert hyper["data"]["representation"]["name"] == "stft" and set(hyper["normalization"]) == {"scale"}
    assert hyper["model"]["input_size"] == 129
    metrics = evaluate(compose_config("evaluate", f"ckpt_path={checkpoint}", "iwae_k=[2]", "fivo_k=[2]",
                                      f"output_dir={tmp_path / 'eval'}", "speech_quality=true"))
    assert math.isfinite(metrics["test/elbo_per_timestep"]) and math.isfinite(metrics["test/iwae_2_per_timestep"])
    assert not any(key.endswith("_bits_per_sample") for key in metrics)  # no bits per audio sample of a spectrogram
    assert metrics["test/log_jacobian"] == pytest.approx(-129 * math.log(hyper["normalization"]["scale"]))
    assert "power spectrogram" in metrics["test/bounds_are_on"]
    assert metrics["test/reconstructions_rebuilt_from"] == "the predicted power with the original's phase"
    assert metrics["test/log_jacobian"] == pytest.approx(trained["log_jacobian"])
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["frames_scored"] == trained["frames_scored"]
    assert metrics["test/si_sdr_utterances"] + metrics["test/si_sdr_skipped"] == metrics["test/sequences"]
    out = tmp_path / "generated"
    written = generate(compose_config("generate", f"ckpt_path={checkpoint}", "n=1", "seconds=0.5",
                                      "reconstructions=2", f"output_dir={out}"))
    assert len(written) == 5 and "Griffin-Lim" in capsys.readouterr().out
    sample, rate = sf.read(str(out / "sample_00.wav"))
    assert rate == 16000 and len(sample) == round(0.5 * 16000 / 64) * 64 - 64  # (T - 1) hops of Griffin-Lim
    original, _ = sf.read(str(out / "test_00_original.wav"))
    reconstruction, _ = sf.read(str(out / "test_00_reconstruction.wav"))
    manifest = json.loads((out / "generated.json").read_text())["files"]
    source, _ = sf.read(manifest["test_00_original.wav"]["source"])
    assert len(original) == len(reconstruction) == len(source)  # untrimmed here: the whole file, rebuilt to length
    assert "Griffin-Lim" in manifest["sample_00.wav"]["decoded"]
    assert "original's phase" in manifest["test_00_reconstruction.wav"]["decoded"]


@pytest.mark.parametrize("arm", [
    ["arm=avrnn_conditional"], ["arm=avrnn_own"], ["arm=avrnn_wgan", "ablation=hybrid"],
    pytest.param(["arm=avrnn_posterior_only"], marks=pytest.mark.slow),
    pytest.param(["arm=avrnn_wgan_gp"], marks=pytest.mark.slow), pytest.param(["arm=avrnn_gan"], marks=pytest.mark.slow),
    pytest.param(["arm=avrnn_paper", "trainer.precision=bf16-mixed"], marks=pytest.mark.slow)])
def test_every_arm_trains_on_the_spectrogram(stft_cfg, arm):
    """The three phases, each critic, critic input and ablation on the power spectrogram (Itakura-Saito emission)."""
    from avrnn.training.fit import train

    metrics = train(stft_cfg(*arm, "training.max_iterations=2"))
    assert math.isfinite(metrics["test/elbo_per_timestep"])


def test_a_run_cannot_resume_in_another_representation(make_cfg, stft_cfg, tmp_path):
    from avrnn.config import ConfigError
    from avrnn.training.fit import train

    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=2"))
    # the representation named by its choice (data/representation=...), not by each setting that comes with it
    with pytest.raises(ConfigError, match=r"cannot resume .* with .*data.representation.name=stft, model.emission="
                                          r"itakura_saito.*: it trained with .*data.representation.name=waveform, "
                                          r"model.emission=gaussian"):
        train(stft_cfg(f"paths.output_dir={tmp_path / 'other'}", "training.max_iterations=4",
                       f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"))


def test_a_bernoulli_checkpoint_of_an_earlier_version_still_evaluates_with_a_warning(make_cfg, compose_config,
                                                                                    tmp_path, caplog):
    """Bernoulli on z-scored waveforms is refused for training now; a model trained with it before is scored,
    and the warning says its bounds are no likelihood's."""
    from avrnn.evaluation.scoring import evaluate
    from avrnn.training.fit import train

    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=1"))
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["model"]["emission"] = "bernoulli"  # what an earlier version wrote
    old = tmp_path / "bernoulli.ckpt"
    from avrnn.models.vrnn import VRNN, VRNNConfig

    weights = VRNN(VRNNConfig.from_dict(checkpoint["hyper_parameters"]["model"])).state_dict()
    checkpoint["state_dict"] = {key: value for key, value in checkpoint["state_dict"].items()
                                if not key.startswith("vrnn.emission")}
    checkpoint["state_dict"].update({f"vrnn.{key}": value for key, value in weights.items()
                                     if key.startswith("emission")})
    torch.save(checkpoint, old)
    with caplog.at_level(logging.WARNING):
        metrics = evaluate(compose_config("evaluate", f"ckpt_path={old}", "iwae_k=[]", "fivo_k=[]",
                                          f"output_dir={tmp_path / 'eval'}"))
    assert math.isfinite(metrics["test/elbo_per_timestep"])
    assert "model.emission=bernoulli is a density of values in [0, 1]" in caplog.text
    assert "its bounds are not bounds on a likelihood of its features" in caplog.text


def test_a_digitally_silent_file_is_reported_as_silent_not_by_a_metrics_reason(tmp_path):
    """Scored against the audio as read (not the decoded frames, whose zero-padded last frame is the training
    mean after de-normalising): a silent file of 1.05 frames is 'digitally silent' (#36 left this to #31)."""
    from avrnn.data.datamodule import SpeechDataModule
    from avrnn.evaluation.speech_quality import score_reconstructions
    from avrnn.models.vrnn import VRNN

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for index in range(8):
        sf.write(str(corpus / f"speech_{index}.wav"), speech_like(8000 + 37 * index, seed=index) + 0.2, 16000)
    sf.write(str(corpus / "silent.wav"), np.zeros(8010, dtype=np.float32), 16000)  # not a whole number of frames
    datamodule = SpeechDataModule({"root": str(corpus), "layout": "folder", "frame_size": 200, "cache_dir": None,
                                   "val_fraction": 0.1, "test_fraction": 0.1, "split_seed": 0})
    datamodule.setup()
    datamodule.audio["test"] = [datamodule.audio[s][datamodule.paths[s].index(str(corpus / "silent.wav"))]
                                for s in datamodule.paths if str(corpus / "silent.wav") in datamodule.paths[s]]
    datamodule.frames["test"] = [datamodule.representation.encode(datamodule.audio["test"][0])]
    vrnn = VRNN(input_size=200, z_dim=2, hidden_size=8, x_features=4, z_features=4, mlp_hidden=8).eval()
    metrics = score_reconstructions(vrnn, datamodule.eval_dataloader("test", with_audio=True),
                                    datamodule.representation, 16000, "test")
    assert metrics["test/si_sdr_skipped_because"] == {"digitally silent": 1}


def test_the_reconstructions_scored_draw_from_their_own_stream(tmp_path):
    """Their posterior samples do not depend on what was drawn before (the bounds scored first, and which)."""
    from avrnn.data.datamodule import SpeechDataModule
    from avrnn.evaluation.speech_quality import score_reconstructions
    from avrnn.evaluation.streams import EstimateStreams
    from avrnn.models.vrnn import VRNN

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for index in range(10):
        sf.write(str(corpus / f"speech_{index}.wav"), speech_like(12000 + 37 * index, seed=index), 16000)
    datamodule = SpeechDataModule({"root": str(corpus), "layout": "folder", "frame_size": 200, "cache_dir": None,
                                   "val_fraction": 0.2, "test_fraction": 0.2, "split_seed": 0})
    datamodule.setup()
    vrnn = VRNN(input_size=200, z_dim=2, hidden_size=8, x_features=4, z_features=4, mlp_hidden=8).eval()

    def scored(global_seed: int, streams=None) -> float:
        torch.manual_seed(global_seed)
        metrics = score_reconstructions(vrnn, datamodule.eval_dataloader("test", with_audio=True),
                                        datamodule.representation, 16000, "test", streams)
        assert metrics["test/si_sdr_utterances"] == 2
        return metrics["test/si_sdr_mean"]

    assert scored(1) == scored(2) != scored(1, EstimateStreams(5))


def test_a_file_too_short_once_its_silence_is_trimmed_is_named_with_the_trimming(tmp_path):
    from avrnn.data.datamodule import SpeechDataModule

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for index in range(8):
        sf.write(str(corpus / f"speech_{index}.wav"), speech_like(8000, seed=index), 16000)
    quiet = np.zeros(16000, dtype=np.float32)
    quiet[8000:8100] = speech_like(100, seed=9)  # 1 s, all but 100 samples silent
    sf.write(str(corpus / "mostly_silent.wav"), quiet, 16000)
    options = {"root": str(corpus), "layout": "folder", "frame_size": 4096, "hop": 1024, "cache_dir": None,
               "representation": {"name": "stft", "trim_top_db": 30}}
    with pytest.raises(DataError, match=r"mostly_silent.wav is shorter than one frame after trimming its silence "
                                        r"\(from 16000 samples; data.representation.trim_top_db\) \(\d+ < 2049, the least the stft "
                                        r"representation encodes at data.frame_size=4096 samples\)"):
        SpeechDataModule(options).setup()


def test_a_checkpoint_of_an_earlier_version_with_overlapping_frames_still_evaluates_with_a_warning(
        make_cfg, compose_config, tmp_path, caplog):
    """Earlier versions accepted data.hop < data.frame_size for waveform frames: such a checkpoint is scored (its
    data config has no representation), with a warning; a new run is refused (the waveform refusal tests)."""
    from avrnn.evaluation.scoring import evaluate
    from avrnn.training.fit import train

    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=1"))
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    for data in (checkpoint["hyper_parameters"]["data"], checkpoint["avrnn_config"]["data"]):
        data.pop("representation")  # what an earlier version wrote, with overlapping frames
        data["hop"] = 150
    old = tmp_path / "overlapping.ckpt"
    torch.save(checkpoint, old)
    with caplog.at_level(logging.WARNING):
        metrics = evaluate(compose_config("evaluate", f"ckpt_path={old}", "iwae_k=[]", "fivo_k=[]",
                                          f"output_dir={tmp_path / 'eval'}", "speech_quality=true"))
    assert math.isfinite(metrics["test/elbo_per_timestep"])
    assert metrics["test/si_sdr_utterances"] + metrics["test/si_sdr_skipped"] == metrics["test/sequences"]
    assert "a checkpoint of an earlier version, which accepted overlapping frames" in caplog.text


def test_overlapping_frames_of_an_earlier_version_decode_to_the_waveform_they_were_cut_from():
    wave = speech_like(1000)
    from avrnn.data.representations import of_earlier_version

    earlier = {"frame_size": 200, "hop": 150}  # a data config of an earlier version (no representation)
    old = build({**earlier, "representation": of_earlier_version(earlier)}, {"mean": 0.0, "std": 1.0})
    frames = old.encode(wave)
    assert frames.shape == (7, 200)  # 0, 150, ..., 900: the last one padded
    np.testing.assert_allclose(old.decode(frames, wave), np.clip(wave, -1, 1), atol=1e-6)
    assert old.decode(torch.zeros(0, 200)).shape == (0,)  # no frames (an utterance shorter than one): no audio


def test_the_earlier_version_overlap_mark_cannot_train(make_cfg):
    from avrnn.config import ConfigError, validate

    with pytest.raises(ConfigError, match="marks checkpoints of earlier versions"):
        validate(make_cfg("data.hop=100", "+data.representation.earlier_version_overlap=true"))


def test_the_earlier_version_overlap_warns_in_full_and_only_where_frames_overlap(caplog):
    from avrnn.data.representations import of_earlier_version

    for hop, warned in ((150, True), (200, False)):
        earlier = {"frame_size": 200, "hop": hop}
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="avrnn.data.representations.waveform"):
            build({**earlier, "representation": {**of_earlier_version(earlier), "earlier_version_overlap": True}})
        expected = ([f"waveform frames of 200 samples every {hop}: a checkpoint of an earlier version, which accepted "
                     "overlapping frames; it evaluates, but its bounds count the overlapping samples more than once "
                     f"(and its reconstructions keep each frame's first {hop} samples)"] if warned else [])
        assert [r.getMessage() for r in caplog.records] == expected


def test_waveform_frames_decode_clipped_to_full_scale_in_float32_and_say_how():
    loud = 1.5 * np.sin(2 * np.pi * 140 * np.arange(1000) / 16000).astype(np.float32)
    representation = build(WAVEFORM, {"mean": 0.0, "std": 1.0})
    features = representation.encode(loud)
    for decoded in (representation.decode(features, loud), representation.decode(features)):
        assert decoded.max() == 1.0 and decoded.min() == -1.0 and decoded.dtype == np.float32
    assert representation.decoded_how(with_original=True) == "the frames one after another, de-normalised"


def test_a_representation_built_without_settings_takes_its_defaults_and_names_where_bad_statistics_came_from():
    from avrnn.data.representations.stft import PowerSpectrogram, StftSettings
    from avrnn.data.representations.waveform import Waveform

    assert PowerSpectrogram(256, 64, "pad").settings == StftSettings()
    with pytest.raises(DataError, match=r"^normalisation statistics given are unusable \(mean 0, std 0;"):
        Waveform(200, None, "pad", statistics={"mean": 0.0, "std": 0.0})
