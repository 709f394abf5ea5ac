"""The denoiser network: conditions and their learned nulls."""

from __future__ import annotations


import torch

from dexter_cli.model import Denoiser, ModelConfig



def test_dropped_conditions_use_the_learned_nulls():
    torch.manual_seed(0)
    cfg = ModelConfig(p_dim=5, s_dim=6, c_dim=4, residual_channels=8, residual_layers=2, dilation_cycle=2)
    m = Denoiser(cfg)
    torch.nn.init.normal_(m.out.weight)  # the output layer starts at zero
    x, t = torch.randn(2, 10, 5), torch.tensor([3, 500])
    s, c, mask = torch.randn(2, 10, 6), torch.randn(2, 10, 4), torch.ones(2, 10)
    ds, dc = torch.tensor([True, True]), torch.zeros(2, 4, dtype=torch.bool)
    dc[:, 1] = True
    a = m(x, t, s, c, mask, ds, dc)
    c2 = c.clone()
    c2[..., 1] += 5.0
    b = m(x, t, torch.randn(2, 10, 6), c2, mask, ds, dc)
    assert torch.allclose(a, b, atol=1e-6)  # dropped score and control 1: their values do not matter
    c3 = c.clone()
    c3[..., 0] += 5.0
    assert not torch.allclose(a, m(x, t, s, c3, mask, ds, dc))  # control 0 is given: it matters
    # the nulls are parameters that training updates: one step on a loss through dropped conditions moves them
    before = {k: v.detach().clone() for k, v in m.named_parameters() if k in ("null_s", "null_c")}
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    m(x, t, s, c, mask, ds, dc).square().mean().backward()
    opt.step()
    assert not torch.equal(m.null_s, before["null_s"])
    assert not torch.equal(m.null_c[1], before["null_c"][1])  # control 1 was dropped: its null was used
    assert torch.equal(m.null_c[0], before["null_c"][0])  # control 0 was given: its null took no part
