"""Mutation testing of the core maths (`make mutate`): does the default suite notice a wrong formula?

For each module listed under [tool.avrnn.mutate] in pyproject.toml, mutmut (its shared settings under
[tool.mutmut]) makes small wrong versions of the module (an operator, a constant, an argument changed)
and runs that module's tests from the default suite (not `slow`) against each; a mutant the tests pass
with "survived". Each module runs in its own scratch copy of the working tree (so that it gets its own
test selection; --keep-results reuses mutmut's earlier results there), then one line
per module gives the kill rate, and mutate.json the counts and the survivors' names
(`python -m mutmut show NAME` in the module's scratch folder shows one). docs/testing.md accounts for
every survivor. A developer's tool, not part of CI.

    python tools/mutate.py                          # every module listed
    python tools/mutate.py src/avrnn/models/losses.py --max-children 2
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("src", "tests", "conf", "pyproject.toml")
DETECTED = ("killed", "timeout")  # a mutant that hangs the tests is noticed too


def modules() -> dict[str, list[str]]:
    """module path -> the test files that test it, from pyproject.toml [tool.avrnn.mutate]."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["avrnn"]["mutate"]


def scratch_copy(module: str, tests: list[str], base: Path, keep_results: bool = False) -> Path:
    """A copy of the working tree for one module's run, its pyproject telling mutmut what to mutate and
    which tests to run. mutmut's results from an earlier run are dropped unless `keep_results`: mutmut
    retries a mutant when its function's source changed, not when the tests did (a survivor would stay
    one after a test that kills it was added)."""
    folder = base / Path(module).stem
    if folder.exists() and not keep_results:
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        target = folder / name
        if target.is_dir():
            shutil.rmtree(target)
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, target)
    text = (folder / "pyproject.toml").read_text()
    own = f"[tool.mutmut]\nonly_mutate = {json.dumps([module])}\npytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
    (folder / "pyproject.toml").write_text(text.replace("[tool.mutmut]\n", own, 1))
    return folder


def statuses(folder: Path) -> dict[str, str]:
    """mutant name -> mutmut's verdict (killed, survived, timeout, no tests, ...)."""
    listing = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=folder,
                             capture_output=True, text=True, check=True).stdout
    return dict(re.findall(r"^\s*(\S+): (.+?)\s*$", listing, flags=re.M))


def run_module(module: str, tests: list[str], base: Path, max_children: int | None, keep_results: bool) -> dict:
    folder = scratch_copy(module, tests, base, keep_results)
    command = [sys.executable, "-m", "mutmut", "run", *(["--max-children", str(max_children)] if max_children else [])]
    start = time.monotonic()
    with open(folder / "mutmut-run.log", "w") as log:
        subprocess.run(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT, check=True)
    verdicts = statuses(folder)
    counts = Counter(verdicts.values())
    detected = sum(counts[name] for name in DETECTED)
    return {"module": module, "tests": tests, "mutants": len(verdicts), "killed": detected,
            "kill_rate": detected / len(verdicts) if verdicts else None, "counts": dict(counts),
            "survived": sorted(name for name, verdict in verdicts.items() if verdict not in DETECTED),
            "seconds": round(time.monotonic() - start, 1), "folder": str(folder)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help="module paths (default: every one in [tool.avrnn.mutate])")
    parser.add_argument("--max-children", type=int, default=None, help="mutants tested at once (mutmut's default: "
                                                                        "the cores)")
    parser.add_argument("--scratch", default=str(Path(tempfile.gettempdir()) / "avrnn-mutate"))
    parser.add_argument("--output", default="mutate.json")
    parser.add_argument("--keep-results", action="store_true",
                        help="reuse mutmut's earlier results (only where the tests did not change since)")
    args = parser.parse_args()
    listed = modules()
    unknown = [m for m in args.modules if m not in listed]
    if unknown:
        parser.error(f"not listed under [tool.avrnn.mutate] in pyproject.toml: {', '.join(unknown)}")
    chosen = args.modules or list(listed)
    results = []
    for index, module in enumerate(chosen, 1):
        print(f"mutate: {module} ({index} of {len(chosen)}), tests {' '.join(listed[module])}", flush=True)
        results.append(run_module(module, listed[module], Path(args.scratch), args.max_children, args.keep_results))
        r = results[-1]
        print(f"  {r['killed']} of {r['mutants']} mutants killed ({r['kill_rate']:.0%}) in {r['seconds']:.0f} s; "
              f"survivors listed in {args.output}", flush=True)
    Path(args.output).write_text(json.dumps(results, indent=2))
    print(f"{'module':<40} {'mutants':>8} {'killed':>7} {'rate':>6}")
    for r in results:
        print(f"{r['module']:<40} {r['mutants']:>8} {r['killed']:>7} {r['kill_rate']:>6.0%}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
