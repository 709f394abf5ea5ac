"""The output-layer refit (scripts/research/headfit.py, scripts/research/refit_head.py) on a tiny trained checkpoint."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
import torch

from dexter_cli.checkpoint import load_inference
from dexter_cli.data import CodecStore
from dexter_cli.data.dataset import SegmentSet
from dexter_cli.engine import load_expression
from dexter_cli.errors import DexterError
from headfit import normal_equations, output_layer, solve_output_layer, with_output_rows

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fitted(checkpoint):
    expr, _ = load_expression(str(checkpoint))
    train = SegmentSet(CodecStore(checkpoint.parents[2] / "store"), "train", synthetic=True)
    return expr, train, normal_equations(expr, train, passes=2, batch_size=8, seed=0)


def test_normal_equations_see_what_the_output_layer_sees(fitted):
    expr, train, eq = fitted
    # the hooked features through the current layer are the model's output: the same squared error
    # from X'X (features) and from the outputs themselves
    from_outputs = (eq.yy - 2 * eq.oy + eq.oo) / eq.notes
    torch.testing.assert_close(eq.mse(*output_layer(expr)), from_outputs, rtol=1e-5, atol=1e-7)
    again = normal_equations(expr, train, passes=2, batch_size=8, seed=0)  # the seed fixes every draw
    assert torch.equal(again.A, eq.A) and torch.equal(again.B, eq.B)
    other = normal_equations(expr, train, passes=2, batch_size=8, seed=1)
    assert not torch.equal(other.B, eq.B)


def test_the_refit_is_the_least_squares_layer(fitted):
    expr, _, eq = fitted
    old = output_layer(expr)
    weight, bias = solve_output_layer(eq, ridge=1e-9)
    before, after = eq.mse(*old), eq.mse(weight, bias)
    assert torch.all(after <= before) and torch.any(after < 0.99 * before), (before, after)
    # the minimum: moving any one coefficient, or the bias, either way raises every row's error
    step = 0.1 * float(weight.abs().mean())
    for j in (0, weight.shape[1] // 2, weight.shape[1] - 1):
        for delta in (step, -step):
            bumped = weight.clone()
            bumped[:, j] += delta
            assert torch.all(eq.mse(bumped, bias) > after)
    assert torch.all(eq.mse(weight, bias + step) > after)


def test_only_the_chosen_rows_change(fitted, checkpoint):
    expr, _, eq = fitted
    state, _ = load_inference(checkpoint)
    weight, bias = solve_output_layer(eq)
    new = with_output_rows(state, [2, 4], weight, bias)
    for k in state:
        if k not in ("out.weight", "out.bias"):
            assert torch.equal(new[k], state[k])
    for r in range(5):
        same = torch.equal(new["out.weight"][r], state["out.weight"][r]) and torch.equal(new["out.bias"][r], state["out.bias"][r])
        assert same == (r not in (2, 4))
    assert torch.equal(new["out.weight"][2, :, 0], weight[2].float())
    with pytest.raises(DexterError, match="rows to refit"):
        with_output_rows(state, [5], weight, bias)


def test_refit_script_writes_a_loadable_checkpoint(checkpoint, tmp_path, monkeypatch, capsys, cli):
    out = tmp_path / "refit"
    monkeypatch.setattr(sys, "argv", ["refit_head.py", str(checkpoint), str(out), "--rows", "2,3,4",
                                      "--data", str(checkpoint.parents[2] / "store"), "--name", "tiny-head"])
    runpy.run_path(str(ROOT / "scripts" / "research" / "refit_head.py"), run_name="__main__")
    said = capsys.readouterr().out
    assert "timing" in said and "slope" in said
    state, config = load_inference(out)
    before, before_config = load_inference(checkpoint)
    assert config["training"]["name"] == "tiny-head" and config["training"]["head_refit"]["rows"] == [2, 3, 4]
    assert config["codec"] == before_config["codec"] and config["model"] == before_config["model"]
    assert torch.equal(state["out.weight"][:2], before["out.weight"][:2])
    assert not torch.equal(state["out.weight"][2:], before["out.weight"][2:])
    monkeypatch.setattr(sys, "argv", ["refit_head.py", str(checkpoint), str(tmp_path / "bad"), "--rows", "2,5"])
    with pytest.raises(DexterError, match="--rows"):  # refused before any drawing
        runpy.run_path(str(ROOT / "scripts" / "research" / "refit_head.py"), run_name="__main__")
    assert not (tmp_path / "bad").exists()
    code, said, _ = cli(["render", "--info", "--checkpoint", str(out)])  # render names the refit
    assert code == 0 and "model tiny-head" in said and "timing, articulation_log, pedal refitted" in said


def test_refit_keeps_the_prior_mean(checkpoint, tmp_path, monkeypatch, capsys):
    """A checkpoint trained around a prior mean keeps it, tensor for tensor, through the refit."""
    from dexter_cli.checkpoint import export_inference
    from dexter_cli.data import CodecStore
    from dexter_cli.prior import Prior

    store = checkpoint.parents[2] / "store"
    state, config = load_inference(checkpoint)
    config["task"]["prior"], config["task"]["prior_level_alpha"] = "level", 50.0
    prior = Prior.fit(CodecStore(store), alpha=1e3, level_alpha=50.0, stats=config["codec"]["stats"]).state_dict()
    export_inference(tmp_path / "with_prior", {**state, **prior}, config)
    monkeypatch.setattr(sys, "argv", ["refit_head.py", str(tmp_path / "with_prior"), str(tmp_path / "refit"),
                                      "--data", str(store), "--max-segments", "4"])
    runpy.run_path(str(ROOT / "scripts" / "research" / "refit_head.py"), run_name="__main__")
    capsys.readouterr()
    got, got_config = load_inference(tmp_path / "refit")
    assert all(torch.equal(got[k], v) for k, v in prior.items())
    assert got_config["training"]["head_refit"]["max_segments"] == 4
