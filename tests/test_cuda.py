"""On a GPU (skipped without one): sampling and the loss give what they give on the CPU.

A CPU ``torch.Generator`` drives all randomness, so the same seed draws the same noise on any
device; these tests caught noise drawn on the CPU and fed to a model on the GPU.
"""

from __future__ import annotations

import pytest
import torch

from dexter_cli.diffusion.windows import WindowedDenoiser
from dexter_cli.config import TaskConfig
from dexter_cli.engine import build_expression
from dexter_cli.model import ModelConfig
from dexter_cli.sampling import SamplingOptions

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")

S_DIM, C_DIM = 6, 4
STATS = {"p_log_mean": [-0.7, 0.5, 0.0, 0.2, 0.5], "p_log_std": [0.3, 0.13, 0.1, 1.2, 0.4],
         "s_mean": [0.0] * S_DIM, "s_std": [1.0] * S_DIM, "c_mean": [0.0] * C_DIM, "c_std": [1.0] * C_DIM}


def _expression():
    torch.manual_seed(0)
    expr = build_expression(ModelConfig(p_dim=5, s_dim=S_DIM, c_dim=C_DIM, residual_channels=16, residual_layers=4,
                                        dilation_cycle=2, attention_every=2, attention_heads=2),
                            STATS, TaskConfig(prediction="v"))
    torch.nn.init.normal_(expr.model.out.weight, std=0.1)  # the output layer starts at zero
    return expr


def _batch(n: int = 24):
    g = torch.Generator().manual_seed(1)
    return {"p_codec": torch.rand(2, n, 5, generator=g) + 0.1, "s_codec": torch.randn(2, n, S_DIM, generator=g),
            "c_codec": torch.randn(2, n, C_DIM, generator=g), "mask": torch.ones(2, n, dtype=torch.bool)}


def _on(expr, device):
    expr.model.to(device).eval()
    return expr


@pytest.mark.parametrize("sampler", ["dpm++", "ddim", "ddpm"])
def test_sampling_on_the_gpu_matches_the_cpu(sampler):
    expr, batch = _expression(), _batch()
    steps = 50 if sampler == "ddpm" else 10
    opts = SamplingOptions(sampler=sampler, steps=steps, guidance=2.0)
    cpu = _on(expr, "cpu").sample(batch, opts, generator=torch.Generator().manual_seed(3))
    gpu = _on(expr, "cuda").sample({k: v.cuda() for k, v in batch.items()}, opts,
                                   generator=torch.Generator().manual_seed(3))
    assert gpu.is_cuda
    torch.testing.assert_close(gpu.cpu(), cpu, atol=2e-3, rtol=2e-3)


def test_whole_piece_windows_and_variation_on_the_gpu():
    expr, batch = _expression(), _batch(50)
    opts = SamplingOptions(steps=8, guidance=2.0, strength=0.5)
    kw = {"x_start": batch["p_codec"], "wrap": lambda d: WindowedDenoiser(d, 50, 20, 10, seq_keys=("s", "c", "mask"))}
    cpu = _on(expr, "cpu").sample(batch, opts, generator=torch.Generator().manual_seed(4), **kw)
    gb = {k: v.cuda() for k, v in batch.items()}
    gpu = _on(expr, "cuda").sample(gb, opts, generator=torch.Generator().manual_seed(4), **{**kw, "x_start": gb["p_codec"]})
    torch.testing.assert_close(gpu.cpu(), cpu, atol=2e-3, rtol=2e-3)


def test_loss_on_the_gpu_matches_the_cpu():
    expr, batch = _expression(), _batch()
    cpu = _on(expr, "cpu").loss(batch, torch.Generator().manual_seed(5))["loss"]
    gpu = _on(expr, "cuda").loss(batch, torch.Generator().manual_seed(5), "cuda")["loss"]
    assert gpu.is_cuda
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)
