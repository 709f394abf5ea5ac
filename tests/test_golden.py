"""Golden renders of the bundled model: a refactor must not change what it plays.

The expected values are in ``tests/golden/expected.json`` (``python -m tests.golden`` records
them). The p_codec's hash is compared on a machine that recorded one; everywhere, its values
within a tolerance.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from dexter_cli.engine import DEFAULT_CHECKPOINT

from .conftest import datasets_root
from .golden import ATOL, EXPECTED, RTOL, digest, machine, render_codec, sample, scores

pytestmark = pytest.mark.skipif(not (DEFAULT_CHECKPOINT / "model.safetensors").is_file(),
                                reason="no bundled model in dexter_cli/assets/default")


def _expected() -> dict:
    return json.loads(EXPECTED.read_text())["scores"]


@pytest.mark.parametrize("name", ["partitura_example", "mozart_k331"])
def test_bundled_model_plays_the_golden_render(name, tmp_path):
    found = scores(datasets_root() if datasets_root().is_dir() else None)
    if name not in found:
        pytest.skip(f"shared datasets not found at {datasets_root()} (set DEXTER_DATASETS)")
    want = _expected()[name]
    p = render_codec(found[name], tmp_path)
    assert len(p) == want["notes"]
    np.testing.assert_allclose(np.array(sample(p)), np.array(want["sample"]), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(p.mean(0), want["row_means"], rtol=RTOL, atol=ATOL)
    if machine() in want["sha256"]:
        assert digest(p) == want["sha256"][machine()], "same machine, same seed: the bits must be the same"


def test_golden_comparison_sees_a_small_change():
    """The tolerance is tight enough to catch a change of 1 % in one row (mutation check)."""
    want = np.array(_expected()["partitura_example"]["sample"])
    moved = want.copy()
    moved[:, 1] *= 1.01
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(moved, want, rtol=RTOL, atol=ATOL)
