"""Training configuration: YAML, overrides and their checks."""

from __future__ import annotations


import pytest

from dexter_cli.config import load_config
from dexter_cli.errors import DexterError



def test_numbers_in_exponent_form_are_numbers(tmp_path):
    # PyYAML reads 3e-05 (no dot) as a string; `dexter train --lr 3e-5` passes exactly that
    assert load_config(None, ["optim.lr=3e-05"]).optim.lr == pytest.approx(3e-5)
    (tmp_path / "c.yaml").write_text("optim:\n  lr: 1e-4\n  weight_decay: 0\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.optim.lr == pytest.approx(1e-4) and cfg.optim.weight_decay == 0.0
    for bad in ("fast", "nan", "inf"):
        with pytest.raises(DexterError, match="must be a number"):
            load_config(None, [f"optim.lr={bad}"])
