"""src/evaluate.py: a trained checkpoint scored with ELBO, IWAE-k and FIVO-k into metrics.json."""

import json

import pytest

from avrnn.training.checkpoints import CheckpointError
from avrnn.evaluation.scoring import evaluate
from avrnn.training.fit import train


def test_checkpoint_is_scored_with_bounds_in_the_stated_units(make_cfg, compose_config, tmp_path, units_check):
    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=2"))
    out = tmp_path / "eval"
    metrics = evaluate(compose_config("evaluate", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "iwae_k=[2,8]",
                                        "fivo_k=[8]", f"output_dir={out}"))
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == metrics
    assert metrics["test/sequences"] == 4 and metrics["test/frames"] > 0  # the tiny corpus' test split
    per_timestep = metrics["test/elbo_per_timestep"]
    assert per_timestep == pytest.approx(metrics["test/elbo_per_sequence"] * 4 / metrics["test/frames"])
    assert per_timestep == pytest.approx(-(metrics["test/rec_per_timestep"] + metrics["test/kl_per_timestep"]))
    for key in ("test/iwae_2_per_timestep", "test/iwae_8_per_timestep", "test/fivo_8_per_timestep",
                "test/wasserstein", "test/elbo_bits_per_sample"):
        assert key in metrics, key
    # IWAE tightens with k: single draws are noisy, so only a clear violation would fail
    assert metrics["test/iwae_8_per_timestep"] > per_timestep - 0.5
    units_check(saved, evaluate_family)


def evaluate_family(key: str, saved: dict) -> str | None:
    """A key of evaluate's metrics.json as its units string names it: the split left out, * for a bound's name,
    <measure> for a speech-quality measure's; None for the critic's estimate (critic_distance names it)."""
    family = key.rsplit("/", 1)[-1]
    if key == "checkpoint_iteration" or family == saved.get("test/critic_distance", {}).get("name"):
        return None
    suffix = next((end for end in ("_per_timestep", "_per_sequence", "_bits_per_sample") if family.endswith(end)), None)
    measures = {key.removesuffix("_unit").split("/")[-1] for key in saved if key.endswith("_unit")}
    measure = next((m for m in measures if family.startswith(m + "_")), None)
    return f"*{suffix}" if suffix else f"<measure>{family.removeprefix(measure)}" if measure else family


def test_the_units_check_refuses_a_number_it_does_not_name(units_check):
    saved = {"units": "kl_by_dimension: nats; speech_quality_seconds: s; <measure>_mean: in <measure>_unit",
             "test/critic_distance": {"name": "wasserstein"}, "test/si_sdr_unit": "dB", "test/si_sdr_mean": 1.0,
             "test/kl_by_dimension": [0.5], "test/wasserstein": 0.1, "test/speech_quality_seconds": 1.0}
    units_check(saved, evaluate_family)
    for unnamed in ("test/dimension", "test/seconds", "test/si_sdr_whatever", "test/elbo_per_timestep"):
        with pytest.raises(AssertionError, match=unnamed):
            units_check({**saved, unnamed: 1.0}, evaluate_family)


def test_evaluation_refuses_an_unsafe_checkpoint(compose_config, tmp_path):
    import torch

    class Payload:
        def __reduce__(self):
            return (print, ("owned",))

    path = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"x": Payload()}}, path)
    with pytest.raises(CheckpointError, match="refusing to load"):
        evaluate(compose_config("evaluate", f"ckpt_path={path}", f"output_dir={tmp_path / 'eval'}"))


def test_evaluation_refuses_a_checkpoint_naming_an_unknown_component(make_cfg, compose_config, tmp_path):
    """Choices are checked in one place (avrnn.config.check_choices), also for a checkpoint's
    hyper-parameters, before any module is built from them."""
    import torch

    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=1"))
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["model"]["rnn"] = "transformer"
    path = tmp_path / "edited.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError) as error:
        evaluate(compose_config("evaluate", f"ckpt_path={path}", f"output_dir={tmp_path / 'eval'}"))
    assert "model.rnn='transformer' is not allowed; choose one of gru, lstm" in str(error.value)
    assert "\n" not in str(error.value)


def test_latent_use_is_reported_per_dimension(make_cfg, compose_config, tmp_path):
    """KL per latent dimension (sums to the KL) and active units: dimensions whose posterior mean
    varies over the test frames by more than 0.01."""
    import torch

    from avrnn.evaluation.scoring import LatentUse, build_eval_data, load_module
    from avrnn.evaluation.streams import EstimateStreams

    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=2"))
    ckpt = run / "checkpoints" / "last.ckpt"
    metrics = evaluate(compose_config("evaluate", f"ckpt_path={ckpt}", "iwae_k=[]", "fivo_k=[]",
                                      f"output_dir={tmp_path / 'eval'}"))
    by_dimension = metrics["test/kl_by_dimension"]
    assert len(by_dimension) == 4 and sum(by_dimension) == pytest.approx(metrics["test/kl_per_timestep"], rel=1e-5)
    # the same count from the posterior means of all test frames at once
    module = load_module(ckpt)
    streams = EstimateStreams(0)  # as evaluate draws the ELBO's pass (seed 0): the same noise drives h
    means = []
    for x, mask in build_eval_data(module, None, "test", 8).eval_dataloader("test"):
        with torch.no_grad(), streams.drawing("elbo"):
            means.append(module.vrnn(x, mask).posterior.loc[mask.bool()])
    variance = torch.cat(means).double().var(0, unbiased=False)
    torch.testing.assert_close(torch.tensor(metrics["test/posterior_mean_variance_by_dimension"],
                                            dtype=torch.double), variance)
    assert metrics["test/active_units"] == int((variance > LatentUse.ACTIVE_VARIANCE).sum())


def test_evaluation_takes_num_threads_like_training_and_refuses_a_bad_count(make_cfg, compose_config, tmp_path):
    import torch

    from avrnn.config import ConfigError

    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=1"))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        evaluate(compose_config("evaluate", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "num_threads=1",
                                "iwae_k=[2]", "fivo_k=[2]", "speech_quality=false", f"output_dir={tmp_path / 'eval'}"))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_call_from_python_after_hydras_help_in_this_process_is_outside_any_hydra_job(make_cfg, compose_config,
                                                                                       run_in_process, tmp_path):
    """Hydra's --cfg, --help and --info leave its record of a job behind (it names no output folder): evaluation
    then crashed reading that folder (make test, order-dependent), and a stop line would have resumed with that
    record's overrides."""
    from hydra.core.hydra_config import HydraConfig

    from avrnn import hydra_job
    from avrnn.training.stops import resume_command

    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=2"))
    assert run_in_process("evaluate.py", "--cfg", "job", "iwae_k=[1]").returncode == 0
    assert HydraConfig.initialized()  # what Hydra leaves behind
    assert hydra_job.running() is None and hydra_job.overrides() is None and not hydra_job.in_multirun()
    assert resume_command(run).startswith("python src/train.py <the same overrides> ")
    metrics = evaluate(compose_config("evaluate", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "iwae_k=[]",
                                      "fivo_k=[]", "speech_quality=false", f"output_dir={tmp_path / 'eval'}"))
    assert metrics["test/sequences"] == 4


@pytest.mark.parametrize("value, message", [
    ("0", "error: num_threads must be positive, got 0"),  # the words train's validate uses
    ("-2", "error: num_threads must be positive, got -2"),
    # typed by the schema (avrnn.evaluation.settings), as training's is
    ("1.5", "error: Error merging override num_threads=1.5: Value '1.5' of type 'float' could not be converted to "
            "Integer"),
    ("true", "error: Error merging override num_threads=true: Value 'True' of type 'bool' could not be converted to "
             "Integer"),
    ("abc", "error: Error merging override num_threads=abc: Value 'abc' of type 'str' could not be converted to "
            "Integer"),
])
def test_evaluation_refuses_a_bad_thread_count_before_reading_anything(run_in_process, tmp_path, value, message):
    result = run_in_process("evaluate.py", f"ckpt_path={tmp_path / 'absent.ckpt'}", f"num_threads={value}",
                            f"output_dir={tmp_path / 'eval'}")
    assert result.returncode == 2 and result.last_line == message  # before the (absent) checkpoint is opened
    assert not (tmp_path / "eval" / "metrics.json").exists()


def test_evaluation_scores_the_corpus_given_and_records_what_it_scored(make_cfg, compose_config, tmp_path, tiny,
                                                                      capsys, monkeypatch):
    """data=... at evaluation is what is scored (here a corpus with twice the test speakers), metrics.json
    says which checkpoint, which frames (its own data.last_frame) and which units, and speech_quality=false / flush_denormal=false
    are honoured."""
    from avrnn.evaluation.scoring import FRAMES_SCORED, UNITS
    from avrnn.training import denormals

    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=2"))
    ckpt = run / "checkpoints" / "last.ckpt"
    data = [item for item in tiny if item.startswith("data.") and "test_speakers" not in item]
    # as on a command line that sets data.last_frame (outside Hydra no key counts as given)
    monkeypatch.setattr("avrnn.evaluation.scoring.given_data_keys", lambda: {"last_frame"})
    try:
        metrics = evaluate(compose_config("evaluate", f"ckpt_path={ckpt}", "iwae_k=[]", "fivo_k=[]",
                                          "speech_quality=false", "flush_denormal=false", "data=synthetic", *data,
                                          f"data.root={tmp_path / 'other'}", "data.synthetic.test_speakers=2",
                                          "data.last_frame=drop", f"output_dir={tmp_path / 'eval'}"))
        assert denormals.state() == "IEEE"
    finally:
        denormals.apply(True)
    assert metrics["test/sequences"] == 8  # 2 test speakers x 4 utterances: the corpus given, not the checkpoint's 4
    text = (tmp_path / "eval" / "metrics.json").read_text()
    assert text == json.dumps(metrics, indent=2)  # for people to read, one key a line
    saved = json.loads(text)
    assert saved["checkpoint"] == str(ckpt) and saved["checkpoint_iteration"] == 2 and saved["units"] == UNITS
    # the frames this evaluation scored: its data's last_frame (drop), not the checkpoint's (pad, FRAMES_SCORED)
    assert saved["frames_scored"] == FRAMES_SCORED.replace("a zero-padded last frame",
                                                           "not the last partial frame (data.last_frame=drop)")
    assert not any("si_sdr" in key for key in saved)
    out = capsys.readouterr().out
    assert "reconstruction quality" not in out
    assert f"scored with {ckpt} (iteration 2); wrote {tmp_path / 'eval' / 'metrics.json'}" in out


def test_a_corpus_given_at_evaluation_is_read_as_the_model_was_trained(make_cfg, run_in_process, tmp_path):
    """The field report: a model trained at data.sample_rate=8000 (and data.frame_size=160) scored with the
    README's `data=audio_dir data.root=...` on a copy of its own files: the data config's 16 kHz default
    doubled the frames (748 instead of 379) and frame_size 200 gave a matrix-shape traceback. The
    checkpoint's settings apply; one given explicitly against them is refused by name."""
    import shutil

    import numpy as np
    import soundfile as sf

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rng = np.random.default_rng(0)
    for index in range(10):
        sf.write(str(corpus / f"{index:02d}.wav"), (0.1 * rng.standard_normal(4000 + 400 * index)).astype("float32"),
                 8000)
    trained = ["data=audio_dir", f"data.root={corpus}", "data.sample_rate=8000", "data.frame_size=160",
               "data.cache_dir=null", "data.val_fraction=0.2", "data.test_fraction=0.2", "data.crop_frames=8",
               "data.batch_size=2", "model.hidden_size=16", "model.x_features=8", "model.z_features=8",
               "model.mlp_hidden=16", "model.z_dim=4", "training.max_iterations=2", "training.iterations_per_epoch=2",
               "training.test_after_training=false", "training.figures=false", "trainer.enable_progress_bar=false"]
    run = tmp_path / "run"
    train(make_cfg(*trained, f"paths.output_dir={run}", tiny=False))
    ckpt = run / "checkpoints" / "last.ckpt"
    copy = tmp_path / "copy"
    shutil.copytree(corpus, copy)
    scored = {}
    for name, data in (("own", []), ("given", ["data=audio_dir", f"data.root={copy}", "data.cache_dir=null",
                                               "data.val_fraction=0.2", "data.test_fraction=0.2"])):
        result = run_in_process("evaluate.py", f"ckpt_path={ckpt}", *data, "iwae_k=[]", "fivo_k=[]",
                                "speech_quality=false", f"output_dir={tmp_path / name}",
                                f"hydra.run.dir={tmp_path / name / 'job'}")
        assert result.returncode == 0, result.stderr[-2000:]
        scored[name] = json.loads((tmp_path / name / "metrics.json").read_text())
        (job_log,) = [path.read_text() for path in (tmp_path / name / "job").glob("*.log")]  # evaluate.log from src/
        # the printed report, also in the job's log
        assert "results:\nbound" in job_log and f"wrote {tmp_path / name / 'metrics.json'}" in job_log
        assert [line for line in result.stdout.splitlines() if line.startswith("elbo ")] == \
            [line for line in job_log.splitlines() if line.startswith("elbo ")]
    assert scored["given"]["test/frames"] == scored["own"]["test/frames"]
    assert scored["given"]["test/sequences"] == scored["own"]["test/sequences"] == 2
    refused = run_in_process("evaluate.py", f"ckpt_path={ckpt}", "data=audio_dir", f"data.root={copy}",
                             "data.sample_rate=16000", f"output_dir={tmp_path / 'refused'}")
    assert refused.returncode == 2
    assert refused.last_line == ("error: data.sample_rate=16000 cannot differ from the checkpoint's data.sample_rate=8000: "
                                 "the model was trained on those frames; drop data.sample_rate (a corpus at another "
                                 "sample rate is resampled to the model's)")
    generated = run_in_process("generate.py", f"ckpt_path={ckpt}", "data=audio_dir", f"data.root={copy}",
                               "data.sample_rate=16000", "n=1", "seconds=0.1", f"output_dir={tmp_path / 'generated'}")
    assert generated.returncode == 2 and generated.last_line == refused.last_line
    assert not list((tmp_path / "generated").rglob("*.wav"))  # refused before any sample was written


def noise_folder(folder, rate: int):
    """Six 1 s WAV files of white noise (std 0.1) at `rate` in a new `folder`: a corpus at a rate of its own."""
    import numpy as np
    import soundfile as sf

    folder.mkdir()
    for index in range(6):
        sf.write(str(folder / f"{index}.wav"), (0.1 * np.random.default_rng(index).standard_normal(rate)).astype(
            "float32"), rate)
    return folder


def test_a_corpus_at_another_rate_is_resampled_to_the_models_and_says_so(make_cfg, tmp_path, caplog):
    import logging

    from omegaconf import OmegaConf

    from avrnn.evaluation.scoring import build_eval_data
    from avrnn.training.fit import build_module, data_options

    cfg = make_cfg("data=audio_dir", f"data.root={tmp_path}", "data.sample_rate=8000", "data.frame_size=160",
                   tiny=False)
    module = build_module(cfg, normalization={"mean": 0.0, "std": 0.1}, data=data_options(cfg))
    other = noise_folder(tmp_path / "at16k", 16000)
    given = dict(data_options(cfg), root=str(other), sample_rate=16000, frame_size=200, cache_dir=None)
    with caplog.at_level(logging.INFO):
        datamodule = build_eval_data(module, OmegaConf.create(given), "test", batch_size=2)
    assert datamodule.options.sample_rate == 8000 and datamodule.options.frame_size == 160
    assert all(len(frames) == 50 for frames in datamodule.frames["test"])  # 1 s at 8 kHz in frames of 160
    taken = [r.getMessage() for r in caplog.records if r.getMessage().startswith("data: as the model was trained")]
    assert taken == ["data: as the model was trained: sample_rate=8000 (the data config given says 16000), "
                     "frame_size=160 (the data config given says 200)"]  # hop: null in both, the frame size
    assert "data: resampled 6 files from 16000 Hz to data.sample_rate=8000 Hz (soxr)" in caplog.text
    # the data line gives this corpus's own fitted statistics; the model reads the checkpoint's, and says so
    assert datamodule.statistics == {"mean": 0.0, "std": 0.1}
    normalised = [r.getMessage() for r in caplog.records if r.getMessage().startswith("data: normalised with")]
    (data_line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"data {other}:")]
    own = data_line.rsplit("), ", 1)[1]  # "mean ..., std ...": fitted on this folder's training split
    assert own.startswith("mean ") and own != "mean 0, std 0.1"
    assert normalised == ["data: normalised with the statistics of the checkpoint (mean 0, std 0.1), not this "
                          f"corpus's own ({own}, as the data line says)"]


def test_a_corpus_upsampled_to_the_models_rate_is_not_advised_a_rate_evaluation_refuses(make_cfg, tmp_path, caplog):
    """The fresh-user report: scoring 8 kHz files with a 16 kHz model warned "set data.sample_rate=8000", which
    evaluation then refuses (the rate is the checkpoint's). The warning says what the scores measure instead."""
    import logging

    from omegaconf import OmegaConf

    from avrnn.evaluation.scoring import build_eval_data
    from avrnn.training.fit import build_module, data_options

    cfg = make_cfg("data=audio_dir", f"data.root={tmp_path}", "data.frame_size=160", tiny=False)
    module = build_module(cfg, normalization={"mean": 0.0, "std": 0.1}, data=data_options(cfg))
    other = noise_folder(tmp_path / "at8k", 8000)
    with caplog.at_level(logging.INFO):
        build_eval_data(module, OmegaConf.create(dict(data_options(cfg), root=str(other), cache_dir=None)), "test", 2)
    (warning,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("data: files at")]
    assert warning == ("data: files at 8000 Hz were upsampled to 16000 Hz, the rate the checkpoint fixes: nothing above "
                       "4000 Hz is in them, so the bounds and reconstructions of those frequencies (a spectrogram's upper "
                       "bins) measure the resampler, not this corpus")


@pytest.mark.parametrize("given, trained, expected", [
    ({"sample_rate": 16000, "frame_size": 200, "hop": None}, {"frame_size": 160},  # an earlier version's: no rate
     {"sample_rate": 16000, "frame_size": 160, "hop": None}),
    ({"sample_rate": 8000, "frame_size": 200, "hop": None}, {"sample_rate": 8000, "frame_size": 160, "hop": None},
     {"sample_rate": 8000, "frame_size": 160, "hop": None}),  # the rate agrees: the frame size is still taken
    ({"sample_rate": 8000, "frame_size": 160, "hop": 160}, {"sample_rate": 8000, "frame_size": 160, "hop": None},
     {"sample_rate": 8000, "frame_size": 160, "hop": 160}),  # hop null means the frame size: the same framing
    ({"sample_rate": 8000, "frame_size": 160, "hop": None}, {"sample_rate": 8000, "frame_size": 160, "hop": 80},
     {"sample_rate": 8000, "frame_size": 160, "hop": 80}),
])
def test_the_model_input_settings_come_from_the_checkpoint_one_by_one(given, trained, expected):
    from avrnn.evaluation.scoring import fit_to_model

    assert {key: value for key, value in fit_to_model(given, trained).items() if key in expected} == expected


def test_settings_that_agree_with_the_checkpoint_are_neither_refused_nor_reported(caplog):
    """Given explicitly and equal (a hop of null is the frame size): nothing to refuse, nothing taken."""
    import logging

    from avrnn.evaluation.scoring import fit_to_model

    given = {"sample_rate": 8000, "frame_size": 160, "hop": 160, "root": "elsewhere"}
    with caplog.at_level(logging.INFO):
        assert fit_to_model(given, {"sample_rate": 8000, "frame_size": 160, "hop": None}, set(given)) == {**given, "resample": True}
    assert "as the model was trained" not in caplog.text


def test_a_corpus_at_another_rate_is_resampled_unless_resampling_is_turned_off_on_the_command_line():
    from avrnn.evaluation.scoring import fit_to_model

    trained = {"sample_rate": 8000, "frame_size": 160, "hop": None, "resample": False}
    assert fit_to_model(dict(trained), trained)["resample"] is True  # the checkpoint's data config said false
    assert fit_to_model(dict(trained), trained, {"resample"})["resample"] is False


def test_a_copy_of_the_corpus_is_split_as_the_model_was_unless_told_otherwise():
    """The fresh-user report: trained with a speaker pattern, scored on a copy with data=audio_dir's defaults:
    a random file split, training files scored as test."""
    from avrnn.evaluation.scoring import fit_to_model

    trained = {"sample_rate": 8000, "frame_size": 160, "hop": None, "speaker_pattern": "_([a-z]+)_",
               "val_fraction": 0.2, "split_seed": 3, "last_frame": "drop", "layout": "folder", "test_set": "core"}
    given = {"sample_rate": 8000, "frame_size": 160, "hop": None, "speaker_pattern": None, "val_fraction": 0.05,
             "split_seed": 0, "last_frame": "pad", "root": "copy", "layout": "folder", "test_set": "full"}
    taken = fit_to_model(dict(given), trained)
    assert {key: taken[key] for key in ("speaker_pattern", "val_fraction", "split_seed", "last_frame")} == {
        "speaker_pattern": "_([a-z]+)_", "val_fraction": 0.2, "split_seed": 3, "last_frame": "drop"}
    assert taken["test_set"] == "full"  # a key the folder layout does not read: left as given
    chosen = fit_to_model(dict(given), trained, {"split_seed"})  # given on the command line: kept
    assert chosen["split_seed"] == 0 and chosen["speaker_pattern"] == "_([a-z]+)_"
    timit = fit_to_model({**given, "layout": "timit"}, trained)  # another layout: its own split settings
    assert (timit["val_fraction"], timit["split_seed"], timit["last_frame"]) == (0.05, 0, "pad")


def test_the_data_keys_on_a_command_line_are_read_as_hydra_reads_them():
    from avrnn.evaluation.scoring import data_keys

    assert data_keys(["+data.sample_rate=8000", "~data.hop", "data.root='/a=b/c'", "++data.frame_size=100",
                      "data=audio_dir", "ckpt_path=x", "model.data_like=1"]) == {"sample_rate", "hop", "root",
                                                                                  "frame_size"}
    # a key inside a node gives the node too (the checkpoint's node is then not taken over it)
    assert data_keys(["data.representation.window=hann"]) == {"representation", "representation.window"}
    assert data_keys(["data/representation=stft"]) == {"representation"}


def test_a_smaller_particle_budget_is_what_evaluation_uses(make_cfg, compose_config, tmp_path):
    """max_particle_frames reaches the scoring: with a budget of 1 the IWAE particles are drawn in parts
    (other draws: another value), the ELBO's pass is the same (the same value)."""
    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=1", "training.test_after_training=false"))
    scored = [evaluate(compose_config("evaluate", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "iwae_k=[4]",
                                      "fivo_k=[]", "speech_quality=false", f"max_particle_frames={budget}",
                                      f"output_dir={tmp_path / str(budget)}"))
              for budget in (250000, 1)]
    assert scored[0]["test/elbo_per_timestep"] == scored[1]["test/elbo_per_timestep"]
    assert scored[0]["test/iwae_4_per_timestep"] != scored[1]["test/iwae_4_per_timestep"]


@pytest.mark.parametrize("error, expected", [
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 21474836480 bytes."), True),
    (RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB"), True),
    (RuntimeError("CUDA error: an illegal memory access was encountered"), False),
    (RuntimeError("shape '[8, 200]' is invalid for input of size 1280"), False),
])
def test_only_an_allocators_refusal_counts_as_running_out_of_memory(error, expected):
    import torch

    from avrnn.evaluation.scoring import out_of_memory

    assert out_of_memory(error) is expected
    assert out_of_memory(torch.OutOfMemoryError("CUDA out of memory")) is True
