"""Resume exactly after every way a run stops, refuse unsafe or corrupt checkpoints (a full disk during a
save: tests/test_atomic_writes.py)."""

import math
import os
import signal

import pytest
import torch

from avrnn.analysis.figures import read_scalars
from avrnn.training.checkpoints import CheckpointError, load_checkpoint
from avrnn.training.module import AVRNNModule, TrainingFault
from avrnn.training.fit import train
from avrnn.training.stops import RunStopped

# deterministic kernels; 2 iterations per epoch so that checkpoints fall mid-epoch as well
DETERMINISTIC = ["trainer.deterministic=true", "training.iterations_per_epoch=2", "training.validate_before_training=false"]


def final_state(run_dir):
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    return checkpoint["state_dict"], checkpoint["avrnn_iteration"], checkpoint["optimizer_states"]


def losses_logged(run_dir):
    steps, values = read_scalars(run_dir)["train/rec_per_timestep"]
    return dict(zip(steps.tolist(), values.tolist()))


class SimulatedKill(Exception):
    pass


def signal_at(monkeypatch, iteration: int, signum=signal.SIGTERM, during: str = "training_step"):
    """The process sends itself `signum` right after training iteration `iteration` (during="training_step"),
    or in the first validation step after it (during="validation_step"): a test-only hook, no race."""
    original = getattr(AVRNNModule, during)
    sent = []

    def sending(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if self.iteration == iteration and not sent and not self.trainer.sanity_checking:
            sent.append(signum)
            os.kill(os.getpid(), signum)
        return out

    monkeypatch.setattr(AVRNNModule, during, sending)
    return sent


def kill_at(monkeypatch, iteration: int):
    """Dies at the start of iteration `iteration` + 1, like a SIGKILL between steps (nothing saved then)."""
    original = AVRNNModule.training_step

    def dying_step(self, batches, batch_idx):
        if self.iteration == iteration:
            raise SimulatedKill()
        return original(self, batches, batch_idx)

    monkeypatch.setattr(AVRNNModule, "training_step", dying_step)


# how a run can stop -> (overrides of the stopped run, how it stops, the iteration last.ckpt then holds)
STOPS = {
    "epoch_end": (["training.max_iterations=4"], None, 4),
    "max_iterations_mid_epoch": (["training.max_iterations=3"], None, 3),
    "signal": ([], ("signal", 3), 3),
    "signal_during_validation": ([], ("validation_signal", 4), 4),
    "checkpoint_every_iterations_then_kill": (["training.checkpoint_every_iterations=3"], ("kill", 3), 3),  # mid-epoch
    # every iteration (a tiny interval): Lightning's train_time_interval never saved under manual optimization
    "checkpoint_every_minutes_then_kill": (["training.checkpoint_every_minutes=1e-9"], ("kill", 3), 3),
}
_STRAIGHT: dict[str, object] = {}
# each model's overrides: model=<name>, or A-VRNN on the power spectrogram with the Itakura-Saito emission
MODELS = {"avrnn": ["model=avrnn"], "vrnn": ["model=vrnn"],
          "avrnn_stft": ["model=avrnn", "data/representation=stft", "data.frame_size=256", "data.hop=64",
                         "data.representation.trim_top_db=null", "model.emission=itakura_saito"]}


def straight_run(make_cfg, tmp_path_factory, model):
    """One uninterrupted 6-iteration run per model, shared by the stops."""
    if model not in _STRAIGHT:
        folder = tmp_path_factory.mktemp(f"straight-{model}")
        train(make_cfg(*MODELS[model], *DETERMINISTIC, "training.max_iterations=6", f"paths.output_dir={folder}"))
        _STRAIGHT[model] = folder
    return _STRAIGHT[model]


def best_checkpoint(run_dir):
    [path] = (run_dir / "checkpoints").glob("best-*.ckpt")
    return path.name, torch.load(path, weights_only=True)


@pytest.mark.parametrize("model,stop", [
    *[("avrnn", stop) for stop in STOPS],
    *[pytest.param("vrnn", stop, marks=pytest.mark.slow) for stop in ("max_iterations_mid_epoch", "signal")],
    ("avrnn_stft", "signal")])
def test_every_stop_resumes_to_the_uninterrupted_run(make_cfg, tmp_path, tmp_path_factory, monkeypatch, model, stop):
    """Stopped any way a run can stop, then resumed to 6 iterations: bitwise the parameters, optimizer states,
    losses and best checkpoint of one uninterrupted run. The only allowed difference: a stop at max_iterations
    validates once more (its values are logged; its best checkpoint may win)."""
    straight = straight_run(make_cfg, tmp_path_factory, model)
    overrides, how, saved_at = STOPS[stop]
    resumed = tmp_path / "resumed"
    stopped_cfg = make_cfg(*MODELS[model], *DETERMINISTIC, "training.max_iterations=6", *overrides,
                           f"paths.output_dir={resumed}")
    if how is None:
        train(stopped_cfg)
    elif how[0] == "kill":
        kill_at(monkeypatch, how[1])
        with pytest.raises(SimulatedKill):
            train(stopped_cfg)
    else:
        signal_at(monkeypatch, how[1], during="training_step" if how[0] == "signal" else "validation_step")
        with pytest.raises(RunStopped) as stopped:
            train(stopped_cfg)
        assert stopped.value.exit_code == 128 + signal.SIGTERM
    monkeypatch.undo()
    assert final_state(resumed)[1] == saved_at
    train(make_cfg(*MODELS[model], *DETERMINISTIC, "training.max_iterations=6", *overrides[1:],
                   f"paths.output_dir={resumed}", "ckpt_path=last"))
    expected, resumed_state = final_state(straight), final_state(resumed)
    assert resumed_state[1] == expected[1] == 6
    for name, tensor in expected[0].items():
        assert torch.equal(resumed_state[0][name], tensor), name
    for a, b in zip(expected[2], resumed_state[2]):  # every optimizer's moments too
        for key, state in a["state"].items():
            for field, value in state.items():
                assert torch.equal(b["state"][key][field], value), (key, field)
    straight_losses, resumed_losses = losses_logged(straight), losses_logged(resumed)
    assert sorted(resumed_losses) == sorted(straight_losses) == list(range(6))  # the stopped iteration's too
    for step in range(6):
        assert resumed_losses[step] == straight_losses[step], step
    (name, best), (expected_name, expected_best) = best_checkpoint(resumed), best_checkpoint(straight)
    if not (stop == "max_iterations_mid_epoch" and best["avrnn_iteration"] == saved_at):
        assert name == expected_name
        assert all(torch.equal(best["state_dict"][k], v) for k, v in expected_best["state_dict"].items())


def test_evaluation_does_not_draw_from_the_training_stream(make_cfg, tmp_path):
    """Validating (before training and after every 2 iterations) or not: the same trained parameters."""
    runs = {}
    for name, validation in (("validated", ["training.validate_before_training=true"]),
                             ("never", ["trainer.limit_val_batches=0"])):
        train(make_cfg(*DETERMINISTIC, *validation, "training.max_iterations=4", "training.test_after_training=false",
                       f"paths.output_dir={tmp_path / name}"))
        runs[name] = final_state(tmp_path / name)[0]
    assert all(torch.equal(runs["validated"][k], v) for k, v in runs["never"].items())


def test_resume_needs_an_existing_checkpoint(make_cfg, tmp_path):
    with pytest.raises(CheckpointError, match="ckpt_path=last: no .*last.ckpt; resume a run with hydra.run.dir"):
        train(make_cfg("ckpt_path=last", f"paths.output_dir={tmp_path / 'fresh'}"))


class Exploit:
    """Unpickling this creates a file: what a malicious checkpoint could do."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_malicious_checkpoint_is_refused_and_runs_no_code(make_cfg, tmp_path):
    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=1"))
    last = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    marker = tmp_path / "pwned"
    checkpoint["hyper_parameters"]["payload"] = Exploit(str(marker))
    torch.save(checkpoint, last)
    with pytest.raises(CheckpointError, match="refusing to load .*last.ckpt: it holds pickled objects"):
        train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=2", "ckpt_path=last"))
    assert not marker.exists()


def test_truncated_checkpoint_gets_a_clear_error(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1000)}}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="is truncated or corrupt"):
        load_checkpoint(path)


def test_a_nan_batch_is_skipped_counted_and_training_goes_on(make_cfg, monkeypatch):
    from avrnn.models.vrnn import VRNN

    original = VRNN._trajectory  # under forward (reconstruction) and latents (critic, adversarial)
    calls = {"n": 0}
    seen = []

    def poisoned(self, x, *args):
        calls["n"] += 1
        if calls["n"] == 2:  # the second pass (iteration 1's critic phase) sees a NaN batch
            x = x.clone()
            x[0, 0, 0] = float("nan")
        return original(self, x, *args)

    monkeypatch.setattr(VRNN, "_trajectory", poisoned)
    original_fit_start = AVRNNModule.on_fit_start
    monkeypatch.setattr(AVRNNModule, "on_fit_start", lambda self: (seen.append(self), original_fit_start(self)))
    metrics = train(make_cfg("training.max_iterations=3", "training.validate_before_training=false"))
    module = seen[0]
    assert module.iteration == 3 and module.skipped_steps == {"critic": 1}
    assert metrics["faults/skipped_critic_steps"] == 1
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_exploding_learning_rate_stops_with_the_phase_and_last_checkpoint(make_cfg, tmp_path):
    with pytest.raises(TrainingFault, match=r"5 non-finite steps in a row \(last in the elbo phase, iteration \d+\); "
                                            r"lower that phase's learning rate .*last good checkpoint: .*last.ckpt$"):
        train(make_cfg("model=vrnn", "model.optimizer.lr=1e30", "training.grad_clip_norm=null",
                       "training.max_bad_steps=5", "training.max_iterations=50", "training.iterations_per_epoch=2"))


def test_extreme_amplitude_input_trains_and_stays_finite(make_cfg, monkeypatch):
    """Unnormalised int16-scale waveforms (|x| up to ~16,000): clipping and std floors keep it finite."""
    from avrnn.data.framing import Normalization

    monkeypatch.setattr(Normalization, "apply", lambda self, wave: (wave * 32768).astype("float32"))
    seen = []
    original_fit_start = AVRNNModule.on_fit_start
    monkeypatch.setattr(AVRNNModule, "on_fit_start", lambda self: (seen.append(self), original_fit_start(self)))
    metrics = train(make_cfg("training.max_iterations=4", "training.iterations_per_epoch=2"))
    assert seen[0].skipped_steps == {}
    assert metrics["train/rec_per_timestep"] > 1000  # it really saw huge inputs
    assert all(math.isfinite(value) for value in metrics.values())
    assert all(torch.isfinite(p).all() for p in seen[0].parameters())
