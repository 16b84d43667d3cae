"""evaluate.py and generate.py check every value before the checkpoint is read (avrnn.evaluation.settings)."""

import pytest

# ckpt_path names no file: a value that passed its check would fail on the checkpoint instead
BAD = [
    ("evaluate.py", "iwae_k=16", "error: Error merging override iwae_k=16: Invalid value assigned: int is not a "
                                 "ListConfig, list or tuple. (a list: iwae_k=[16], or iwae_k=[] for none)"),
    ("evaluate.py", "iwae_k=[0]", "error: iwae_k=[0]: each k is a number of particles, 1 or more (k=1 is the ELBO); "
                                  "use e.g. iwae_k=[16,64], or iwae_k=[] for none"),
    ("evaluate.py", "fivo_k=[16,-2]", "error: fivo_k=[16, -2]: each k is a number of particles, 1 or more"),
    ("evaluate.py", "iwae_k=[2.5]", "error: Error merging override iwae_k=[2.5]: Value '2.5' of type 'float' could not "
                                    "be converted to Integer"),
    ("evaluate.py", "batch_size=2.5", "error: Error merging override batch_size=2.5: Value '2.5' of type 'float' could "
                                      "not be converted to Integer"),
    ("evaluate.py", "batch_size=0", "error: batch_size must be positive, got 0"),
    ("evaluate.py", "split=dev", "error: split='dev' is not a split; choose one of train, val, test"),
    ("evaluate.py", "num_threads=0", "error: num_threads must be positive, got 0"),
    ("evaluate.py", "iwae=16", "error: Could not override 'iwae'.: Key 'iwae' not in 'EvaluateConfig' (allowed keys: "),
    ("evaluate.py", "data.root=/corpus", "error: data.root=/corpus sets a key of data, and no data=... was chosen; "
                                         "choose one first: data=audio_dir data.root=/path/to/folder"),
    ("evaluate.py", "data/representation=waveform", "error: data/representation=waveform: a checkpoint is read in the "
                                                    "representation it trained in (its features are what a timestep "
                                                    "is); drop it"),
    ("generate.py", "data/representation=stft", "error: data/representation=stft: a checkpoint is read in the "
                                                "representation it trained in"),
    ("evaluate.py", "data=synthtic", "error: data=synthtic: there is no data called 'synthtic' ("),
    ("evaluate.py", "data=synthetic data/representation=stft", "error: data/representation=stft: a checkpoint is read "
                                                               "in the representation it trained in"),
    ("evaluate.py", "data=audio_dir data.sample_rate=abc", "error: Error merging override data.sample_rate=abc: Value "
                                                          "'abc' of type 'str' could not be converted to Integer"),
    ("generate.py", "n=2.5", "error: Error merging override n=2.5: Value '2.5' of type 'float' could not be converted "
                             "to Integer"),
    ("generate.py", "seconds=abc", "error: Error merging override seconds=abc: Value 'abc' of type 'str' could not be "
                                   "converted to Float"),
    ("generate.py", "seconds=-3", "error: seconds (the length of each sample) must be positive and at most 3600 (an "
                                  "hour: samples are drawn one timestep after another), got -3.0"),
    ("generate.py", "seconds=0", "error: seconds (the length of each sample) must be positive and at most 3600"),
    ("generate.py", "seconds=inf", "error: seconds (the length of each sample) must be positive and at most 3600 (an "
                                   "hour: samples are drawn one timestep after another), got inf"),
    ("generate.py", "seconds=nan", "error: seconds (the length of each sample) must be positive and at most 3600"),
    ("generate.py", "seconds=1e9", "error: seconds (the length of each sample) must be positive and at most 3600"),
    ("generate.py", "n=-1", "error: n (samples from the prior) must be at least 0, got -1"),
    ("generate.py", "reconstructions=-2", "error: reconstructions must be at least 0, got -2"),
    ("generate.py", "n=0 reconstructions=0", "error: n=0 and reconstructions=0 write nothing; ask for samples (n=8) or "
                                             "reconstructions"),
]


@pytest.mark.parametrize("script, settings, line", BAD, ids=[f"{s}:{a}" for s, a, _ in BAD])
def test_a_bad_value_is_one_line_before_the_checkpoint_is_read(run_in_process, tmp_path, script, settings, line):
    out = tmp_path / "out"
    result = run_in_process(script, f"ckpt_path={tmp_path / 'none.ckpt'}", f"output_dir={out}", *settings.split())
    assert result.returncode == 2
    assert result.last_line.startswith(line), result.last_line
    assert "Traceback" not in result.stderr
    assert not out.exists() or not any(path.suffix in (".json", ".wav") for path in out.rglob("*"))


def test_the_defaults_pass_the_checks(compose_config):
    from avrnn.evaluation.settings import check_evaluate, check_generate

    check_evaluate(compose_config("evaluate", "ckpt_path=x"))
    check_generate(compose_config("generate", "ckpt_path=x"))
    check_generate(compose_config("generate", "ckpt_path=x", "n=0"))  # reconstructions only
