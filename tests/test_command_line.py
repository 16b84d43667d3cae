"""Hydra's own command-line flags misused: one line naming the flags and the fix, exit status 2, where
Hydra printed its whole usage page or a traceback, or (--package without --cfg) ran the job anyway."""

import pytest

from avrnn import command_line


@pytest.mark.parametrize("args, line", [
    (["-m", "seed=1,2", "hydra.run.dir={tmp}/run", "--cfg", "job"],  # Hydra takes the overrides as one group
     "error: -m/--multirun and --cfg cannot be combined: Hydra does one of --run, -m/--multirun, --cfg, --info and "
     "--shell-completion per command; to see a job's config, drop -m and give one value per key (python {script} "
     "--cfg job key=value); to run the sweep, drop --cfg"),
    (["--info", "config", "--cfg", "job"],
     "error: --cfg and --info cannot be combined: Hydra does one of --run, -m/--multirun, --cfg, --info and "
     "--shell-completion per command; keep one of them"),
    (["--resolve"],
     "error: --resolve only changes what --cfg (or --help) shows; add --cfg job (python {script} --cfg job --resolve)"),
    (["--package", "model"],
     "error: --package model only selects the part of the config that --cfg shows (without --cfg Hydra ignores it "
     "and runs the job); add --cfg job (python {script} --cfg job --package model)"),
    (["--experimental-rerun", "{tmp}/nowhere.pickle"],
     "error: --experimental-rerun {tmp}/nowhere.pickle: no such file; it takes the config.pickle a run saved in its "
     ".hydra/ folder"),
    (["--cfg", "bogus"],
     "error: argument --cfg/-c: invalid choice: 'bogus' (choose from 'job', 'hydra', 'all') (python {script} "
     "--hydra-help lists Hydra's flags; settings are key=value overrides, without dashes)"),
    (["seed=1", "-m", "batch_size=2,4"],  # the fresh-user report: "unrecognized arguments: batch_size=2,4"
     "error: -m comes after key=value overrides, and Hydra reads its flags before them (the overrides after it are "
     "taken for flags); put it first: python {script} -m <the overrides>"),
    (["seed=1", "--cfg", "job", "~data.hop"],  # a flag's argument goes with it; ~key is an override too
     "error: --cfg comes after key=value overrides, and Hydra reads its flags before them (the overrides after it are "
     "taken for flags); put it first: python {script} --cfg job <the overrides>"),
    (["seed=1", "hydra.run.dir={tmp}/run", "--batch_size=4", "lr=2"],  # not a Hydra flag: the general line, not "put it first"
     "error: unrecognized arguments: --batch_size=4 lr=2 (python {script} --hydra-help lists Hydra's flags; settings "
     "are key=value overrides, without dashes)"),
    (["--seed=3", "--cfg", "job"],
     "error: unrecognized arguments: --seed=3 (python {script} --hydra-help lists Hydra's flags; settings are "
     "key=value overrides, without dashes)"),
])
@pytest.mark.parametrize("script", ["train.py", "evaluate.py"])
def test_a_misused_hydra_flag_is_one_line_naming_the_flags_and_the_fix(run_in_process, root, tmp_path, script, args,
                                                                      line):
    run_dir = [] if any(arg.startswith("hydra.run.dir=") for arg in args) else ["hydra.run.dir={tmp}/run"]
    result = run_in_process(script, *[arg.format(tmp=tmp_path) for arg in args + run_dir])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [line.format(script=root / "src" / script, tmp=tmp_path)]
    assert not (tmp_path / "run").exists()


def test_the_flags_used_as_hydra_means_them_still_work(run_in_process):
    result = run_in_process("train.py", "--cfg", "job", "--package", "model", "model.z_dim=3")
    assert result.returncode == 0, result.stderr
    assert "z_dim: 3" in result.stdout and "critic" not in result.stdout


def test_another_hydra_command_line_refusal_is_one_line_too():
    """What `check` does not foresee (a rule of a later Hydra) still becomes one line, by where it is raised."""
    code = compile("def _run_hydra():\n    raise ValueError('The --new flag needs --old')\n_run_hydra()",
                   f"{command_line.HYDRA_CODE}_internal/utils.py", "exec")
    with pytest.raises(ValueError) as raised:
        exec(code, {})
    assert command_line.hydra_refusal(raised.value, "src/train.py") == (
        "The --new flag needs --old (python src/train.py --hydra-help lists Hydra's flags)")
    with pytest.raises(ValueError) as ours:
        raise ValueError("The --new flag needs --old")
    assert command_line.hydra_refusal(ours.value) is None  # raised elsewhere: keeps its traceback


def test_an_optional_groups_option_may_come_from_config_dir(tmp_path):
    """--config-dir adds a folder Hydra searches: a name found there is no typo; one found nowhere is."""
    from pathlib import Path

    from avrnn.command_line import CommandLineError, check_optional_choices

    conf = Path(__file__).resolve().parents[1] / "conf"
    (tmp_path / "hparams_search").mkdir()
    (tmp_path / "hparams_search" / "two_values.yaml").write_text("# @package _global_\n")
    check_optional_choices([f"--config-dir={tmp_path}", "hparams_search=two_values"], conf, ("hparams_search",))
    with pytest.raises(CommandLineError, match=r"^hparams_search=nope: there is no hparams_search called 'nope' .*; "
                                               r"choose one of avrnn_optuna, study_avrnn, study_vrnn, two_values$"):
        check_optional_choices([f"--config-dir={tmp_path}", "hparams_search=nope"], conf, ("hparams_search",))
    check_optional_choices(["--config-path=/elsewhere", "hparams_search=nope"], conf, ("hparams_search",))  # Hydra's
