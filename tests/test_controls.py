"""Each control reaches the network at its own column and moves its own descriptor (render's control path).

The network is a stub whose x0 prediction is known: each of four p_codec rows follows one control's
normalised value (0 where the control is free, i.e. dropped to its null). Rendering through
``sample_score`` with ``--control NAME=VALUE`` must then move that row, and only that row, in the
direction of the value: a control silently ignored, sent to another column or left dropped fails.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dexter_cli.config import TaskConfig
from dexter_cli.data.codec import C_CODEC_NAMES, Row
from dexter_cli.engine import build_expression
from dexter_cli.model import ModelConfig
from dexter_cli.render import sample_score

from .synth import make_score

# control -> (p_codec row it drives in the stub, sign of the row's change for a positive control)
DRIVES = {"tempo_level": (Row.BEAT_PERIOD, -1.0), "loudness": (Row.VELOCITY, +1.0),
          "articulation": (Row.ARTICULATION, +1.0), "pedal_amount": (Row.PEDAL, +1.0)}


class ControlledNet(torch.nn.Module):
    """x0 prediction: row r = sign * c_j for each driven control j (0 when dropped), nothing else."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config

    def condition(self, *args):
        return None

    def forward(self, x, t, s, c, mask, drop_s, drop_c, cond_h=None):
        out = torch.zeros_like(x)
        for name, (row, sign) in DRIVES.items():
            j = C_CODEC_NAMES.index(name)
            out[..., row] = sign * torch.where(drop_c[:, None, j], torch.zeros_like(c[..., j]), c[..., j])
        return out


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    stats = {"p_log_mean": [-0.7, 0.5, 0.0, 0.2, 0.4], "p_log_std": [0.5, 0.15, 0.1, 1.0, 0.4],
             "s_mean": [0.0] * 64, "s_std": [1.0] * 64,
             "c_mean": [150.0, 0.2, 63.0, 11.0, 0.2, 0.45, 25.0] + [0.0] * 7,
             "c_std": [100.0, 0.2, 12.0, 3.0, 0.8, 0.3, 60.0] + [1.0] * 7,
             "c_min": [0.0] * 14, "c_max": [1.0] * 7 + [0.0] * 7}
    cfg = ModelConfig(p_dim=5, s_dim=64, c_dim=14)
    expr = build_expression(cfg, stats, TaskConfig(prediction="x0"))
    expr.model = ControlledNet(cfg)
    config = {"codec": {"max_note_seq": 16, "stats": stats, "c_codec_names": list(C_CODEC_NAMES)}, "sampling": {}}
    score = tmp_path_factory.mktemp("score") / "s.musicxml"
    make_score(score, n_notes=40)
    return (expr, config), score


def _row_mean(loaded, score, controls: list[str], row: int) -> float:
    p = sample_score(score, {"controls": controls, "steps": 2, "guidance": 1.0}, checkpoint=loaded).p_codec[0]
    return float(np.mean(np.log(p[:, row]) if row == Row.BEAT_PERIOD else p[:, row]))


@pytest.mark.parametrize("name", list(DRIVES))
def test_each_control_moves_its_own_row_in_its_direction(model, name):
    loaded, score = model
    row, sign = DRIVES[name]
    free = _row_mean(loaded, score, [], row)
    low, high = (_row_mean(loaded, score, [f"{name}={v}"], row) for v in (-1, +1))
    assert sign * (high - free) > 0.05 and sign * (free - low) > 0.05, (low, free, high)
    others = [r for r, _ in DRIVES.values() if r != row]
    for r in others:  # and no other row
        assert _row_mean(loaded, score, [f"{name}=+1"], r) == pytest.approx(_row_mean(loaded, score, [], r), abs=1e-6)
