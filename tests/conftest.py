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
