"""A tiny model overfits a handful of real segments (the loss falls by a large factor)."""

import numpy as np
import pytest
import torch

from dexter_cli.data import CodecStore, CodecOptions, run_codec
from dexter_cli.data.dataset import SegmentSet
from dexter_cli.config import TaskConfig
from dexter_cli.engine import build_expression
from dexter_cli.model import ModelConfig

pytestmark = pytest.mark.slow


def test_tiny_model_overfits_real_segments(shared_datasets, tmp_path):
    run_codec(tmp_path / "s", CodecOptions(datasets_root=shared_datasets, datasets=["asap"], pieces=["Bach/Fugue_bwv_848"],
              max_note_seq=64, fractions=(1.0, 0.0, 0.0)))
    st = CodecStore(tmp_path / "s")
    batch = SegmentSet(st, "train", synthetic=False).batch(np.arange(4))
    torch.manual_seed(0)
    cfg = ModelConfig(s_dim=len(st.meta["s_codec_names"]), residual_channels=32, residual_layers=4, dilation_cycle=4)
    expr = build_expression(cfg, st.meta["stats"], TaskConfig(cond_drop=0.0, timesteps=1000))
    opt = torch.optim.Adam(expr.model.parameters(), lr=3e-3)

    def fixed_loss() -> float:
        with torch.no_grad():
            return float(np.mean([expr.loss(batch, torch.Generator().manual_seed(100 + k))["loss"].item() for k in range(8)]))

    before = fixed_loss()
    for step in range(300):
        loss = expr.loss(batch, torch.Generator().manual_seed(100 + step % 8))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = fixed_loss()
    print(f"fixed-batch loss {before:.4f} -> {after:.4f} ({before / after:.1f}x)")
    assert after < before / 4, (before, after)
