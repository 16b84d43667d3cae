"""SI-SDR, PESQ and ESTOI of reconstructions (src/evaluate.py): closed form, ranking, short utterances."""

import json

import numpy as np
import pytest

from avrnn.data.synthetic import synthesize_utterance
from avrnn.evaluation.scoring import evaluate
from avrnn.evaluation.speech_quality import MIN_SECONDS, score_utterance, si_sdr, summarize
from avrnn.training.fit import train

pytest.importorskip("pesq")
pytest.importorskip("pystoi")


def speech(seconds: float = 2.0, rate: int = 16000) -> np.ndarray:
    return synthesize_utterance(np.random.default_rng(0), seconds, rate, f0_base=120.0, formant_scale=1.0)


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 30.0])
def test_si_sdr_of_a_signal_plus_known_white_noise_matches_the_closed_form(snr_db):
    """Noise made orthogonal to the signal: the optimal scale is 1 and SI-SDR = 10 log10(|s|^2 / |n|^2)."""
    s = speech().astype(np.float64)
    noise = np.random.default_rng(1).standard_normal(len(s))
    noise -= noise @ s / (s @ s) * s  # orthogonal to s
    noise *= np.sqrt((s @ s) / (noise @ noise) / 10 ** (snr_db / 10))
    assert si_sdr(s + noise, s) == pytest.approx(snr_db, abs=0.1)
    assert si_sdr(3.0 * (s + noise), s) == pytest.approx(snr_db, abs=0.1)  # scale-invariant


@pytest.mark.parametrize("rate,pesq_mode", [(16000, "wb"), (8000, "nb")])
def test_a_clean_reconstruction_ranks_above_a_noisy_one_on_all_three(rate, pesq_mode):
    clean = speech(rate=rate)
    rng = np.random.default_rng(2)
    slightly = (clean + 0.01 * rng.standard_normal(len(clean))).astype(np.float32)
    very = (clean + 0.2 * rng.standard_normal(len(clean))).astype(np.float32)
    good, bad = score_utterance(slightly, clean, rate), score_utterance(very, clean, rate)
    for name in ("si_sdr", "pesq", "estoi"):
        assert isinstance(good[name], float) and isinstance(bad[name], float), (name, good[name], bad[name])
        assert good[name] > bad[name], name


def test_pesq_is_not_computed_at_rates_it_does_not_support():
    clean = speech(rate=22050)
    scores = score_utterance(clean, clean, 22050)
    assert scores["pesq"] == "PESQ needs 8 or 16 kHz audio, this corpus is at 22050 Hz"
    assert isinstance(scores["si_sdr"], float) and isinstance(scores["estoi"], float)


def test_an_utterance_shorter_than_the_minimum_is_skipped_and_counted():
    short = speech(seconds=MIN_SECONDS / 2)
    scored = [score_utterance(short, short, 16000), score_utterance(speech(), speech(), 16000)]
    summary = summarize(scored, "test")
    assert summary["test/si_sdr_utterances"] == 1 and summary["test/si_sdr_skipped"] == 1
    assert summary["test/pesq_skipped_because"] == {f"shorter than {MIN_SECONDS} s": 1}
    assert summary["test/estoi_mean"] == pytest.approx(1.0, abs=1e-3)  # the one scored: identical signals


def test_evaluate_reports_the_three_measures_and_says_why_none_was_computed(make_cfg, compose_config, tmp_path,
                                                                         capsys):
    """The tiny corpus's utterances (0.2-0.4 s) are mostly too short: each is scored or counted with its
    reason, never a crash or a made-up number."""
    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=2"))
    metrics = evaluate(compose_config("evaluate", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "iwae_k=[]",
                                      "fivo_k=[]", f"output_dir={tmp_path / 'eval'}"))
    for name in ("si_sdr", "pesq", "estoi"):
        assert metrics[f"test/{name}_utterances"] + metrics[f"test/{name}_skipped"] == 4
        assert (metrics[f"test/{name}_mean"] is None) == (metrics[f"test/{name}_utterances"] == 0)
    assert metrics["test/estoi_skipped"] == 4  # none holds 0.4 s of speech: none is scored by any metric
    assert metrics["test/si_sdr_skipped"] == metrics["test/pesq_skipped"] == 4
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["test/si_sdr_unit"] == "dB"
    out = capsys.readouterr().out
    assert "  scored on 0 of 4 utterances; 4 left out of every measure: " in out
    assert "  ESTOI       not computed\n" in out and "  SI-SDR      not computed\n" in out


def test_every_metric_leaves_out_the_same_silent_utterances_and_counts_them(capsys):
    """The field report: three digitally silent files among speech; SI-SDR scored each at about -150 dB and
    averaged them in, while PESQ and ESTOI skipped them."""
    from avrnn.evaluation.scoring import print_speech_quality

    rng = np.random.default_rng(3)
    utterances = [speech(seconds=1.0 + 0.25 * n) for n in range(3)] + [np.zeros(16000, np.float32)] * 2
    utterances.append((rng.uniform(-1, 1, 16000) * 2.0 ** -16).astype(np.float32))  # dither below one 16-bit step
    scored = [score_utterance((u + 0.01 * rng.standard_normal(len(u))).astype(np.float32), u, 16000)
              for u in utterances]
    summary = summarize(scored, "test")
    expected = np.mean([s["si_sdr"] for s in scored[:3]])
    for name in ("si_sdr", "pesq", "estoi"):
        assert summary[f"test/{name}_utterances"] == 3 and summary[f"test/{name}_skipped"] == 3
        assert summary[f"test/{name}_skipped_because"] == {"digitally silent": 3}
    assert summary["test/si_sdr_mean"] == pytest.approx(expected) and summary["test/si_sdr_mean"] > 0
    print_speech_quality({**summary, "test/speech_quality_seconds": 1.0}, "test", 16000)
    out = capsys.readouterr().out  # the reason once, above the measures it applies to
    assert out.count("digitally silent") == 1 and "  scored on 3 of 6 utterances; 3 left out of every measure: " \
        "3 digitally silent\n" in out and f"  SI-SDR      {expected:.3f} +/- " in out


def test_an_utterance_one_metric_cannot_score_is_scored_by_none(monkeypatch):
    from avrnn.evaluation import speech_quality

    def no_speech(*args):
        raise speech_quality.Unscorable("unscorable by PESQ (No utterances detected)")

    monkeypatch.setattr(speech_quality, "pesq", no_speech)
    clean = speech(seconds=1.0)
    assert score_utterance(clean, clean, 16000) == dict.fromkeys(("si_sdr", "pesq", "estoi"),
                                                                 "unscorable by PESQ (No utterances detected)")
    monkeypatch.undo()
    monkeypatch.setattr(speech_quality, "estoi", lambda *args: float("nan"))
    assert score_utterance(clean, clean, 16000) == dict.fromkeys(("si_sdr", "pesq", "estoi"), "estoi not finite")


def test_estoi_is_the_extended_measure_and_each_reason_is_named(monkeypatch):
    from pystoi import stoi

    from avrnn.evaluation import speech_quality

    clean = speech(seconds=1.5)
    noisy = (clean + 0.05 * np.random.default_rng(4).standard_normal(len(clean))).astype(np.float32)
    value = speech_quality.estoi(noisy, clean, 16000)
    assert value == pytest.approx(stoi(clean, noisy, 16000, extended=True), abs=1e-4)
    assert value != pytest.approx(stoi(clean, noisy, 16000, extended=False), abs=1e-3)  # not the plain STOI
    briefly = np.zeros(16000, np.float32)
    briefly[:3200] = speech(seconds=0.2)  # 0.2 s of speech in 1 s: too few non-silent frames for ESTOI
    with pytest.raises(speech_quality.Unscorable, match=r"^unscorable by ESTOI \(under 0.4 s of non-silent speech\)$"):
        speech_quality.estoi(briefly, briefly, 16000)

    def no_utterance(*args):
        raise ValueError(b"No utterances detected")  # as the pesq package's C library says it

    monkeypatch.setattr(speech_quality, "perceptual_evaluation_speech_quality", no_utterance)
    with pytest.raises(speech_quality.Unscorable, match=r"^unscorable by PESQ \(No utterances detected\)$"):
        speech_quality.pesq(clean, clean, 16000)


def test_the_limits_are_inclusive_an_utterance_of_exactly_the_minimum_or_one_step_is_scored(monkeypatch):
    from avrnn.evaluation import speech_quality

    monkeypatch.setattr(speech_quality, "pesq", lambda *args: 2.0)  # these limits are what is tested, not PESQ's
    monkeypatch.setattr(speech_quality, "estoi", lambda *args: 0.5)
    exactly = speech(seconds=MIN_SECONDS)
    assert len(exactly) == MIN_SECONDS * 16000
    assert isinstance(score_utterance(exactly, exactly, 16000)["si_sdr"], float)
    one_step = np.zeros(8000, np.float32)
    one_step[100] = speech_quality.SILENT_PEAK  # a peak of exactly one 16-bit step: not digitally silent
    assert score_utterance(one_step, one_step, 16000)["pesq"] == 2.0
    summary = summarize([score_utterance(one_step[:10], one_step[:10], 16000)], "test")
    assert summary["test/si_sdr_mean"] is None and summary["test/si_sdr_std"] is None
