"""The study-controls tools (issue 22): the report's paired intervals, and the phase probe's measurements."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
import torch

from avrnn.training.fit import train

SCRIPTS = Path(__file__).resolve().parents[1] / "tools" / "study"


def script(name: str):
    spec = importlib.util.spec_from_file_location(f"study_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_runs(path: Path, values: dict[str, list[float]]) -> None:
    columns = ["name", "overrides", "test/elbo_per_timestep", "test/kl_per_timestep", "test/wasserstein"]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        for group, per_seed in values.items():
            for seed, value in enumerate(per_seed, start=1):
                writer.writerow({"name": f"{group}-s{seed}", "overrides": f"seed={seed}",
                                 "test/elbo_per_timestep": value, "test/kl_per_timestep": 1.0,
                                 "test/wasserstein": 0.0})


def test_the_report_pairs_by_seed_and_gives_the_t_interval_of_the_mean_difference(tmp_path, capsys):
    study = script("study_controls")
    runs = tmp_path / "runs.csv"
    # hybrid - twin per seed: 1, 2, 3 -> mean 2, sd 1, t(0.975, 2) = 4.3027: [2 - 2.484, 2 + 2.484]
    write_runs(runs, {"hybrid": [11.0, 22.0, 33.0], "hybrid_twin": [10.0, 20.0, 30.0], "vrnn": [0.0, 0.0, 0.0]})
    study.report(runs)
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| hybrid - hybrid_twin"))
    assert "| 3 | +2.00 | [-0.48, 4.48]" in row
    # picked as the best of 6: the 1 - 0.05/6 interval, t(1 - 0.05/12, 2) = 10.886: half-width 6.28496
    assert "(picked best of 6: [-4.28, 8.28])" in row
    assert row.endswith("| no | 3 of 3 |")


def test_the_report_leaves_out_seeds_that_one_side_lacks(tmp_path, capsys):
    study = script("study_controls")
    runs = tmp_path / "runs.csv"
    write_runs(runs, {"hybrid_twin": [5.0, 6.0, 9.0], "vrnn": [1.0, 2.0]})  # seed 3 has no VRNN run
    study.report(runs)
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| hybrid_twin - vrnn"))
    assert "| 2 | +4.00 |" in row and "[4.00, 4.00]" in row  # differences 4 and 4: zero width


def test_item_3_rows_give_each_cell_per_seed_against_the_twin_and_the_default_cell(tmp_path, capsys):
    study = script("study_controls")
    runs = tmp_path / "runs.csv"
    write_runs(runs, {"paper_n5_c0.01": [-40.0, -30.0], "twin_lr77": [-10.0, -12.0], "paper": [-35.0, -38.0, -20.0]})
    study.report(runs)
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.startswith("| paper | 5 | 0.01 |"))
    # - twin: -30, -18: mean -24, sd 8.485, t(0.975, 1) = 12.706: half-width 76.24
    # - (1, 0.1) cell: -5, +8: mean +1.5, sd 9.192, half-width 82.59
    assert row == ("| paper | 5 | 0.01 | -40.00, -30.00 | -35.00 | -30.00, -18.00 | -24.00 [-100.24, 52.24] "
                   "| +1.50 [-81.09, 84.09] | 1.00 | 0, 0 |")
    # the (1, 0.1) cell is item 1's arm, seeds 1-2 only (seed 3 is not in the 2-seed grid)
    row = next(line for line in lines if line.startswith("| paper | 1 | 0.1 |"))
    assert row.startswith("| paper | 1 | 0.1 | -35.00, -38.00 | -36.50 | -25.00, -26.00 | -25.50 [")
    assert "| (this cell) |" in row
    assert not any(line.startswith("| conditional |") for line in lines)  # no runs, no row


def test_item_3_pairs_only_the_seeds_both_sides_have(tmp_path, capsys):
    study = script("study_controls")
    runs = tmp_path / "runs.csv"
    write_runs(runs, {"conditional_n5_c0.1": [-20.0, -16.0], "twin_lr77": [-5.0], "conditional": [-30.0, -36.0]})
    study.report(runs)
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| conditional | 5 | 0.1 |"))
    # one twin seed: one difference, no interval; both (1, 0.1) seeds: +10, +20 -> +15 [-48.53, 78.53]
    assert row.startswith("| conditional | 5 | 0.1 | -20.00, -16.00 | -18.00 | -15.00 | -15.00 [-, -] | +15.00 [-48.53, 78.53] |")


def test_the_phase_probe_sees_the_critic_phase_move_nothing_and_the_kl_chain_through_the_phases(make_cfg, tmp_path):
    probe_script = script("phase_movement")
    cfg = make_cfg("model=avrnn", "critic=wgan", "training.test_after_training=false")
    out = tmp_path / "probe.csv"
    train(cfg, callbacks=[probe_script.PhaseProbe(out)])
    rows = probe_script.read(out)
    assert [r["phase"] for r in rows[:3]] == ["reconstruction", "critic", "adversarial"]
    assert len(rows) == 3 * cfg.training.max_iterations
    for row in rows:
        moved = [row[k] for k in ("d_post_mean", "d_prior_mean", "d_post_logstd", "d_prior_logstd")]
        if row["phase"] == "critic":  # trains only the critic: the distributions stay where they were
            assert moved == [0, 0, 0, 0] and row["kl_after"] == row["kl_before"]
        else:
            assert row["d_post_mean"] > 0
    # nothing happens between phases: each phase starts where the previous one ended (same noise each time)
    for before, after in zip(rows, rows[1:]):
        assert after["kl_before"] == pytest.approx(before["kl_after"], rel=1e-6)
    summary = probe_script.summary(rows)
    total = sum(s["kl_change_sum"] for s in summary.values())
    assert total == pytest.approx(rows[-1]["kl_after"] - rows[0]["kl_before"], rel=1e-4, abs=1e-6)


def test_the_probes_view_leaves_the_training_random_stream_as_it_was():
    probe_script = script("phase_movement")
    from avrnn.models import VRNN
    torch.manual_seed(0)
    model = VRNN(input_size=6, z_dim=3, hidden_size=8, x_features=5, z_features=5, mlp_hidden=8)
    x, mask = torch.randn(2, 5, 6), torch.ones(2, 5)
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    first = probe_script.latent_view(model, x, mask)
    assert torch.equal(torch.rand(3), expected)
    second = probe_script.latent_view(model, x, mask)
    assert torch.equal(first["post_mean"], second["post_mean"]) and first["kl"] == second["kl"]


def test_the_quality_table_gives_mean_and_sd_over_seeds_with_the_scored_counts(tmp_path, capsys):
    study = script("study_controls")
    import json
    for seed, (elbo, si_sdr, estoi_count) in enumerate([(10.0, 1.0, 79), (14.0, 3.0, 81)], start=1):
        run = tmp_path / f"hybrid-s{seed}"
        run.mkdir()
        metrics = {"test/sequences": 150, "test/elbo_per_timestep": elbo, "test/iwae_64_per_timestep": elbo + 1,
                   "test/fivo_64_per_timestep": elbo + 2, "test/si_sdr_mean": si_sdr, "test/pesq_mean": 1.5,
                   "test/estoi_mean": 0.25, "test/si_sdr_utterances": 138, "test/pesq_utterances": 138,
                   "test/estoi_utterances": estoi_count}
        (run / "metrics.json").write_text(json.dumps(metrics))
    study.quality(tmp_path)
    row = capsys.readouterr().out.splitlines()[-1]
    # ELBO 10 and 14: mean 12, sample sd 2.83; SI-SDR 1 and 3: mean 2, sd 1.41
    assert row.startswith("| hybrid | 2 | 12.00 +/- 2.83 | 13.00 +/- 2.83 | 14.00 +/- 2.83 | 2.00 +/- 1.41 |")
    assert row.endswith("| 138, 138, 79-81 of 150 |")
