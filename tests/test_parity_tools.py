"""tools/parity: the scorer of another codebase's reconstructions and the paired criterion (docs/dvae-parity.md)."""

import json

import numpy as np
import pytest
import soundfile as sf


@pytest.fixture
def parity(monkeypatch, root):
    monkeypatch.syspath_prepend(str(root / "tools" / "parity"))
    import compare
    import score
    return compare, score


def runs(values_by_seed):
    return [{f"u{i}.wav": {"si_sdr": float(v), "pesq": float(v) / 10, "estoi": float(v) / 100}
             for i, v in enumerate(values)} for values in values_by_seed]


def test_the_criterion_pairs_utterances_averages_seeds_and_reads_the_intervals_lower_end(parity):
    compare, _ = parity
    rng = np.random.default_rng(0)
    base = rng.normal(5, 2, size=40)
    peer = runs([base + rng.normal(0, 0.1, 40) for _ in range(3)])
    same = compare.compare(runs([base + rng.normal(0, 0.1, 40) for _ in range(3)]), peer)
    assert same["si_sdr"]["holds"] and same["si_sdr"]["utterances"] == 40
    assert same["si_sdr"]["ci95"][0] < same["si_sdr"]["difference"] < same["si_sdr"]["ci95"][1]
    worse = compare.compare(runs([base - 1.0 for _ in range(3)]), peer)  # 1 dB worse on every utterance
    assert worse["si_sdr"]["difference"] == pytest.approx(np.mean(base - 1) - np.mean(
        [np.mean([run[f"u{i}.wav"]["si_sdr"] for run in peer]) for i in range(40)]))
    assert not worse["si_sdr"]["holds"] and not worse["pesq"]["holds"] and worse["estoi"]["holds"]  # 0.01 < 0.05


def test_an_utterance_one_run_could_not_score_leaves_only_that_metrics_comparison(parity):
    compare, _ = parity
    ours, peer = runs([[1.0, 2.0, 3.0]] * 3), runs([[1.0, 2.0, 3.0]] * 3)
    peer[1]["u2.wav"]["estoi"] = "ESTOI: too few non-silent frames"
    result = compare.compare(ours, peer)
    assert result["estoi"]["utterances"] == 2 and result["si_sdr"]["utterances"] == 3


def test_scoring_trims_the_reference_as_the_models_saw_it_and_scores_each_metric_it_can(parity, tmp_path):
    _, score = parity
    rate = 16000
    rng = np.random.default_rng(1)
    speech = (0.3 * rng.standard_normal(int(0.3 * rate))).astype(np.float32)  # 0.3 s: too short for ESTOI
    silence = np.zeros(rate // 2, dtype=np.float32)
    sf.write(str(tmp_path / "a.wav"), np.concatenate([silence, speech, silence]), rate, subtype="FLOAT")
    (tmp_path / "test.txt").write_text("a.wav\n")
    (tmp_path / "recon").mkdir()
    import librosa
    seen, (start, _) = librosa.effects.trim(np.concatenate([silence, speech, silence]), top_db=30)
    assert start > 0  # what both models read starts inside the leading silence, not at 0
    sf.write(str(tmp_path / "recon" / "a.wav"), seen[:-100] * 2, rate, subtype="FLOAT")  # rescaled, a bit short
    import sys
    sys.argv = ["score.py", str(tmp_path), str(tmp_path / "test.txt"), str(tmp_path / "recon"),
                str(tmp_path / "out.json")]
    score.main()
    scores = json.loads((tmp_path / "out.json").read_text())["a.wav"]
    assert scores["si_sdr"] > 60  # the trimmed reference lines up with the reconstruction: the same signal
    assert isinstance(scores["pesq"], float) and "ESTOI" in scores["estoi"]


def test_a_reconstruction_more_than_a_hop_off_the_trimmed_length_is_refused(parity, tmp_path, monkeypatch):
    """An untrimmed reconstruction scored against the trimmed file would compare shifted signals: refused by name."""
    _, score = parity
    rate = 16000
    rng = np.random.default_rng(2)
    speech = (0.3 * rng.standard_normal(rate)).astype(np.float32)
    silence = np.zeros(rate // 2, dtype=np.float32)
    untrimmed = np.concatenate([silence, speech, silence])
    sf.write(str(tmp_path / "a.wav"), untrimmed, rate, subtype="FLOAT")
    (tmp_path / "test.txt").write_text("a.wav\n")
    (tmp_path / "recon").mkdir()
    sf.write(str(tmp_path / "recon" / "a.wav"), untrimmed, rate, subtype="FLOAT")
    monkeypatch.setattr("sys.argv", ["score.py", str(tmp_path), str(tmp_path / "test.txt"), str(tmp_path / "recon"),
                                     str(tmp_path / "out.json")])
    with pytest.raises(SystemExit, match=r"recon/a.wav has 32000 samples, the trimmed reference \d+: more than a hop"):
        score.main()
    assert not (tmp_path / "out.json").exists()
