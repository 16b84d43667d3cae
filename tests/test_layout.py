"""The package's architecture, read from its import statements: no import cycles between modules,
no package importing one above it, and models/ free of Lightning and Hydra (data/ holds a
LightningDataModule)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
# a module may import its own package and the packages of lower rank; avrnn's top-level modules
# (config, registry, cli) wire the packages together and are ranked on their own below
RANK = {"models": 0, "data": 0, "analysis": 1, "training": 2, "evaluation": 3}
TOP_LEVEL_MAY_NOT_IMPORT = {"config": {"analysis", "evaluation"}, "registry": {"data", "analysis", "training",
                                                                              "evaluation"}}
FRAMEWORKS = ("pytorch_lightning", "lightning", "hydra", "omegaconf")


def modules() -> dict[str, Path]:
    return {".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__"): path
            for path in sorted((SRC / "avrnn").rglob("*.py"))}


def imports(path: Path, known: set[str]) -> tuple[set[str], set[str]]:
    """(the avrnn modules `path` imports, the top-level names of everything it imports)."""
    found, roots = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            roots.add(name.split(".")[0])
            if name in known:
                found.add(name)
    return found, roots


def graph() -> dict[str, set[str]]:
    known = set(modules())
    return {name: imports(path, known)[0] - {name} for name, path in modules().items()}


def package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in RANK) else f"top:{parts[-1]}"


def test_no_module_imports_itself_back_through_others():
    edges, state, cycles = graph(), {}, []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges[node]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_no_package_imports_a_package_above_it():
    upward = []
    for module, targets in graph().items():
        mine = package(module)
        for target in targets:
            theirs = package(target)
            if mine in ("models", "data") and theirs != mine:
                upward.append(f"{module} -> {target} (models and data import only themselves)")
            elif mine in RANK and theirs in RANK and RANK[theirs] > RANK[mine]:
                upward.append(f"{module} -> {target}")
            elif mine.startswith("top:") and theirs in TOP_LEVEL_MAY_NOT_IMPORT.get(mine[4:], ()):
                upward.append(f"{module} -> {target}")
    assert not upward, upward


def test_models_are_plain_torch_without_lightning_or_hydra():
    known = set(modules())
    offenders = [f"{name} imports {sorted(set(FRAMEWORKS) & roots)}"
                 for name, path in modules().items() if package(name) == "models"
                 for roots in [imports(path, known)[1]] if set(FRAMEWORKS) & roots]
    assert not offenders, offenders


def test_the_checks_find_what_they_look_for(tmp_path):
    """The graph reads both import forms, so the tests above can fail."""
    probe = tmp_path / "probe.py"
    probe.write_text("import avrnn.models.vrnn\nfrom avrnn.training import module\nfrom avrnn.config import validate\n")
    found, roots = imports(probe, {"avrnn.models.vrnn", "avrnn.training.module", "avrnn.config"})
    assert found == {"avrnn.models.vrnn", "avrnn.training.module", "avrnn.config"} and roots == {"avrnn"}
    assert package("avrnn.training.module") == "training" and package("avrnn.config") == "top:config"
    assert package("avrnn.models") == "models"
