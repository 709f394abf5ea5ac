"""Inference checkpoints: safetensors plus config, verified when read."""

from __future__ import annotations

import json

import pytest
import torch

from dexter_cli.checkpoint import export_inference, load_inference
from dexter_cli.errors import DexterError
from dexter_cli.model import Denoiser, ModelConfig



def test_checkpoint_round_trips_bit_exactly(tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig(residual_channels=8, residual_layers=2, dilation_cycle=2)
    m = Denoiser(cfg)
    export_inference(tmp_path / "ck", m.state_dict(), {"model": cfg.to_dict(), "codec": {}})
    state, config = load_inference(tmp_path / "ck")
    for k, v in m.state_dict().items():
        assert torch.equal(state[k], v), k
    m2 = Denoiser(ModelConfig.from_dict(config["model"]))
    m2.load_state_dict(state)
    assert config["sha256"] and json.loads((tmp_path / "ck" / "config.json").read_text())["sha256"] == config["sha256"]


def test_float16_storage_halves_the_file_and_loads_as_float32(tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig(residual_channels=16, residual_layers=2, dilation_cycle=2)
    state = Denoiser(cfg).state_dict()
    state["out.weight"] = torch.randn_like(state["out.weight"])  # zero at init: make the rounding visible
    export_inference(tmp_path / "full", state, {"model": cfg.to_dict()})
    export_inference(tmp_path / "half", state, {"model": cfg.to_dict()}, dtype=torch.float16)
    size = lambda d: (tmp_path / d / "model.safetensors").stat().st_size  # noqa: E731
    assert size("half") < 0.6 * size("full")
    full, cfg_full = load_inference(tmp_path / "full")
    half, cfg_half = load_inference(tmp_path / "half")
    assert (cfg_full["weights_dtype"], cfg_half["weights_dtype"]) == ("float32", "float16")
    for k, v in state.items():
        assert half[k].dtype == torch.float32 and torch.equal(half[k], v.half().float()), k
    assert not torch.equal(half["out.weight"], full["out.weight"])  # rounded, not the float32 weights
    Denoiser(ModelConfig.from_dict(cfg_half["model"])).load_state_dict(half)
    with pytest.raises(DexterError, match="floating-point"):
        export_inference(tmp_path / "int", state, {"model": cfg.to_dict()}, dtype=torch.int8)


def test_damaged_or_altered_checkpoints_are_refused(tmp_path):
    cfg = ModelConfig(residual_channels=8, residual_layers=2, dilation_cycle=2)
    export_inference(tmp_path / "ck", Denoiser(cfg).state_dict(), {"model": cfg.to_dict()})
    f = tmp_path / "ck" / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(DexterError, match="damaged"):
        load_inference(tmp_path / "ck")
    f.write_bytes(data[:-4] + bytes(4))  # flip the last weights' bytes
    with pytest.raises(DexterError, match="checksum"):
        load_inference(tmp_path / "ck")
