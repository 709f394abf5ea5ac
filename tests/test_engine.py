"""Expression: DExter's loss and its three ways to start a sample."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from dexter_cli.data import CodecStore
from dexter_cli.config import TaskConfig
from dexter_cli.engine import build_expression
from dexter_cli.model import ModelConfig
from dexter_cli.sampling import SamplingOptions



def test_cond_drop_one_makes_the_loss_ignore_conditions(store_path):
    st = CodecStore(store_path)
    expr = build_expression(ModelConfig(s_dim=len(st.meta["s_codec_names"]), residual_channels=8, residual_layers=2,
                                        dilation_cycle=2), st.meta["stats"], TaskConfig(cond_drop=1.0))
    torch.nn.init.normal_(expr.model.out.weight)
    from dexter_cli.data.dataset import SegmentSet
    batch = SegmentSet(st, "train").batch(np.arange(4))
    a = expr.loss(batch, torch.Generator().manual_seed(1))["loss"]
    batch2 = {**batch, "s_codec": batch["s_codec"] + 3, "c_codec": batch["c_codec"] * 2}
    b = expr.loss(batch2, torch.Generator().manual_seed(1))["loss"]
    assert torch.allclose(a, b)


def test_transfer_noises_the_target_with_the_paired_source(store_path):
    from dexter_cli.data.dataset import PairSet

    st = CodecStore(store_path)
    expr = build_expression(ModelConfig(s_dim=len(st.meta["s_codec_names"]), residual_channels=8, residual_layers=2,
                                        dilation_cycle=2), st.meta["stats"], TaskConfig(target="transfer"))
    seen = {}

    class Spy(torch.nn.Module):
        config = expr.model.config

        def forward(self, x, t, s, c, mask, drop_s, drop_c):
            seen.update(x=x, t=t, c=c)
            return torch.zeros_like(x)

    expr.model = Spy()
    batch = PairSet(st, "train").batch(np.arange(3))
    out = expr.loss(batch, torch.Generator().manual_seed(0))
    ab = expr.schedule.ab(seen["t"]).float().reshape(-1, 1, 1)
    x0, src = expr.norm.encode_p(batch["p_codec"]), expr.norm.encode_p(batch["source_p"])
    assert torch.allclose(seen["x"], ab.sqrt() * x0 + (1 - ab).sqrt() * src, atol=1e-5)
    # the condition is c_target - c_source (normalised)
    dc = expr.norm.encode_c(batch["c_codec"]) - expr.norm.encode_c(batch["source_c"])
    assert torch.allclose(seen["c"], dc, atol=1e-5)
    # eps-prediction: the target is the source itself (its "noise"), so a zero output costs its mean |source|
    from dexter_cli.diffusion import masked_mean

    assert out["diffusion"].item() == pytest.approx(masked_mean(src.abs(), batch["mask"]).item(), rel=1e-5)


class ZeroNet(torch.nn.Module):
    """A network that predicts nothing, recording the x_t it is given."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.seen: list[torch.Tensor] = []

    def condition(self, *args):
        return None

    def forward(self, x, t, s, c, mask, drop_s, drop_c, cond_h=None):
        self.seen.append(x.clone())
        return torch.zeros_like(x)


def test_temperature_scales_the_initial_noise_of_the_curves_only(store_path):
    from dexter_cli.data.dataset import SegmentSet

    st = CodecStore(store_path)
    cfg = ModelConfig(s_dim=len(st.meta["s_codec_names"]), residual_channels=8, residual_layers=2, dilation_cycle=2)
    expr = build_expression(cfg, st.meta["stats"], TaskConfig(prediction="v"))
    batch = SegmentSet(st, "train").batch(np.arange(2))
    starts = {}
    for tau in (1.0, 0.5, 0.0):
        expr.model = ZeroNet(cfg)
        expr.sample(batch, SamplingOptions(steps=2, temperature=tau), generator=torch.Generator().manual_seed(3))
        starts[tau] = expr.model.seen[0]
    assert starts[1.0].std() > 0.5
    curves, notes = [0, 1], [2, 3, 4]  # beat_period and velocity; timing, articulation, pedal
    assert torch.allclose(starts[0.5][..., curves], 0.5 * starts[1.0][..., curves])
    assert torch.equal(starts[0.0][..., curves], torch.zeros_like(starts[1.0][..., curves]))
    # the note-level rows keep their full noise (their spread is the asynchrony, say)
    assert torch.equal(starts[0.0][..., notes], starts[1.0][..., notes])


def test_mean_curves_take_the_first_steps_reading_and_keep_the_sampled_note_rows(store_path):
    from dexter_cli.data.dataset import SegmentSet

    st = CodecStore(store_path)
    cfg = ModelConfig(s_dim=len(st.meta["s_codec_names"]), residual_channels=8, residual_layers=2, dilation_cycle=2)
    expr = build_expression(cfg, st.meta["stats"], TaskConfig(prediction="v"))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a network whose output depends on its input (the output layer starts at zero)
        for w in expr.model.parameters():
            w.copy_(0.3 * torch.randn(w.shape, generator=gen))
    expr.model.eval()
    batch = SegmentSet(st, "train").batch(np.arange(2))

    def draw(x_start=None, **kw):
        opts = SamplingOptions(guidance=1.0, temperature=0.5, **kw)
        return expr.sample(batch, opts, generator=torch.Generator().manual_seed(3), x_start=x_start)

    mean, sampled, one_step = draw(steps=6, curves="mean"), draw(steps=6), draw(steps=1)
    curves, notes = [0, 1], [2, 3, 4]
    # the curves are x0_hat at t = T, which is what a one-step sampler returns from the same x_T
    assert torch.allclose(mean[..., curves], one_step[..., curves], atol=1e-5)
    assert not torch.allclose(mean[..., curves], sampled[..., curves], atol=1e-3)
    assert torch.equal(mean[..., notes], sampled[..., notes])  # the note-level rows are the sampler's
    # a variation starts from a performance, not from noise: no first-step reading to take
    start = {"x_start": batch["p_codec"], "strength": 0.5, "steps": 4}
    assert torch.equal(draw(curves="mean", **start), draw(**start))
    expr.target = "transfer"  # nor does the paper's transfer, which starts from its source
    batch.update(source_p=batch["p_codec"], source_c=batch["c_codec"])
    assert torch.equal(draw(steps=4, curves="mean"), draw(steps=4))


def test_a_sampling_denoiser_projects_the_conditions_once_per_call(store_path):
    from dexter_cli.data.dataset import SegmentSet

    st = CodecStore(store_path)
    cfg = ModelConfig(s_dim=len(st.meta["s_codec_names"]), residual_channels=8, residual_layers=2, dilation_cycle=2)
    expr = build_expression(cfg, st.meta["stats"], TaskConfig())
    batch = SegmentSet(st, "train").batch(np.arange(2))
    calls = []
    project = expr.model.condition
    expr.model.condition = lambda *a: calls.append(1) or project(*a)
    expr.sample(batch, SamplingOptions(steps=5, guidance=1.0), generator=torch.Generator().manual_seed(0))
    assert len(calls) == 1  # five steps, one projection
    expr.sample(batch, SamplingOptions(steps=5, guidance=2.0), generator=torch.Generator().manual_seed(0))
    assert len(calls) == 2  # with guidance too (the samplers pass one dict of both conditions)


def test_windowed_sampling_projects_each_batch_of_windows_once_within_the_budget(store_path):
    from dexter_cli.data.dataset import SegmentSet
    from dexter_cli.diffusion.windows import WindowedDenoiser

    st = CodecStore(store_path)
    cfg = ModelConfig(s_dim=len(st.meta["s_codec_names"]), residual_channels=8, residual_layers=2, dilation_cycle=2)
    expr = build_expression(cfg, st.meta["stats"], TaskConfig())
    torch.nn.init.normal_(expr.model.out.weight, std=0.3)
    batch = SegmentSet(st, "train").batch(np.arange(1))
    n = int(batch["mask"].shape[1])
    calls = []
    project = expr.model.condition
    expr.model.condition = lambda *a: calls.append(1) or project(*a)
    opts = SamplingOptions(steps=4, guidance=1.0)
    wrap = lambda d: WindowedDenoiser(d, n, n // 2, n // 4, seq_keys=("s", "c", "mask"), max_batch=2)  # noqa: E731
    batches = -(-len(WindowedDenoiser(None, n, n // 2, n // 4, ("s",)).starts) // 2)
    assert batches >= 2

    def run(budget: int | None) -> torch.Tensor:
        calls.clear()
        if budget is not None:
            expr.sampling_denoiser = lambda f=type(expr).sampling_denoiser: f(expr, cache_bytes=budget)
        return expr.sample(batch, opts, generator=torch.Generator().manual_seed(0), wrap=wrap)

    cached = run(None)
    assert len(calls) == batches  # each batch of windows projected once for all four steps
    uncached = run(0)
    assert len(calls) == 4 * batches  # no room: projected at every step
    assert torch.equal(cached, uncached)


def _tiny_expression(store_path, scale: float = 0.3):
    """A small random network (its output layer drawn, not zero) over the test store's codec."""
    st = CodecStore(store_path)
    cfg = ModelConfig(s_dim=len(st.meta["s_codec_names"]), residual_channels=8, residual_layers=2, dilation_cycle=2)
    torch.manual_seed(0)
    expr = build_expression(cfg, st.meta["stats"], TaskConfig())
    torch.nn.init.normal_(expr.model.out.weight, std=scale)
    torch.nn.init.normal_(expr.model.null_c, std=1.0)  # the nulls differ from the values given
    torch.nn.init.normal_(expr.model.null_s, std=1.0)
    from dexter_cli.data.dataset import SegmentSet

    return expr, SegmentSet(st, "train").batch(np.arange(2))


def test_guidance_changes_the_sample(store_path):
    expr, batch = _tiny_expression(store_path)
    seed = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    plain = expr.sample(batch, SamplingOptions(steps=3, guidance=1.0), generator=seed())
    guided = expr.sample(batch, SamplingOptions(steps=3, guidance=3.0), generator=seed())
    assert not torch.allclose(plain, guided)  # w = 3 pushes away from the unconditional pass


def test_the_sampler_clips_its_clean_data_estimate_to_the_codec_range(store_path):
    expr, batch = _tiny_expression(store_path, scale=50.0)  # a network whose x0_hat runs far outside
    seen = []
    expr.sample(batch, SamplingOptions(steps=4), generator=torch.Generator().manual_seed(0),
                callback=lambda i, n, x0: seen.append(x0.abs().max().item()))
    assert len(seen) == 4 and max(seen) <= expr.norm.clip + 1e-5


def test_ancestral_sampling_draws_from_the_generator_it_is_given(store_path):
    expr, batch = _tiny_expression(store_path)
    runs = []
    for global_seed, seed in ((1, 7), (2, 7), (3, 8)):
        torch.manual_seed(global_seed)  # the global generator must not matter
        runs.append(expr.sample(batch, SamplingOptions(sampler="ddpm"), generator=torch.Generator().manual_seed(seed)))
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
