"""The prior mean mu(s) (dexter_cli/prior.py): a ridge fitted within performances, one object."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dexter_cli.config import TaskConfig
from dexter_cli.data import CodecStore
from dexter_cli.engine import build_expression, load_expression
from dexter_cli.errors import DexterError
from dexter_cli.model import ModelConfig
from dexter_cli.model.normalize import CodecNormalizer
from dexter_cli.prior import (CONTEXT_WIDTHS, LEVEL_WIDTH, Prior, fit_level, fit_within, level_features, moving_average,
                              prior_features, regression_rows)
from dexter_cli.sampling import SamplingOptions
from dexter_cli.train import train

from .conftest import cfg_for
from .test_engine import ZeroNet


def test_moving_average_counts_only_masked_notes():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 37, 3, generator=g)
    mask = torch.rand(2, 37, generator=g) > 0.3
    got = moving_average(z, mask, 8)
    for b in range(2):
        for i in range(37):
            lo, hi = max(0, i - 4), min(37, i + 5)
            m = mask[b, lo:hi]
            want = z[b, lo:hi][m].mean(0) if m.any() else torch.zeros(3)
            assert torch.allclose(got[b, i], want, atol=1e-5)
    # padding after the real notes changes nothing for them
    padded = torch.cat([z[:1], torch.full((1, 20, 3), 7.0)], dim=1)
    pmask = torch.cat([torch.ones(1, 37, dtype=torch.bool), torch.zeros(1, 20, dtype=torch.bool)], dim=1)
    f = prior_features(padded, pmask, (8, 32))
    assert f.shape == (1, 57, 3 * 3 + 1)
    assert torch.allclose(f[:, :37], prior_features(z[:1], None, (8, 32)), atol=1e-6)


def test_the_within_fit_is_a_ridge_with_one_free_level_per_performance(store_path):
    st = CodecStore(store_path)
    idx = st.split_indices("train", synthetic=False)
    W = fit_within(st, 0.5, ())
    norm = CodecNormalizer(st.meta["stats"])
    rows = list(regression_rows(st, norm, idx, prior_features, None, 0))
    X = torch.cat([r[0] for r in rows]).double().numpy()[:, :-1]
    Y = torch.cat([r[1] for r in rows]).double().numpy()
    perf = np.array([f"{st.index[int(i)]['score']}|{st.index[int(i)]['performance']}" for i in idx])
    perf = perf[torch.cat([r[2] for r in rows]).numpy()]
    group = np.unique(perf, return_inverse=True)[1].reshape(-1)
    assert group.max() >= 1  # several performances
    # fixed effects: the same weights as a ridge over the features plus a free level per performance
    D = np.eye(group.max() + 1)[group]
    A = np.concatenate([X, D], 1)
    pen = np.diag([0.5] * X.shape[1] + [0.0] * D.shape[1])
    full = np.linalg.lstsq(A.T @ A + pen, A.T @ Y, rcond=None)[0]
    assert np.allclose(W[:-1], full[:X.shape[1]], atol=1e-6)
    # the bias gives the mean codec at the mean features
    assert np.allclose(X.mean(0) @ W[:-1] + W[-1], Y.mean(0), atol=1e-6)
    # the penalty shrinks the feature weights
    assert np.linalg.norm(fit_within(st, 1e5, ())[:-1]) < np.linalg.norm(W[:-1])


def test_the_level_part_is_a_pooled_ridge_on_what_the_within_fit_leaves(store_path):
    st = CodecStore(store_path)
    idx = st.split_indices("train", synthetic=False)
    norm = CodecNormalizer(st.meta["stats"])
    W = fit_within(st, 0.5, (8,))
    A = fit_level(st, W, 2.0, (8,), 16)
    rows = list(regression_rows(st, norm, idx, lambda s, m: torch.cat([prior_features(s, m, (8,)),
                                                                       level_features(s, m, 16)], -1), None, 0))
    X = torch.cat([r[0] for r in rows]).double().numpy()
    Y = torch.cat([r[1] for r in rows]).double().numpy()
    k = W.shape[0]
    R, Z = Y - X[:, :k] @ W, X[:, k:]
    # the same as a least-squares fit over the level regressors with a penalty on all but the bias
    pen = np.diag([2.0] * (Z.shape[1] - 1) + [0.0])
    want = np.linalg.solve(Z.T @ Z + pen, Z.T @ R)
    assert np.allclose(A, want, atol=1e-6)
    assert np.abs(A[:-1]).max() > 1e-4  # it learns something


def test_the_level_part_adds_the_scores_mean_features_to_mu():
    g = torch.Generator().manual_seed(1)
    W, A = torch.randn(3 * 2 + 1, 5, generator=g), torch.randn(3 + 1, 5, generator=g)
    s = torch.randn(1, 40, 3, generator=g)
    prior, plain = Prior(W, (8,), A, 16), Prior(W, (8,))
    mean16 = moving_average(s, None, 16)
    assert torch.allclose(prior(s) - plain(s), mean16 @ A[:-1] + A[-1], atol=1e-5)
    state = prior.state_dict()
    assert set(state) == {"prior.weights", "prior.widths", "prior.level", "prior.level_width"}
    back = Prior.from_state_dict(state)
    assert torch.equal(back.level, A) and back.level_width == 16 and torch.allclose(back(s), prior(s))
    with pytest.raises(DexterError, match="incomplete"):
        Prior.from_state_dict({k: v for k, v in state.items() if k != "prior.level_width"})
    with pytest.raises(DexterError, match="does not fit"):
        Prior.from_state_dict({**state, "prior.level": A[:-1]})
    assert Prior(W, (8,)).level is None and LEVEL_WIDTH == 300


def test_the_prior_sees_the_neighbours(store_path):
    from dexter_cli.data.dataset import SegmentSet

    st = CodecStore(store_path)
    prior = Prior.fit(st, alpha=1.0)
    F = len(st.meta["s_codec_names"])
    assert prior.weights.shape == (F * (1 + len(CONTEXT_WIDTHS)) + 1, 5) and prior.widths == CONTEXT_WIDTHS
    per_note = Prior(torch.from_numpy(fit_within(st, 1.0, ())).float(), ())
    norm = CodecNormalizer(st.meta["stats"])
    batch = SegmentSet(st, "train").batch(np.arange(min(8, len(SegmentSet(st, "train")))))
    s, m = norm.encode_s(batch["s_codec"]), batch["mask"].bool()
    s2 = s.clone()
    s2[0, 0] += 1.0
    # a note's prior mean depends on its neighbours' features, not only its own
    moved = (prior(s2, m)[0] - prior(s, m)[0]).abs().sum(-1)
    assert moved[1:8].max() > 0 and (per_note(s2, m)[0] - per_note(s, m)[0]).abs().sum(-1)[1:].max() == 0


def test_the_state_is_two_tensors_and_round_trips():
    w = torch.randn(64 * 4 + 1, 5)
    state = Prior(w).state_dict()
    assert set(state) == {"prior.weights", "prior.widths"} and state["prior.widths"].dtype == torch.int64
    back = Prior.from_state_dict(state)
    assert torch.equal(back.weights, w) and back.widths == CONTEXT_WIDTHS
    assert Prior.from_state_dict({"out.weight": w}) is None
    with pytest.raises(DexterError, match="incomplete"):
        Prior.from_state_dict({"prior.weights": w})
    with pytest.raises(DexterError, match="do not fit"):
        Prior.from_state_dict({"prior.weights": w[:-3], "prior.widths": torch.tensor([8, 32, 128])})


def test_the_diffusion_is_relative_to_the_prior_and_linear_is_the_prior_alone(store_path):
    from dexter_cli.data.dataset import SegmentSet
    from dexter_cli.evaluation.baselines import LinearRenderer

    st = CodecStore(store_path)
    prior = Prior.fit(st, alpha=TaskConfig().prior_alpha)
    cfg = ModelConfig(s_dim=len(st.meta["s_codec_names"]), residual_channels=8, residual_layers=2, dilation_cycle=2)
    batch = SegmentSet(st, "train").batch(np.arange(3))
    # a network that predicts x0 = 0 renders mu(s): the linear baseline, note for note
    expr = build_expression(cfg, st.meta["stats"], TaskConfig(prediction="x0"), prior)
    expr.model = ZeroNet(cfg)
    p = expr.sample(batch, SamplingOptions(steps=4), generator=torch.Generator().manual_seed(0))
    lin = LinearRenderer(st)
    for k in range(3):
        m = batch["mask"][k].bool()
        piece = SimpleNamespace(s_codec=batch["s_codec"][k][m].numpy())  # all the linear renderer reads
        assert np.allclose(p[k][m].numpy(), lin(piece).p_codec, atol=1e-4)
    # without a prior the same network renders the training mean instead
    plain = build_expression(cfg, st.meta["stats"], TaskConfig(prediction="x0"))
    plain.model = ZeroNet(cfg)
    q = plain.sample(batch, SamplingOptions(steps=4), generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(p, q, atol=1e-3)
    # training diffuses the residual: x_t = sqrt(ab) (x0 - mu) + sqrt(1 - ab) noise
    expr.loss(batch, torch.Generator().manual_seed(5))
    plain.loss(batch, torch.Generator().manual_seed(5))
    mu = prior(expr.norm.encode_s(batch["s_codec"]), batch["mask"].float())
    ab = expr.training_draw(batch, torch.Generator().manual_seed(5))["ab"].float().reshape(-1, 1, 1)  # the same t
    assert torch.allclose(plain.model.seen[-1] - expr.model.seen[-1], ab.sqrt() * mu, atol=1e-5)


def test_a_run_ships_its_prior_as_tensors_and_keeps_it_on_resume(store_path, tmp_path):
    from safetensors.torch import load_file

    st = CodecStore(store_path)
    train(cfg_for(store_path, tmp_path / "a", "task.prior=context", "task.prior_alpha=1000", "optim.max_steps=2"))
    ck = tmp_path / "a" / "checkpoints" / "last"
    stored = load_file(str(ck / "model.safetensors"))
    assert stored["prior.weights"].dtype == torch.float32 and "prior_weights" not in ck.joinpath("config.json").read_text()
    loaded, config = load_expression(ck)
    assert config["task"]["prior"] == "context" and config["task"]["prior_alpha"] == 1000
    assert torch.allclose(loaded.prior.weights, Prior.fit(st, alpha=1000).weights, atol=1e-6)
    assert not any(k.startswith("prior") for k in loaded.model.state_dict())  # the network carries no prior
    train(cfg_for(store_path, tmp_path / "a", "task.prior=context", "task.prior_alpha=1000", "optim.max_steps=3"),
          resume=True)
    again, _ = load_expression(ck)
    assert torch.equal(again.prior.weights, loaded.prior.weights)
    # resuming with another prior would diffuse around another mean: refused
    with pytest.raises(DexterError, match="prior"):
        train(cfg_for(store_path, tmp_path / "a", "task.prior=none", "optim.max_steps=4"), resume=True)
    for bad, why in (("task.prior=linear", "unknown prior"), ("task.prior_alpha=-1", "prior_alpha")):
        with pytest.raises(DexterError, match=why):
            cfg_for(store_path, tmp_path / "n", bad)


def test_a_checkpoint_with_the_prior_in_its_statistics_still_loads(store_path, tmp_path):
    """Checkpoints written before the prior was stored as tensors kept its weights as JSON lists."""
    from dexter_cli.checkpoint import export_inference, load_inference

    train(cfg_for(store_path, tmp_path / "r", "task.prior=context", "optim.max_steps=2"))
    state, config = load_inference(tmp_path / "r" / "checkpoints" / "last")
    prior = Prior.from_state_dict(state)
    old = {k: v for k, v in state.items() if not k.startswith("prior.")}
    config["codec"]["stats"].update(prior_weights=prior.weights.tolist(), prior_context=list(prior.widths))
    config["model"].update(prior_in=0, prior_hidden=128)
    config["task"]["prior_fit"] = "within"
    for k in ("format", "sha256"):
        config.pop(k)
    export_inference(tmp_path / "old", old, config)
    loaded, _ = load_expression(tmp_path / "old")
    assert torch.equal(loaded.prior.weights, prior.weights) and loaded.prior.widths == prior.widths


def test_a_checkpoint_without_the_prior_it_was_trained_around_is_refused(store_path, tmp_path):
    from dexter_cli.checkpoint import export_inference, load_inference

    train(cfg_for(store_path, tmp_path / "r", "task.prior=context", "optim.max_steps=2"))
    state, config = load_inference(tmp_path / "r" / "checkpoints" / "last")
    export_inference(tmp_path / "bare", {k: v for k, v in state.items() if not k.startswith("prior.")}, config)
    with pytest.raises(DexterError, match="context prior mean, but carries none"):
        load_expression(tmp_path / "bare")
    config["task"]["prior"] = "level"  # a level model whose stored prior has no level part
    export_inference(tmp_path / "nolevel", state, config)
    with pytest.raises(DexterError, match="carries another"):
        load_expression(tmp_path / "nolevel")
