"""Shared fixtures: the real datasets (skipped when absent) and small data built in code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def datasets_root() -> Path:
    """``$DEXTER_DATASETS``, else ``../shared/datasets`` beside the project."""
    env = os.environ.get("DEXTER_DATASETS")
    return Path(env) if env else ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    root = datasets_root()
    if not (root / "asap").is_dir() or not (root / "vienna4x22").is_dir():
        pytest.skip(f"shared datasets not found at {root} (set DEXTER_DATASETS to the folder holding asap/ and vienna4x22/)")
    return root


TINY = ["model.residual_channels=16", "model.residual_layers=3", "model.dilation_cycle=3",
        "model.attention_every=0", "model.step_embed_dim=16"]


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny checkpoint trained for 30 steps on a store built from code (fast, not musical)."""
    from dexter_cli.config import load_config
    from dexter_cli.data import run_codec
    from dexter_cli.train import train

    from .synth import make_asap_tree

    base = tmp_path_factory.mktemp("ck")
    root = make_asap_tree(base / "asap", {"A/B/1": 2, "A/B/2": 2}, n_notes=40)
    run_codec(base / "store", datasets_root=None, roots={"asap": root}, max_note_seq=16, fractions=(1.0, 0.0, 0.0))
    train(load_config(None, TINY + [f"data.path={base / 'store'}", f"run_dir={base / 'run'}", "optim.batch_size=4",
                                    "optim.max_steps=30", "eval.every=1000", "eval.log_every=10"]))
    return base / "run" / "checkpoints" / "last"
