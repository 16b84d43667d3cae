"""Shared fixtures: a tiny synthetic corpus, configs composed exactly as src/train.py does, and the
entry points run as users run them (a subprocess) or in-process (the same code path, no start-up cost).

Tests never import each other or this file: what they share is a fixture here.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from avrnn.cli import run
from avrnn.config import register_configs

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

register_configs()

if os.environ.get("PYTEST_XDIST_WORKER"):  # make test's workers: one torch thread each, so workers x threads = cores
    import torch  # (two threads per worker on two cores made the suite 4x slower: OpenMP threads spin-waiting)

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the entry points the tests run in subprocesses too
    torch.set_num_threads(1)

# A tiny model and a tiny corpus: 2 training speakers x 4 utterances of 0.2-0.4 s.
TINY = [
    "model.hidden_size=16", "model.x_features=8", "model.z_features=8", "model.mlp_hidden=16", "model.z_dim=4",
    "data.synthetic.train_speakers=2", "data.synthetic.test_speakers=1", "data.synthetic.utterances_per_speaker=4",
    "data.synthetic.min_seconds=0.2", "data.synthetic.max_seconds=0.4", "data.val_fraction=0.25",
    "data.batch_size=2", "data.eval_batch_size=4", "data.crop_frames=8", "data.cache_dir=null",
    "training.max_iterations=3", "training.iterations_per_epoch=3",
    "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
    "training.figures=false",  # half of a tiny run's time; the tests of the figures turn them on
    "training.audio_seconds=0.1",  # the prior samples after each validation: 2 s of them were a quarter of a tiny run
]


# The VRNN's MLP layouts the fused pass, the per-step reference and CUDA graphs are held equal on (model.*_widths,
# model.activation; sizes fit SMALL-like models: input 6, z 3, hidden 8). "dvae": the DVAE benchmark's VRNN.
MLP_LAYOUTS = {
    "default": {},
    "dvae": dict(activation="tanh", phi_x_widths=[5], phi_z_widths=[4, 5], tr_widths=[], ps_widths=[], em_widths=[]),
    "deep": dict(activation="elu", phi_x_widths=[7, 6, 5], phi_z_widths=[6], tr_widths=[8, 7, 6], ps_widths=[8, 7, 6],
                 em_widths=[4, 4, 4]),
    "identity_encoders": dict(activation="gelu", phi_x_widths=[], phi_z_widths=[], tr_widths=[9], ps_widths=[9],
                              em_widths=[]),
}


@pytest.fixture(params=list(MLP_LAYOUTS), ids=list(MLP_LAYOUTS))
def mlp_layout(request) -> dict:
    """Each MLP layout in turn, as VRNN keyword arguments."""
    return dict(MLP_LAYOUTS[request.param])


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def last_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""


def units_names(units: str) -> set[str]:
    """The key families a metrics.json units string names: the names before the ":" of each "; "-separated
    entry, parentheses (qualifiers, which may hold "; " themselves) left out."""
    names = set()
    for entry in re.sub(r" ?\([^()]*\)", "", units).split("; "):
        names.update(entry.split(":", 1)[0].split(", "))
    return names


def check_units_name_every_number(saved: dict, family_of) -> None:
    """AssertionError naming the first number of a metrics.json (`saved`) whose family, `family_of(key,
    saved)` (None: not checked), its units string does not name."""
    named = units_names(saved["units"])
    for key, value in saved.items():
        family = family_of(key, saved) if isinstance(value, (int, float, list)) else None
        assert family is None or family in named, key


@pytest.fixture(scope="session")
def units_check():
    return check_units_name_every_number


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def conf_dir() -> Path:
    return CONF


@pytest.fixture(scope="session")
def tiny() -> list[str]:
    """The tiny model and corpus as command-line overrides (for runs of the entry points)."""
    return list(TINY)


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    """The tiny synthetic corpus, generated here (a command line's data.root that does not exist is
    refused without data=synthetic, so the runs given this folder must find it made)."""
    from omegaconf import OmegaConf

    from avrnn.data.synthetic import SyntheticCorpusSpec, generate_corpus

    root = tmp_path_factory.mktemp("corpus") / "synthetic"
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        spec = compose(config_name="config", overrides=[*TINY, f"data.root={root}"]).data.synthetic
    GlobalHydra.instance().clear()
    return generate_corpus(root, SyntheticCorpusSpec(**OmegaConf.to_container(spec, resolve=True)))


@pytest.fixture
def make_cfg(tmp_path, corpus_dir):
    """compose(overrides) -> the training config, tiny, writing into tmp_path."""

    def _compose(*overrides: str, tiny: bool = True):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            base = TINY if tiny else []
            return compose(config_name="config", overrides=[
                *base, f"data.root={corpus_dir}", f"paths.output_dir={tmp_path / 'run'}", *overrides])

    yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture
def compose_config():
    """compose(config_name, overrides) of any primary config in conf/ (evaluate, generate, ...)."""

    def _compose(config_name: str, *overrides: str, return_hydra_config: bool = False):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(config_name=config_name, overrides=list(overrides),
                           return_hydra_config=return_hydra_config)

    yield _compose
    GlobalHydra.instance().clear()


def _in_a_folder_of_its_own(script: str, args: tuple[str, ...], folders) -> tuple[str, ...]:
    """evaluate.py and generate.py make their Hydra run folder under the checkout's logs/ by default: a test
    that names none gets a temporary one (no test writes into the checkout; parallel workers never share one)."""
    if script in ("evaluate.py", "generate.py") and not any(arg.startswith("hydra.run.dir=") for arg in args):
        return (*args, f"hydra.run.dir={folders.mktemp('hydra-run')}")
    return args


@pytest.fixture(scope="session")
def run_script(tmp_path_factory):
    """run_script("train.py", *args): src/<script> in a subprocess, as a user runs it."""

    def _run(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        args = _in_a_folder_of_its_own(script, args, tmp_path_factory)
        return subprocess.run([sys.executable, str(ROOT / "src" / script), *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=600, env=env)

    return _run


def _entry_point(script: str):
    spec = importlib.util.spec_from_file_location(f"avrnn_entry_{script.removesuffix('.py')}", ROOT / "src" / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture
def run_in_process(monkeypatch, tmp_path_factory):
    """run_in_process("train.py", *args) -> CliResult: the entry point's main through avrnn.cli.run,
    with sys.argv set as on the command line; exit status 0 unless it exits."""

    def _run(script: str, *args: str) -> CliResult:
        args = _in_a_folder_of_its_own(script, args, tmp_path_factory)
        main = _entry_point(script)
        monkeypatch.setattr(sys, "argv", [str(ROOT / "src" / script), *args])
        out, err = io.StringIO(), io.StringIO()
        code = 0
        GlobalHydra.instance().clear()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                run(main)
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else 1
        GlobalHydra.instance().clear()
        return CliResult(code, out.getvalue(), err.getvalue())

    return _run
