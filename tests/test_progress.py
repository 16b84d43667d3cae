"""Progress of long loops (reading a corpus, scoring a split): a bar on a terminal, log lines at most every N seconds elsewhere (a file
holds no carriage-return bar and is not silent for as long as IWAE-64 takes)."""

import logging

from avrnn.data.progress import progress


LOG = logging.getLogger("avrnn.evaluation")


def run(items, ticks, caplog, **kwargs):
    clock = iter(ticks)
    with caplog.at_level(logging.INFO, logger="avrnn.evaluation"):
        out = list(progress(items, "scoring test", LOG, every_seconds=30, terminal=False, clock=lambda: next(clock),
                            **kwargs))
    return out, [r.getMessage() for r in caplog.records if r.name == "avrnn.evaluation"]


def test_without_a_terminal_a_line_every_30_seconds_and_one_at_the_end(caplog):
    # start at 0; batches end at 10, 35, 40, 80 seconds; the end read at 80
    out, lines = run([1, 2, 3, 4], [0, 10, 35, 40, 80, 80], caplog)
    assert out == [1, 2, 3, 4]  # every item, in order
    # ETA: (35 - 10) s per batch after the first, 2 left
    assert lines == ["scoring test: batch 2/4 (50%), 17.50 s/batch, ETA 50s",
                     "scoring test: 4 batches in 1m20s (20.00 s/batch)"]


def test_an_iterable_without_a_length_still_reports(caplog):
    out, lines = run(iter("ab"), [0, 31, 32, 32], caplog)
    assert out == ["a", "b"]
    assert lines == ["scoring test: batch 1, 31.00 s/batch", "scoring test: 2 batches in 32s (16.00 s/batch)"]


def test_on_a_terminal_the_bar_is_drawn_and_nothing_logged(caplog, capsys):
    with caplog.at_level(logging.INFO, logger="avrnn.evaluation"):
        assert list(progress([1, 2], "scoring test", LOG, terminal=True)) == [1, 2]
    assert not [r for r in caplog.records if r.name == "avrnn.evaluation"]
    assert "scoring test" in capsys.readouterr().err


def test_the_unit_names_what_is_counted(caplog):
    _, lines = run(["a.wav", "b.wav"], [0, 40, 41, 41], caplog, unit="file")
    assert lines == ["scoring test: file 1/2 (50%), 40.00 s/file", "scoring test: 2 files in 41s (20.50 s/file)"]


def test_reading_a_corpus_without_a_terminal_logs_how_many_files_it_read(tmp_path, caplog):
    import numpy as np
    import soundfile as sf

    from avrnn.data.datamodule import SpeechDataModule
    from avrnn.data.options import DataOptions

    for index in range(6):
        sf.write(str(tmp_path / f"{index}.wav"), np.zeros(1600, "float32") + 0.1 * (index + 1), 16000)
    with caplog.at_level(logging.INFO, logger="avrnn.data.datamodule"):
        SpeechDataModule(DataOptions(root=str(tmp_path), layout="folder", val_fraction=0.2, test_fraction=0.2,
                                     cache_dir=None)).setup()
    assert any(r.getMessage().startswith(f"reading {tmp_path.name}: 6 files in ") for r in caplog.records)
    (summary,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"data {tmp_path}: ")]
    assert "val 1 utterance / " in summary and "train 4 utterances / " in summary  # a split of one: singular


def test_generating_the_built_in_corpus_says_so_and_how_far_it_is(tmp_path, caplog):
    """It takes about 20 s on a first run, which was silent."""
    from avrnn.data import synthetic

    spec = synthetic.SyntheticCorpusSpec(train_speakers=2, test_speakers=1, utterances_per_speaker=1, min_seconds=0.1,
                                         max_seconds=0.2)
    with caplog.at_level(logging.INFO, logger="avrnn.data.synthetic"):
        synthetic.generate_corpus(tmp_path / "synthetic", spec)
        synthetic.generate_corpus(tmp_path / "synthetic", spec)  # there already: reused without a word
    lines = [r.getMessage() for r in caplog.records if r.name == "avrnn.data.synthetic"]
    assert len(lines) == 2, lines
    assert lines[0] == (f"generating the built-in synthetic corpus in {tmp_path / 'synthetic'} (3 speakers x 1 "
                        f"utterance at {spec.sample_rate} Hz; once, then reused)")
    assert lines[1].startswith("generating the built-in corpus: 3 speakers in ")


def test_one_item_is_named_in_the_singular_and_a_bad_interval_refused(caplog):
    import pytest

    _, lines = run(["a.wav"], [0, 2, 2], caplog, unit="file")
    assert lines == ["scoring test: 1 file in 2s (2.00 s/file)"]
    with pytest.raises(ValueError, match="every_seconds must be > 0, got 0"):
        list(progress([1], "x", LOG, every_seconds=0))


def test_a_notebook_counts_as_a_terminal_and_a_redirected_stdout_does_not(monkeypatch):
    import sys
    import types

    from avrnn.data import progress as module

    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert not module.on_terminal()
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert module.on_terminal()


def test_evaluate_reports_its_scoring_and_speech_quality_loops(make_cfg, compose_config, tmp_path, caplog):
    from avrnn.evaluation.scoring import evaluate
    from avrnn.training.fit import train

    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=1"))
    with caplog.at_level(logging.INFO, logger="avrnn.evaluation"):
        evaluate(compose_config("evaluate", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "iwae_k=[]",
                                "fivo_k=[]", f"output_dir={tmp_path / 'eval'}"))
    lines = [r.getMessage() for r in caplog.records if r.name == "avrnn.evaluation"]
    assert any(line.startswith("scoring test: ") and " in " in line for line in lines), lines
    assert any(line.startswith("reconstructing and scoring test: ") for line in lines), lines


def test_the_eta_leaves_out_the_first_items_one_off_cost(caplog):
    # the first file takes 48 s (an import inside it), the next ones 1 s each
    _, lines = run(list(range(10)), [0, 48, 49, 80, *range(81, 88), 88], caplog, unit="file")
    assert lines[0] == "scoring test: file 1/10 (10%), 48.00 s/file"  # no ETA from one item
    assert lines[1] == "scoring test: file 3/10 (30%), 26.67 s/file, ETA 1m52s"  # (80 - 48) / 2 x 7 left


def test_a_ddp_process_other_than_the_first_reads_without_a_word(caplog, capsys, monkeypatch):
    """Every process of a DDP run reads the corpus; one line per file count, not one per process."""
    from lightning_fabric.utilities.rank_zero import rank_zero_only

    monkeypatch.setattr(rank_zero_only, "rank", 1)
    out, lines = run([1, 2, 3], [0, 40, 80, 80], caplog)
    assert out == [1, 2, 3] and lines == []
    assert list(progress([1], "scoring test", LOG, terminal=True)) == [1] and capsys.readouterr().err == ""


def test_a_pace_of_many_items_a_second_reads_as_items_per_second():
    """The fresh-user trial: "reading fsdd-3spk: 1500 files in 4s (0.00 s/file)"."""
    from avrnn.data.progress import pace

    assert pace(4.0, 1500, "file") == "375 files/s"
    assert pace(0.25, 5, "batch") == "20 batches/s"
    assert pace(32.0, 2, "batch") == "16.00 s/batch" and pace(0.0, 0, "file") == "0.00 s/file"
