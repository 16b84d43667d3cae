"""Shared fixtures: a tiny synthetic corpus and configs composed exactly as src/train.py does."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from avrnn.config import register_configs

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

register_configs()

# A tiny model and a tiny corpus: 2 training speakers x 4 utterances of 0.2-0.4 s.
TINY = [
    "model.hidden_size=16", "model.x_features=8", "model.z_features=8", "model.mlp_hidden=16", "model.z_dim=4",
    "data.synthetic.train_speakers=2", "data.synthetic.test_speakers=1", "data.synthetic.utterances_per_speaker=4",
    "data.synthetic.min_seconds=0.2", "data.synthetic.max_seconds=0.4", "data.val_fraction=0.25",
    "data.batch_size=2", "data.eval_batch_size=4", "data.crop_frames=8", "data.cache_dir=null",
    "training.max_iterations=3", "training.iterations_per_epoch=3",
    "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
]


@pytest.fixture(scope="session")
def tiny() -> list[str]:
    """The tiny model and corpus as command-line overrides (for subprocess runs of src/train.py)."""
    return list(TINY)


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("corpus") / "synthetic"


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
