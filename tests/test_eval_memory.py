"""IWAE-k in bounded memory (avrnn.evaluation.chunks): a long recording is scored in parts."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from avrnn.evaluation import chunks
from avrnn.models.bounds import iwae_bound, sequence_log_weights
from avrnn.models.vrnn import VRNN


@pytest.mark.parametrize("batch, steps, particles, budget, expected", [
    (8, 250, 64, 250_000, (8, 64)),        # a TIMIT batch: within the budget, unchanged
    (8, 4800, 64, 250_000, (1, 52)),       # a 60 s recording: one sequence, 52 particles at a time
    (8, 100, 64, 30_000, (4, 64)),         # groups of 4 sequences with all particles
    (2, 10_000, 16, 5_000, (1, 1)),        # the least it can do: one sequence, one particle
    (2, 10, 3, 60, (2, 3)),                # exactly the budget: unchanged
    (10, 1, 1, 5, (5, 1)),                 # one-frame sequences, one particle: five at a time
    (1, 1, 10, 5, (1, 5)),                 # one one-frame sequence: five particles at a time
])
def test_the_plan_keeps_each_part_within_the_budget(batch, steps, particles, budget, expected):
    sequences, chunk = chunks.plan(batch, steps, particles, budget)
    assert (sequences, chunk) == expected
    assert sequences * chunk * steps <= budget or (sequences, chunk) == (1, 1)


def tiny_vrnn():
    torch.manual_seed(0)
    return VRNN(input_size=8, z_dim=2, hidden_size=8, x_features=8, z_features=8, mlp_hidden=8).eval()


def batch_of(lengths, frame=8):
    x = torch.randn(len(lengths), max(lengths), frame)
    mask = torch.zeros(len(lengths), max(lengths))
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
        x[row, length:] = 0
    return x, mask


def test_within_the_budget_the_bound_is_the_unchunked_one_draw_for_draw():
    model, (x, mask) = tiny_vrnn(), batch_of([5, 9, 7])
    with torch.no_grad():
        torch.manual_seed(1)
        plain = iwae_bound(sequence_log_weights(model, x, mask, 16))
        torch.manual_seed(1)
        parts = chunks.iwae_in_parts(model, x, mask, 16, max_particle_frames=3 * 9 * 16)
    assert torch.equal(parts, plain)


def test_parts_cut_each_group_to_its_own_longest_and_join_every_particle(monkeypatch):
    """A deterministic stand-in for the log weights (each particle j of sequence b: the sum of its frames
    plus j): the parts must give log-mean-exp over all k particles of each sequence, in order."""
    calls = []

    def weights(model, x, mask, samples):
        calls.append((x.shape[0], x.shape[1], samples))
        base = (x * mask[..., None]).sum((1, 2))
        offset = sum(c[2] for c in calls[:-1] if c[:2] == (x.shape[0], x.shape[1]))  # particles done for this group
        return base[None] + torch.arange(offset, offset + samples, dtype=x.dtype)[:, None]

    monkeypatch.setattr(chunks, "sequence_log_weights", weights)
    x, mask = batch_of([3, 12, 4])
    bound = chunks.iwae_in_parts(None, x, mask, 10, max_particle_frames=12 * 4)  # one sequence, 4 particles
    assert calls == [(1, 3, 4), (1, 3, 4), (1, 3, 2), (1, 12, 4), (1, 12, 4), (1, 12, 2), (1, 4, 4), (1, 4, 4),
                     (1, 4, 2)]
    expected = (x * mask[..., None]).sum((1, 2)) + torch.logsumexp(torch.arange(10.0), 0) - math.log(10)
    assert torch.allclose(bound, expected)


def test_groups_of_sequences_each_cut_to_their_own_longest_score_every_sequence_once(monkeypatch):
    calls = []

    def weights(model, x, mask, samples):
        calls.append((x.shape[0], x.shape[1], samples))
        return (x * mask[..., None]).sum((1, 2))[None] + torch.arange(samples, dtype=x.dtype)[:, None]

    monkeypatch.setattr(chunks, "sequence_log_weights", weights)
    x, mask = batch_of([3, 4, 12, 10, 5])
    bound = chunks.iwae_in_parts(None, x, mask, 10, max_particle_frames=2 * 12 * 10)  # two sequences, all particles
    assert calls == [(2, 4, 10), (2, 12, 10), (1, 5, 10)]
    expected = (x * mask[..., None]).sum((1, 2)) + torch.logsumexp(torch.arange(10.0), 0) - math.log(10)
    assert bound.shape == (5,) and torch.allclose(bound, expected)


def test_in_parts_the_bound_is_the_same_estimate(monkeypatch):
    """Other random draws, the same estimator: over 20 seeds the two means agree within their noise."""
    model, (x, mask) = tiny_vrnn(), batch_of([20, 30, 25])
    plain, parts = [], []
    with torch.no_grad():
        for seed in range(20):
            torch.manual_seed(seed)
            plain.append(float(iwae_bound(sequence_log_weights(model, x, mask, 8)).sum()))
            torch.manual_seed(seed)
            parts.append(float(chunks.iwae_in_parts(model, x, mask, 8, max_particle_frames=60).sum()))
    noise = math.hypot(np.std(plain), np.std(parts)) / math.sqrt(20)
    assert abs(np.mean(plain) - np.mean(parts)) < 4 * noise
    assert plain != parts  # the parts did draw anew (else this test checks nothing)


def test_running_out_of_memory_is_one_line_naming_the_settings(make_cfg, compose_config, tmp_path, monkeypatch):
    from avrnn.config import ConfigError
    from avrnn.evaluation import scoring
    from avrnn.training.fit import train

    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=1"))

    def refuse(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 21474836480 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(scoring, "score", refuse)
    with pytest.raises(ConfigError, match=r"^evaluation ran out of memory \(.*can't allocate memory.*\); lower "
                                          r"max_particle_frames \(now 250,000: particles x utterances x frames scored "
                                          r"at once\) or batch_size \(now 8\); nothing was written$"):
        scoring.evaluate(compose_config("evaluate", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
                                        f"output_dir={tmp_path / 'eval'}"))
    assert not (tmp_path / "eval" / "metrics.json").exists()


PEAK = """
import resource, runpy, sys
sys.argv = ["src/evaluate.py", *sys.argv[1:]]
try:
    runpy.run_path("src/evaluate.py", run_name="__main__")
except SystemExit as end:
    assert not end.code, end.code
print("peak_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_a_long_recording_is_scored_within_the_budget(run_script, tmp_path, tiny, root):
    """One 40 s recording among 1 s ones, IWAE-32 (2 x 3,280 x 32 = 210,000 particle-frames, 1.2 GB above
    the rest at this tiny size): the peak memory of a budget of 20,000 against an unbounded one (measured:
    1.0 against 2.2 GB), and the same bound within its noise."""
    corpus = tmp_path / "corpus" / "spk"
    corpus.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(3):
        sf.write(str(corpus / f"short{index}.wav"), (0.1 * rng.standard_normal(16000)).astype("float32"), 16000)
    sf.write(str(corpus / "long.wav"), (0.1 * rng.standard_normal(40 * 16000)).astype("float32"), 16000)
    model = [item for item in tiny if item.startswith("model.")]
    run = tmp_path / "run"
    trained = run_script("train.py", *model, "data=audio_dir", f"data.root={corpus.parent}", "data.cache_dir=null",
                         "data.val_fraction=0.25", "data.test_fraction=0.25", "training.max_iterations=1",
                         "training.test_after_training=false", "training.figures=false", f"hydra.run.dir={run}")
    assert trained.returncode == 0, trained.stderr[-2000:]
    stored = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["avrnn_splits"]
    split = next(name for name, split in stored.items() if any(f.endswith("long.wav") for f in split["files"]))
    peaks, bounds = {}, {}
    for name, budget in (("bounded", 20_000), ("unbounded", 10 ** 9)):
        out = tmp_path / name
        result = subprocess.run([sys.executable, "-c", PEAK, f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
                                 f"split={split}", "iwae_k=[32]", "fivo_k=[]", "speech_quality=false", "batch_size=8",
                                 f"max_particle_frames={budget}", f"output_dir={out}",
                                 f"hydra.run.dir={tmp_path / name / 'hydra'}"],
                                cwd=root, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-2000:]
        peaks[name] = int(result.stdout.split("peak_kb")[-1])
        bounds[name] = json.loads((out / "metrics.json").read_text())[f"{split}/iwae_32_per_timestep"]
    assert peaks["bounded"] < 0.6 * peaks["unbounded"], peaks
    assert bounds["bounded"] == pytest.approx(bounds["unbounded"], rel=0.02)
