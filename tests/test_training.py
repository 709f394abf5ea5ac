"""Training: CFG nulls, checkpoints, resume, transfer, bad input, overfitting real segments."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dexter_cli.checkpoint import export_inference, load_inference
from dexter_cli.config import load_config
from dexter_cli.data import CodecStore, pair_store, run_codec
from dexter_cli.engine import build_expression
from dexter_cli.errors import DexterError
from dexter_cli.model import Denoiser, ModelConfig
from dexter_cli.model.normalize import CodecNormalizer
from dexter_cli.train import TrainingInterrupted, train

from .conftest import TINY, sigkill_when
from .synth import make_asap_tree



@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    root = make_asap_tree(tmp_path_factory.mktemp("asap"), {"A/B/1": 3, "A/B/2": 2}, n_notes=40)
    out = tmp_path_factory.mktemp("store") / "codec"
    run_codec(out, datasets_root=None, roots={"asap": root}, max_note_seq=16, mixup=True, fractions=(0.6, 0.4, 0.0))
    st = CodecStore(out)
    assert len(st.split_indices("train")) and len(st.split_indices("valid"))
    pair_store(out, k=None, seed=0)
    return out


def cfg_for(store_path: Path, run_dir: Path, *extra: str):
    return load_config(None, TINY + [f"data.path={store_path}", f"run_dir={run_dir}", "optim.batch_size=4",
                                     "optim.max_steps=12", "optim.warmup_steps=3", "eval.every=6",
                                     "eval.checkpoint_every=100", "eval.log_every=3", "eval.steps=3",
                                     "eval.sample_segments=2", "eval.valid_batches=1", *extra])


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
    # the nulls are parameters that training updates
    names = dict(m.named_parameters())
    assert "null_s" in names and "null_c" in names


def test_cond_drop_one_makes_the_loss_ignore_conditions(store_path):
    st = CodecStore(store_path)
    expr = build_expression(ModelConfig(s_dim=len(st.meta["s_codec_names"]), residual_channels=8, residual_layers=2,
                                        dilation_cycle=2), st.meta["stats"], {"cond_drop": 1.0})
    torch.nn.init.normal_(expr.model.out.weight)
    from dexter_cli.data.dataset import SegmentSet
    batch = SegmentSet(st, "train").batch(np.arange(4))
    a = expr.loss(batch, torch.Generator().manual_seed(1))["loss"]
    batch2 = {**batch, "s_codec": batch["s_codec"] + 3, "c_codec": batch["c_codec"] * 2}
    b = expr.loss(batch2, torch.Generator().manual_seed(1))["loss"]
    assert torch.allclose(a, b)


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


def test_resume_after_interruption_equals_an_uninterrupted_run(store_path, tmp_path):
    full = cfg_for(store_path, tmp_path / "full")
    train(full)
    part = cfg_for(store_path, tmp_path / "part")

    def interrupt(step, total, rec):
        if step == 6 and "loss" in rec:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingInterrupted) as exc:
        train(part, progress=interrupt)
    assert exc.value.step == 6
    train(cfg_for(store_path, tmp_path / "part"), resume=True)
    a, _ = load_inference(tmp_path / "full" / "checkpoints" / "last")
    b, _ = load_inference(tmp_path / "part" / "checkpoints" / "last")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    from safetensors.torch import load_file
    ma, mb = load_file(str(tmp_path / "full/state/model.safetensors")), load_file(str(tmp_path / "part/state/model.safetensors"))
    assert all(torch.equal(ma[k], mb[k]) for k in ma)


def test_transfer_target_trains_on_pairs(store_path, tmp_path):
    res = train(cfg_for(store_path, tmp_path / "tr", "task.target=transfer", "optim.max_steps=4"))
    assert res.step == 4
    _, config = load_inference(tmp_path / "tr" / "checkpoints" / "last")
    assert config["task"]["target"] == "transfer"
    # the source performance is the starting point: with no steps of denoising left it is returned
    from dexter_cli.data.dataset import PairSet
    st = CodecStore(store_path)
    pairs = PairSet(st, "train")
    assert len(pairs) > 0
    batch = pairs.batch(np.arange(2))
    assert not torch.equal(batch["source_p"], batch["p_codec"])


def test_bad_input_fails_before_any_work(store_path, tmp_path):
    with pytest.raises(DexterError, match="no codec store"):
        train(cfg_for(tmp_path / "nope", tmp_path / "r"))
    bad = tmp_path / "old"
    bad.mkdir()
    for f in Path(store_path).iterdir():
        if f.is_file():
            (bad / f.name).write_bytes(f.read_bytes())
    meta = json.loads((bad / "meta.json").read_text())
    meta["codec_version"] = 0
    (bad / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DexterError, match="codec version"):
        train(cfg_for(bad, tmp_path / "r"))
    (bad / "pairs.npy").unlink()
    meta["codec_version"] = 1
    (bad / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DexterError, match="dexter pair"):
        train(cfg_for(bad, tmp_path / "r", "task.target=transfer"))
    with pytest.raises(DexterError, match="unknown config key"):
        cfg_for(store_path, tmp_path / "r", "model.layers=3")
    with pytest.raises(DexterError, match="must be an integer"):
        cfg_for(store_path, tmp_path / "r", "optim.max_steps=many")
    train(cfg_for(store_path, tmp_path / "r2", "optim.max_steps=3"))
    with pytest.raises(DexterError, match="another model config"):
        train(cfg_for(store_path, tmp_path / "r2", "model.residual_channels=8"), resume=True)
    with pytest.raises(DexterError, match="already holds a training run"):
        train(cfg_for(store_path, tmp_path / "r2"))


def test_empty_train_split_is_refused(tmp_path):
    root = make_asap_tree(tmp_path / "asap", {"X/Y/1": 1}, n_notes=20)
    run_codec(tmp_path / "s", datasets_root=None, roots={"asap": root}, max_note_seq=16, fractions=(0.0, 0.0, 1.0))
    with pytest.raises(DexterError, match="train split .* is empty"):
        train(cfg_for(tmp_path / "s", tmp_path / "r"))


@pytest.mark.slow
def test_two_process_cpu_launch(store_path, tmp_path):
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "dexter_cli", "train", "-q", *TINY, f"data.path={store_path}", f"run_dir={tmp_path / 'ddp'}",
           "optim.batch_size=4", "optim.max_steps=4", "eval.every=4", "eval.log_every=2", "eval.steps=2",
           "eval.sample_segments=1", "eval.valid_batches=1"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    recs = [json.loads(l) for l in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if "loss" in r] == [2, 4]  # one writer: the main process
    load_inference(tmp_path / "ddp" / "checkpoints" / "last")


def test_transfer_noises_the_target_with_the_paired_source(store_path):
    from dexter_cli.data.dataset import PairSet

    st = CodecStore(store_path)
    expr = build_expression(ModelConfig(s_dim=len(st.meta["s_codec_names"]), residual_channels=8, residual_layers=2,
                                        dilation_cycle=2), st.meta["stats"], {"target": "transfer"})
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
    # eps-prediction target is the source: a zero output costs |source|
    assert out["diffusion"].item() > 0


def test_nonfinite_losses_are_skipped_then_stop_the_run(store_path, tmp_path, monkeypatch):
    from dexter_cli import engine

    real = engine.Expression.loss
    calls = {"n": 0}

    def flaky(self, batch, generator, device="cpu"):
        out = real(self, batch, generator, device)
        calls["n"] += 1
        if calls["n"] in (3, 4):  # two bad steps, then healthy again
            out = {**out, "loss": out["loss"] * float("nan")}
        return out

    monkeypatch.setattr(engine.Expression, "loss", flaky)
    res = train(cfg_for(store_path, tmp_path / "a", "optim.max_steps=8", "eval.every=100"))
    assert res.nonfinite_steps == 2 and res.step == 8
    from safetensors.torch import load_file
    assert all(torch.isfinite(v).all() for v in load_file(str(tmp_path / "a/state/model.safetensors")).values())

    monkeypatch.setattr(engine.Expression, "loss", lambda self, b, g, device="cpu": {
        "loss": torch.tensor(float("nan"), requires_grad=True), "diffusion": torch.tensor(0.0), "recon": torch.tensor(0.0)})
    with pytest.raises(DexterError, match="non-finite losses in a row"):
        train(cfg_for(store_path, tmp_path / "b", "optim.max_nonfinite=3"))


def test_gradient_accumulation_matches_one_big_batch_in_shape_and_runs(store_path, tmp_path):
    res = train(cfg_for(store_path, tmp_path / "acc", "optim.grad_accum=2", "optim.max_steps=4"))
    assert res.step == 4
    with pytest.raises(DexterError, match="must divide"):
        train(cfg_for(store_path, tmp_path / "bad", "optim.grad_accum=3", "optim.max_steps=2"))


@pytest.mark.slow
def test_sigkill_mid_run_resumes_from_the_last_state_to_the_same_weights(store_path, tmp_path):
    from dexter_cli.checkpoint import load_training_state

    extra = ["optim.max_steps=200", "eval.checkpoint_every=10", "eval.every=1000"]
    train(cfg_for(store_path, tmp_path / "full", *extra))
    run = tmp_path / "killed"
    args = [sys.executable, "-m", "dexter_cli", "train", *TINY, f"data.path={store_path}", "optim.batch_size=4",
            "optim.warmup_steps=3", "eval.log_every=3", "eval.steps=3", "eval.sample_segments=2",
            "eval.valid_batches=1", *extra, "--run-dir", str(run), "--quiet"]

    def reached_step_30() -> bool:
        try:
            return load_training_state(run / "state")["step"] >= 30
        except DexterError:
            return False  # no state yet (or being replaced: the old one must still be readable, asserted below)

    sigkill_when(args, reached_step_30, timeout=240)
    killed_at = load_training_state(run / "state")["step"]
    assert 30 <= killed_at < 200
    res = train(cfg_for(store_path, run, *extra), resume=True)
    assert res.step == 200
    a, _ = load_inference(tmp_path / "full" / "checkpoints" / "last")
    b, _ = load_inference(run / "checkpoints" / "last")
    assert all(torch.equal(a[k], b[k]) for k in a)


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


def test_the_linear_prior_is_the_mean_the_diffusion_is_relative_to(store_path, tmp_path):
    from dexter_cli.data.dataset import SegmentSet
    from dexter_cli.engine import load_expression
    from dexter_cli.prior import fit_linear_prior
    from dexter_cli.evaluation.baselines import LinearRenderer

    st = CodecStore(store_path)
    W, fitted_on = fit_linear_prior(st)
    assert W.shape == (len(st.meta["s_codec_names"]) + 1, 5)
    assert (np.asarray(st.seg_split)[fitted_on] == 0).all() and (np.asarray(st.seg_synthetic)[fitted_on] == 0).all()
    stats = {**st.meta["stats"], "prior_weights": W.tolist()}
    cfg = ModelConfig(s_dim=len(st.meta["s_codec_names"]), residual_channels=8, residual_layers=2, dilation_cycle=2)
    batch = SegmentSet(st, "train").batch(np.arange(3))
    # a network that predicts x0 = 0 renders mu(s): the linear reference, note for note
    expr = build_expression(cfg, stats, {"prediction": "x0"})
    expr.model = ZeroNet(cfg)
    p = expr.sample(batch, steps=4, generator=torch.Generator().manual_seed(0))
    lin = LinearRenderer(st)
    for k in range(3):
        m = batch["mask"][k].bool()
        piece = SimpleNamespace(s_codec=batch["s_codec"][k][m].numpy())  # all the linear renderer reads
        assert np.allclose(p[k][m].numpy(), lin(piece).p_codec, atol=1e-4)
    # without a prior the same network renders the training mean instead
    plain = build_expression(cfg, st.meta["stats"], {"prediction": "x0"})
    plain.model = ZeroNet(cfg)
    q = plain.sample(batch, steps=4, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(p, q, atol=1e-3)
    # training diffuses the residual: x_t = sqrt(ab) (x0 - mu) + sqrt(1 - ab) noise
    expr.loss(batch, torch.Generator().manual_seed(5))
    plain.loss(batch, torch.Generator().manual_seed(5))
    mu = expr.norm.prior(expr.norm.encode_s(batch["s_codec"]))
    t = torch.randint(0, 1000, (3,), generator=torch.Generator().manual_seed(5))
    ab = expr.schedule.ab(t).float().reshape(-1, 1, 1)
    assert torch.allclose(plain.model.seen[-1] - expr.model.seen[-1], ab.sqrt() * mu, atol=1e-5)
    # a run with the prior ships its weights in the checkpoint, and loads them for inference
    train(cfg_for(store_path, tmp_path / "pr", "task.prior=linear", "optim.max_steps=3"))
    loaded, config = load_expression(tmp_path / "pr" / "checkpoints" / "last")
    assert config["task"]["prior"] == "linear"
    assert np.allclose(loaded.norm.prior_w.numpy(), W, atol=1e-6)
    with pytest.raises(DexterError, match="unknown prior"):
        cfg_for(store_path, tmp_path / "r", "task.prior=quadratic")


def test_moving_average_counts_only_masked_notes():
    from dexter_cli.model.normalize import moving_average, prior_features

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


def test_the_context_prior_sees_the_neighbours(store_path, tmp_path):
    from dexter_cli.data.dataset import SegmentSet
    from dexter_cli.engine import load_expression
    from dexter_cli.prior import CONTEXT_WIDTHS, fit_linear_prior

    st = CodecStore(store_path)
    F = len(st.meta["s_codec_names"])
    W, _ = fit_linear_prior(st, context=CONTEXT_WIDTHS)
    assert W.shape == (F * (1 + len(CONTEXT_WIDTHS)) + 1, 5)
    # it fits the training data at least as well as the per-note regression it contains
    W0, _ = fit_linear_prior(st)
    norm = CodecNormalizer({**st.meta["stats"], "prior_weights": W.tolist(), "prior_context": list(CONTEXT_WIDTHS)})
    norm0 = CodecNormalizer({**st.meta["stats"], "prior_weights": W0.tolist()})
    batch = SegmentSet(st, "train").batch(np.arange(min(8, len(SegmentSet(st, "train")))))
    s, m = norm.encode_s(batch["s_codec"]), batch["mask"].bool()
    y = norm.encode_p(batch["p_codec"])
    err = ((norm.prior(s, m) - y)[m] ** 2).mean()
    err0 = ((norm0.prior(s, m) - y)[m] ** 2).mean()
    assert err < err0
    # a note's prior mean depends on its neighbours' features, not only its own
    s2 = s.clone()
    s2[0, 0] += 1.0
    moved = (norm.prior(s2, m)[0] - norm.prior(s, m)[0]).abs().sum(-1)
    assert moved[1:8].max() > 0 and (norm0.prior(s2, m)[0] - norm0.prior(s, m)[0]).abs().sum(-1)[1:].max() == 0
    # a run with it records the widths with the weights
    train(cfg_for(store_path, tmp_path / "ctx", "task.prior=context", "optim.max_steps=2"))
    loaded, config = load_expression(tmp_path / "ctx" / "checkpoints" / "last")
    assert config["task"]["prior"] == "context" and loaded.norm.prior_context == CONTEXT_WIDTHS
    assert np.allclose(loaded.norm.prior_w.numpy(), W, atol=1e-6)


def test_prior_penalty_is_used_and_kept_on_resume(store_path, tmp_path):
    from dexter_cli.engine import load_expression
    from dexter_cli.prior import fit_linear_prior

    st = CodecStore(store_path)
    W1, _ = fit_linear_prior(st)
    W5, _ = fit_linear_prior(st, alpha=1e5)
    assert np.linalg.norm(W5[:-1]) < np.linalg.norm(W1[:-1])  # the penalty shrinks the feature weights
    train(cfg_for(store_path, tmp_path / "a", "task.prior=linear", "task.prior_alpha=100000", "optim.max_steps=2"))
    loaded, config = load_expression(tmp_path / "a" / "checkpoints" / "last")
    assert config["task"]["prior_alpha"] == 1e5
    assert np.allclose(loaded.norm.prior_w.numpy(), W5, atol=1e-6)
    # resuming with another prior would diffuse around another mean: refused
    with pytest.raises(DexterError, match="prior"):
        train(cfg_for(store_path, tmp_path / "a", "task.prior=linear", "optim.max_steps=3"), resume=True)
    with pytest.raises(DexterError, match="prior_alpha"):
        cfg_for(store_path, tmp_path / "n", "task.prior_alpha=-1")


def test_the_within_fit_removes_each_performance_s_level(store_path, tmp_path):
    from dexter_cli.engine import load_expression
    from dexter_cli.prior import _regression_rows, fit_linear_prior

    st = CodecStore(store_path)
    W, idx = fit_linear_prior(st, alpha=0.5, within=True)
    norm = CodecNormalizer(st.meta["stats"])
    rows = list(_regression_rows(st, norm, idx, (), None, 0))
    X = torch.cat([r[0] for r in rows]).double().numpy()[:, :-1]
    Y = torch.cat([r[1] for r in rows]).double().numpy()
    perf = np.array([f"{st.index[int(i)]['score']}|{st.index[int(i)]['performance']}" for i in idx])
    group = np.unique(perf[torch.cat([r[2] for r in rows]).numpy()], return_inverse=True)[1].reshape(-1)
    assert group.max() >= 1  # several performances
    # the same weights as a ridge over the features plus one free level per performance
    # (fixed effects; only the features are penalised)
    D = np.eye(group.max() + 1)[group]
    A = np.concatenate([X, D], 1)
    pen = np.diag([0.5] * X.shape[1] + [0.0] * D.shape[1])
    full = np.linalg.lstsq(A.T @ A + pen, A.T @ Y, rcond=None)[0]
    assert np.allclose(W[:-1], full[:X.shape[1]], atol=1e-6)
    # the pooled fit differs, and both biases give the mean codec at the mean features
    P, _ = fit_linear_prior(st, alpha=0.5)
    assert not np.allclose(W[:-1], P[:-1], atol=1e-3)
    assert np.allclose(X.mean(0) @ W[:-1] + W[-1], Y.mean(0), atol=1e-6)
    # a run with it ships these weights; a resume keeps the fit; an unknown fit is refused
    train(cfg_for(store_path, tmp_path / "w", "task.prior=linear", "task.prior_fit=within", "optim.max_steps=2"))
    loaded, config = load_expression(tmp_path / "w" / "checkpoints" / "last")
    assert config["task"]["prior_fit"] == "within"
    assert np.allclose(loaded.norm.prior_w.numpy(), fit_linear_prior(st, within=True)[0], atol=1e-6)
    with pytest.raises(DexterError, match="prior_fit"):
        train(cfg_for(store_path, tmp_path / "w", "task.prior=linear", "optim.max_steps=3"), resume=True)
    with pytest.raises(DexterError, match="prior_fit"):
        cfg_for(store_path, tmp_path / "n", "task.prior_fit=between")


def test_the_mlp_prior_is_fitted_once_and_travels_in_the_weights(store_path, tmp_path):
    from dexter_cli.data.dataset import SegmentSet
    from dexter_cli.engine import load_expression
    from dexter_cli.model import PriorNet
    from dexter_cli.prior import CONTEXT_WIDTHS, fit_linear_prior, fit_prior_net

    st = CodecStore(store_path)
    W, _ = fit_linear_prior(st, context=CONTEXT_WIDTHS)
    norm = CodecNormalizer({**st.meta["stats"], "prior_weights": W.tolist(), "prior_context": list(CONTEXT_WIDTHS)})
    net = PriorNet(W.shape[0], 16, 5)
    fit = fit_prior_net(net, st, norm, epochs=100, batch_size=16)
    assert fit["prior_mse"] < 0.9 * fit["prior_mse_ridge"]  # it learns what the ridge misses, on its notes
    assert not any(p.requires_grad for p in net.parameters())
    with pytest.raises(DexterError, match="ridge"):
        fit_prior_net(PriorNet(W.shape[0], 16, 5), st, CodecNormalizer(st.meta["stats"]))
    # a run fits it once with the run's seed; neither the diffusion loss nor the EMA moves it
    train(cfg_for(store_path, tmp_path / "m", "task.prior=mlp", "optim.max_steps=2"))
    ref = PriorNet(W.shape[0], 128, 5)
    fit_prior_net(ref, st, norm, seed=0)
    for when in ("trained", "resumed"):
        loaded, config = load_expression(tmp_path / "m" / "checkpoints" / "last")
        assert config["model"]["prior_in"] == W.shape[0] and config["task"]["prior"] == "mlp", when
        for a, b in zip(loaded.model.prior_net.state_dict().values(), ref.state_dict().values()):
            assert torch.allclose(a, b, atol=1e-6), when
        train(cfg_for(store_path, tmp_path / "m", "task.prior=mlp", "optim.max_steps=3"), resume=True)
    # mu(s) is the ridge's reading plus the network's correction
    batch = SegmentSet(st, "train").batch(np.arange(2))
    s, m = loaded.norm.encode_s(batch["s_codec"]), batch["mask"].bool()
    with torch.no_grad():
        want = loaded.norm.prior(s, m) + ref(loaded.norm.prior_inputs(s, m))
        assert torch.allclose(loaded.prior(s, m), want, atol=1e-5)
        assert (loaded.prior(s, m) - loaded.norm.prior(s, m))[m].abs().max() > 1e-3


def test_temperature_scales_the_initial_noise(store_path):
    from dexter_cli.data.dataset import SegmentSet

    st = CodecStore(store_path)
    cfg = ModelConfig(s_dim=len(st.meta["s_codec_names"]), residual_channels=8, residual_layers=2, dilation_cycle=2)
    expr = build_expression(cfg, st.meta["stats"], {"prediction": "v"})
    batch = SegmentSet(st, "train").batch(np.arange(2))
    starts = {}
    for tau in (1.0, 0.5, 0.0):
        expr.model = ZeroNet(cfg)
        expr.sample(batch, steps=2, generator=torch.Generator().manual_seed(3), temperature=tau)
        starts[tau] = expr.model.seen[0]
    assert starts[1.0].std() > 0.5
    curves, notes = [0, 1], [2, 3, 4]  # beat_period and velocity; timing, articulation, pedal
    assert torch.allclose(starts[0.5][..., curves], 0.5 * starts[1.0][..., curves])
    assert torch.equal(starts[0.0][..., curves], torch.zeros_like(starts[1.0][..., curves]))
    # the note-level rows keep their full noise (their spread is the asynchrony, say)
    assert torch.equal(starts[0.0][..., notes], starts[1.0][..., notes])


def test_mean_curves_take_the_first_steps_reading_and_keep_the_sampled_note_rows(store_path):
    from dexter_cli.data.dataset import SegmentSet
    from dexter_cli.errors import DexterError

    st = CodecStore(store_path)
    cfg = ModelConfig(s_dim=len(st.meta["s_codec_names"]), residual_channels=8, residual_layers=2, dilation_cycle=2)
    expr = build_expression(cfg, st.meta["stats"], {"prediction": "v"})
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a network whose output depends on its input (the output layer starts at zero)
        for w in expr.model.parameters():
            w.copy_(0.3 * torch.randn(w.shape, generator=gen))
    expr.model.eval()
    batch = SegmentSet(st, "train").batch(np.arange(2))

    def draw(**kw):
        return expr.sample(batch, generator=torch.Generator().manual_seed(3), temperature=0.5, **kw)

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
    expr.target = "gen_noise"
    with pytest.raises(DexterError, match="curves"):
        draw(steps=2, curves="posterior")


def test_recorded_curve_mode_applies_at_the_recorded_temperature_only():
    from dexter_cli.engine import check_curves, sampling_curves
    from dexter_cli.errors import DexterError

    config = {"sampling": {"temperature": 0.1, "curves": "mean"}}
    assert sampling_curves(config, None, 0.1) == "mean"
    assert sampling_curves(config, None, 1.0) == "sample"  # judged at its temperature only
    assert sampling_curves(config, None, 0.1, from_noise=False) == "sample"
    assert sampling_curves(config, "sample", 0.1) == "sample" and sampling_curves({}, "mean", 1.0) == "mean"
    assert sampling_curves({}, None, 0.1) == "sample"
    with pytest.raises(DexterError, match="--curves"):
        check_curves("average")


def test_ema_warmup_forgets_the_initial_weights(store_path, tmp_path):
    from safetensors.torch import load_file

    from dexter_cli.train import ema_decay_at

    assert ema_decay_at(0, 0.999, False) == 0.999 and ema_decay_at(0, 0.999, True) == pytest.approx(0.1)
    assert ema_decay_at(20_000, 0.999, True) == 0.999
    kept = {w: float(np.prod([ema_decay_at(t, 0.999, w) for t in range(2000)])) for w in (False, True)}
    assert kept[False] == pytest.approx(0.999 ** 2000) and kept[True] < 1e-20  # the initial weights' share
    gap = {}
    for warm in (False, True):
        cfg = cfg_for(store_path, tmp_path / str(warm))
        cfg.optim.ema_warmup = warm
        train(cfg)
        ema, _ = load_inference(tmp_path / str(warm) / "checkpoints" / "last")
        raw = load_file(str(tmp_path / str(warm) / "state" / "model.safetensors"))
        gap[warm] = sum(float((ema[k].float() - raw[k].float()).norm()) for k in ema if k in raw)
    assert gap[True] < 0.5 * gap[False], gap  # a short run's average sits near its trained weights


def test_init_from_fine_tunes_from_an_inference_checkpoint(store_path, tmp_path):
    cfg = cfg_for(store_path, tmp_path / "base", "task.prior=linear")
    train(cfg)
    weights, config = load_inference(tmp_path / "base" / "checkpoints" / "last")
    # a start whose normalisation differs from what the store would give: the fine-tune must keep it
    config["codec"]["stats"]["p_std"] = [2.0 * v for v in config["codec"]["stats"]["p_std"]]
    export_inference(tmp_path / "start", weights, config)

    # lr 0: one update moves nothing, so the export is the start's weights, not a fresh initialisation
    ft = cfg_for(store_path, tmp_path / "ft", "task.prior=linear", f"init_from={tmp_path / 'start'}",
                 "optim.max_steps=1", "optim.lr=0", "optim.ema_warmup=true")
    train(ft)
    got, got_config = load_inference(tmp_path / "ft" / "checkpoints" / "last")
    assert set(got) == set(weights) and all(torch.equal(got[k], weights[k]) for k in weights)
    assert got_config["codec"]["stats"] == config["codec"]["stats"]
    assert got_config["training"]["init_from"] == str(tmp_path / "start") and got_config["training"]["init_step"] == 12

    # and it learns from there
    more = cfg_for(store_path, tmp_path / "ft2", "task.prior=linear", f"init_from={tmp_path / 'start'}")
    train(more)
    moved, _ = load_inference(tmp_path / "ft2" / "checkpoints" / "last")
    assert any(not torch.equal(moved[k], weights[k]) for k in weights)
    # a resume must not refit the normalisation and prior from the store: it needs the same start
    with pytest.raises(DexterError, match="started with init_from"):
        train(cfg_for(store_path, tmp_path / "ft2", "task.prior=linear"), resume=True)
    # and it keeps the normalisation it was trained with even when the start has changed since
    changed = json.loads(json.dumps(config))
    changed["codec"]["stats"]["p_std"] = [1.5 * v for v in changed["codec"]["stats"]["p_std"]]
    export_inference(tmp_path / "start", weights, changed)
    train(cfg_for(store_path, tmp_path / "ft2", "task.prior=linear", f"init_from={tmp_path / 'start'}",
                  "optim.max_steps=14"), resume=True)
    _, resumed = load_inference(tmp_path / "ft2" / "checkpoints" / "last")
    assert resumed["training"]["step"] == 14 and resumed["training"]["init_step"] == 12
    assert resumed["codec"]["stats"] == config["codec"]["stats"]

    for bad, why in ((["model.residual_channels=8"], "another model config"),
                     (["task.prior=none"], "task.prior"),
                     (["task.prior=linear", "task.prediction=x0"], "task.prediction")):
        with pytest.raises(DexterError, match=why):
            train(cfg_for(store_path, tmp_path / f"bad{len(bad)}{why[-3:]}", *bad,
                          f"init_from={tmp_path / 'start'}"))
    with pytest.raises(DexterError, match="no checkpoint"):
        train(cfg_for(store_path, tmp_path / "missing", f"init_from={tmp_path / 'nowhere'}"))


def test_numbers_in_exponent_form_are_numbers(tmp_path):
    # PyYAML reads 3e-05 (no dot) as a string; `dexter train --lr 3e-5` passes exactly that
    assert load_config(None, ["optim.lr=3e-05"]).optim.lr == pytest.approx(3e-5)
    (tmp_path / "c.yaml").write_text("optim:\n  lr: 1e-4\n  weight_decay: 0\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.optim.lr == pytest.approx(1e-4) and cfg.optim.weight_decay == 0.0
    for bad in ("fast", "nan", "inf"):
        with pytest.raises(DexterError, match="must be a number"):
            load_config(None, [f"optim.lr={bad}"])
