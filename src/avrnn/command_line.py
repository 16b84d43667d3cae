"""Hydra's own command-line flags, checked before Hydra reads them: a misuse is one line naming the flags
and the fix, where Hydra prints its whole usage or a traceback (`-m seed=1,2 --cfg job`: ValueError).

`check(argv)` parses the command line with Hydra's own parser (hydra._internal.utils.get_args_parser,
the one @hydra.main uses) and applies Hydra's rules on which flags go together, plus one Hydra leaves
silent (`--package` without `--cfg` is ignored and the job runs). `hydra_refusal` covers any other error
Hydra raises about its command line.
"""

from __future__ import annotations

import argparse
import os
import traceback
from pathlib import Path

import hydra
from hydra._internal.utils import get_args_parser

# Hydra runs one of these per command (hydra._internal.utils._run_hydra)
COMMANDS = {"run": "--run", "multirun": "-m/--multirun", "cfg": "--cfg", "info": "--info",
            "shell_completion": "--shell-completion"}
HYDRA_CODE = str(Path(get_args_parser.__code__.co_filename).parents[1]) + os.sep  # the hydra package


def is_hydra_main(function) -> bool:
    """Whether `function` is a @hydra.main-decorated entry point (it reads Hydra's command line)."""
    return getattr(getattr(function, "__code__", None), "co_filename", None) == hydra.main.__code__.co_filename


class CommandLineError(ValueError):
    """A misuse of Hydra's flags; the message names them and the fix."""


def one_line_errors(parser: argparse.ArgumentParser, hint: str) -> argparse.ArgumentParser:
    """`parser`, raising CommandLineError(message + hint) where argparse would print its whole usage and exit."""
    def refuse(message: str):
        raise CommandLineError(f"{message} ({hint})")
    parser.error = refuse
    return parser


def _parser(script: str) -> argparse.ArgumentParser:
    return one_line_errors(get_args_parser(), f"python {script} --hydra-help lists Hydra's flags; settings are "
                                              "key=value overrides, without dashes")


def flags_between_overrides(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """Hydra's flags (-m, --cfg job, ...: those `parser` knows, each with its argument) that come after an
    override (key=value, ~key) and before another: argparse then takes the later overrides for unknown
    arguments (`experiment=quick -m critic=wgan,gan`)."""
    is_override = [not item.startswith("-") and ("=" in item or item.startswith("~")) for item in argv]
    late, index = [], 0
    while index < len(argv):
        action = parser._option_string_actions.get(argv[index])  # argparse's map of flag -> its action
        takes = 1 if action is not None and action.nargs is None else 0  # a flag with one argument (--cfg job)
        if action is not None and any(is_override[:index]) and any(is_override[index + 1 + takes:]):
            late.append(" ".join(argv[index:index + 1 + takes]))
        index += 1 + takes if action is not None else 1
    return late


def check(argv: list[str], script: str = "src/train.py") -> None:
    """Raise CommandLineError for flags Hydra would refuse (with a usage page or a traceback) or ignore."""
    try:
        args = _parser(script).parse_args(argv)
    except CommandLineError as error:
        late = flags_between_overrides(argv, _parser(script))
        if late and "unrecognized arguments" in str(error):
            flag = late[0].split()[0]
            raise CommandLineError(f"{flag} comes after key=value overrides, and Hydra reads its flags before them "
                                   f"(the overrides after it are taken for flags); put it first: python {script} "
                                   f"{late[0]} <the overrides>") from None
        raise
    given = [flag for key, flag in COMMANDS.items() if getattr(args, key) not in (None, False)]
    if len(given) > 1:
        if {"-m/--multirun", "--cfg"} <= set(given):
            fix = (f"to see a job's config, drop -m and give one value per key (python {script} --cfg job key=value); "
                   "to run the sweep, drop --cfg")
        else:
            fix = "keep one of them"
        raise CommandLineError(f"{' and '.join(given)} cannot be combined: Hydra does one of --run, -m/--multirun, "
                               f"--cfg, --info and --shell-completion per command; {fix}")
    if args.resolve and args.cfg is None and not args.help:
        raise CommandLineError(f"--resolve only changes what --cfg (or --help) shows; add --cfg job (python {script} "
                               "--cfg job --resolve)")
    if args.package is not None and args.cfg is None:
        raise CommandLineError(f"--package {args.package} only selects the part of the config that --cfg shows (without "
                               f"--cfg Hydra ignores it and runs the job); add --cfg job (python {script} --cfg job "
                               f"--package {args.package})")
    rerun = args.experimental_rerun
    if rerun is not None and not Path(rerun).is_file():
        raise CommandLineError(f"--experimental-rerun {rerun}: no such file; it takes the config.pickle a run saved in "
                               "its .hydra/ folder")


def check_group_chosen(argv: list[str], group: str, example: str, otherwise: str) -> None:
    """Where `group` is optional (null by default), a `group.key=value` override needs `group=<name>`
    first: Hydra would fail on the null node with an AssertionError traceback."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        overrides = OverridesParser.create().parse_overrides(_parser("").parse_args(argv).overrides)
    except OverrideParseException:
        return  # Hydra says which one it cannot parse (avrnn.cli.unparsable_override)
    if any(item.key_or_group == group for item in overrides):
        return
    setting = next((item.input_line for item in overrides if item.key_or_group.startswith(f"{group}.")), None)
    if setting is not None:
        raise CommandLineError(f"{setting} sets a key of {group}, and no {group}=... was chosen; choose one first: "
                               f"{example} ({otherwise})")


def check_optional_choices(argv: list[str], conf_dir: str | Path, groups: tuple[str, ...]) -> None:
    """Raise CommandLineError where `group=<name>` names no conf/<group>/<name>.yaml for a group the config
    lists as `optional`: Hydra drops an optional group's missing option without a word (a typo'd
    `arm=avrnn_hybird` would train the default model). Sweeps (`arm=a,b`) are checked value by value;
    --config-dir's folder counts as well; a command line with another primary folder (--config-path) or
    more search paths (hydra.searchpath) is left to Hydra."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    args = _parser("").parse_args(argv)
    try:
        overrides = OverridesParser.create().parse_overrides(args.overrides)
    except OverrideParseException:
        return
    if args.config_path is not None or any(item.key_or_group.startswith("hydra.searchpath") for item in overrides):
        return  # another primary config folder, or more search paths: Hydra's own search decides
    roots = [Path(conf_dir)] + ([Path(args.config_dir)] if args.config_dir else [])  # --config-dir adds one
    for item in overrides:
        if item.key_or_group not in groups or item.is_delete():
            continue
        values = (list(item.sweep_string_iterator()) if item.is_sweep_override()
                  else [item.get_value_element_as_str()])
        folders = [root / item.key_or_group for root in roots if (root / item.key_or_group).is_dir()]
        if not folders:  # not this project's layout
            continue
        for value in values:
            if value == "null":  # Hydra answers with a ValueError traceback
                raise CommandLineError(f"{item.key_or_group}=null: a config group cannot be set to null; leave "
                                       f"{item.key_or_group}=... out (by default none is chosen)")
            if not any((folder / f"{value}.yaml").is_file() for folder in folders):
                known = sorted({path.stem for folder in folders for path in folder.glob("*.yaml")})
                raise CommandLineError(f"{item.key_or_group}={value}: there is no {item.key_or_group} called {value!r} "
                                       f"({folders[0]}/{value}.yaml); choose one of {', '.join(known)}")


def refuse_groups(argv: list[str], groups: dict[str, str]) -> None:
    """Raise CommandLineError for a `group=<name>` override of a group this command cannot take (Hydra's
    answer, "Could not override ... No match in the defaults list", gives no fix); `groups`: group -> why it
    cannot be chosen here, and the fix."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        overrides = OverridesParser.create().parse_overrides(_parser("").parse_args(argv).overrides)
    except OverrideParseException:
        return
    for item in overrides:
        if item.key_or_group in groups:
            raise CommandLineError(f"{item.input_line}: {groups[item.key_or_group]}")


def is_multirun(argv: list[str]) -> bool:
    """Whether the command line asks Hydra for a sweep (-m/--multirun)."""
    try:
        return bool(_parser("").parse_args(argv).multirun)
    except CommandLineError:
        return False


def hydra_refusal(error: BaseException, script: str = "src/train.py") -> str | None:
    """One line for a ValueError Hydra raised about its command line (not caught by `check`); None for
    any other error."""
    frames = traceback.extract_tb(error.__traceback__)
    if type(error) is not ValueError or not frames:
        return None
    last = frames[-1]
    if not (last.filename.startswith(HYDRA_CODE) and last.name in ("_run_hydra", "_get_rerun_conf")):
        return None
    return f"{' '.join(str(error).split())} (python {script} --hydra-help lists Hydra's flags)"
