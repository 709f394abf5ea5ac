"""The training objective, optimiser, sampling start and metrics, each against a value worked out
independently of the code it checks: the loss written out from DExter's formula, learning rates by
hand, accumulated gradients against one big batch, Adam's first-step bound under clipping, the best
checkpoint against the logged minimum, the closed form of a sampler whose denoiser predicts no
noise, and metrics computed on paper.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dexter_cli.config import load_config
from dexter_cli.data import CodecStore, CodecOptions, run_codec
from dexter_cli.data.dataset import SegmentSet
from dexter_cli.diffusion import Schedule
from dexter_cli.config import TaskConfig
from dexter_cli.engine import Expression, build_expression
from dexter_cli.sampling import SamplingOptions
from dexter_cli.evaluation.metrics import Performance, compare, kl_divergence, onset_curves
from dexter_cli.evaluation.metrics import pearson
from dexter_cli.model import Denoiser
from dexter_cli.model.normalize import CodecNormalizer
from dexter_cli.train import batch_indices, example_generators, get_lr, train

from .conftest import TINY
from .synth import make_asap_tree

T = 1000
# normalisation of p_codec (row 0 on a log scale): beat_period, velocity, timing, articulation_log, pedal
P_MEAN = [-0.5, 0.5, 0.0, -1.0, 0.3]
P_STD = [0.4, 0.2, 0.05, 0.8, 0.4]
STATS = {"p_log_mean": P_MEAN, "p_log_std": P_STD, "s_mean": [0.0, 1.0], "s_std": [1.0, 2.0],
         "c_mean": [0.0, 0.0, 0.0], "c_std": [1.0, 1.0, 1.0]}


def alpha_bar(t) -> np.ndarray:
    """DDPM's linear schedule written out: beta_s from 1e-4 to 0.02, alpha_bar_t = prod_{s<=t} (1 - beta_s)."""
    betas = 1e-4 + (0.02 - 1e-4) * np.arange(T) / (T - 1)
    return np.cumprod(1.0 - betas)[np.asarray(t)]


def normalised(p: torch.Tensor, clip: float = 5.0) -> torch.Tensor:
    """Raw p_codec -> the model's space, by hand: log beat_period, standardise, clip to +-clip std."""
    q = p.double().clone()
    q[..., 0] = q[..., 0].log()
    return ((q - torch.tensor(P_MEAN, dtype=torch.float64)) / torch.tensor(P_STD, dtype=torch.float64)).clamp(-clip, clip)


class FixedNet(torch.nn.Module):
    """A denoiser whose output is a given tensor (None: zeros, i.e. it sees no noise); it records its inputs."""

    def __init__(self, out: torch.Tensor | None = None, p_dim: int = 5):
        super().__init__()
        self.config = SimpleNamespace(p_dim=p_dim)
        self.out, self.seen = out, []

    def condition(self, *args):
        return None

    def forward(self, x, t, *args, cond_h=None):
        self.seen.append((x.clone(), t.clone()))
        return torch.zeros_like(x) if self.out is None else self.out


def toy_batch(seed: int, B: int = 4, N: int = 6) -> dict:
    """Raw codecs of B segments of N notes, every value inside the codec's range."""
    g = torch.Generator().manual_seed(seed)
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(B, N, generator=g)  # noqa: E731
    p = torch.stack([u(0.3, 1.0), u(0.2, 0.8), 0.03 * torch.randn(B, N, generator=g), u(-2.0, 0.0), u(0.1, 0.9)], dim=-1)
    return {"p_codec": p, "s_codec": torch.randn(B, N, 2, generator=g), "c_codec": torch.randn(B, N, 3, generator=g),
            "mask": torch.ones(B, N)}


# --- 1. the training loss ------------------------------------------------------------------------

@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
def test_training_loss_is_dexters_formula_computed_by_hand(prediction):
    """loss = masked mean |out - target| (target eps, x0 or v = sqrt(ab) eps - sqrt(1-ab) x0)
    + 0.2 * sum over rows of the masked mean of alpha_bar_t (x0_hat - x0)^2, over the normalised,
    +-5-std clipped performance, written out here from the formula (the noise read back from x_t)."""
    batch = toy_batch(0)
    batch["mask"][0, 4:] = 0  # padding
    batch["mask"][2, 1] = 0  # an unplayed note
    batch["p_codec"][1, 2, 2] = 5.0  # a 5 s timing deviation: 100 std, clipped to 5
    out = torch.randn(4, 6, 5, generator=torch.Generator().manual_seed(1))  # masked entries too: they must not count
    net = FixedNet(out)
    expr = Expression(net, CodecNormalizer(STATS, 5.0), Schedule.linear(T), TaskConfig(prediction=prediction))
    got = expr.loss(batch, torch.Generator().manual_seed(2))

    x_t, t = net.seen[0][0].double(), net.seen[0][1]
    x0 = normalised(batch["p_codec"])
    assert x0[1, 2, 2] == 5.0
    ab = torch.from_numpy(alpha_bar(t.numpy()))[:, None, None]
    a, s = ab.sqrt(), (1 - ab).sqrt()
    eps = (x_t - a * x0) / s  # x_t = sqrt(ab) x0 + sqrt(1 - ab) eps
    o = out.double()
    target = {"eps": eps, "x0": x0, "v": a * eps - s * x0}[prediction]
    x0_hat = {"eps": (x_t - s * o) / a, "x0": o, "v": a * x_t - s * o}[prediction]
    m = batch["mask"].double()[..., None]
    l1 = ((o - target).abs() * m).sum() / (m.sum() * 5)
    recon = (ab * (x0_hat - x0) ** 2 * m).sum() / m.sum()  # the five per-row means, summed
    assert got["diffusion"].item() == pytest.approx(l1.item(), rel=1e-4)
    assert got["recon"].item() == pytest.approx(recon.item(), rel=1e-4)
    assert got["loss"].item() == pytest.approx((l1 + 0.2 * recon).item(), rel=1e-4)


# --- training runs on a small store ----------------------------------------------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("grounded")
    root = make_asap_tree(base / "asap", {"A/B/1": 2, "A/B/2": 2}, n_notes=40)
    run_codec(base / "store", CodecOptions(datasets_root=None, roots={"asap": root}, max_note_seq=16, fractions=(0.5, 0.5, 0.0)))
    return base / "store"


def run(store: Path, run_dir: Path, *overrides: str):
    """Train the tiny model with batches of 4, evaluating (the loss only) and saving at the end only."""
    cfg = load_config(None, TINY + [f"data.path={store}", f"run_dir={run_dir}", "optim.batch_size=4",
                                    "eval.every=1000", "eval.checkpoint_every=1000", "eval.sample_segments=0",
                                    "eval.valid_batches=1", *overrides])
    train(cfg)
    return cfg


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The trained (not EMA) weights of a run's saved state."""
    return load_file(str(run_dir / "state" / "model.safetensors"))


def largest_move(w: dict[str, torch.Tensor], w0: dict[str, torch.Tensor]) -> float:
    """The largest change of any one weight."""
    return max((w[k] - w0[k]).abs().max().item() for k in w)


def initial_weights(cfg) -> dict[str, torch.Tensor]:
    """The weights training starts from: the model built right after seeding with ``cfg.seed``."""
    torch.manual_seed(cfg.seed)
    return Denoiser(cfg.model).state_dict()


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# --- 2. learning rate --------------------------------------------------------------------------------

def test_learning_rate_warms_up_linearly_then_follows_the_cosine_to_its_floor():
    """lr 1e-3, 10 warmup steps, 110 steps, floor 0.1: lr(s) = 1e-3 (s + 1) / 10 while warming up,
    then 1e-4 + 9e-4 * (1 + cos(pi * (s - 10) / 100)) / 2, computed here by hand."""
    lr = lambda s: get_lr(s, 1e-3, 10, 110, 0.1)  # noqa: E731
    assert lr(0) == pytest.approx(1e-4)
    assert lr(4) == pytest.approx(5e-4)
    assert lr(9) == pytest.approx(1e-3)  # end of warmup
    assert lr(10) == pytest.approx(1e-3)  # the cosine starts at the peak
    assert lr(60) == pytest.approx(5.5e-4)  # halfway: cos(pi / 2) = 0
    assert lr(109) == pytest.approx(1e-4 + 4.5e-4 * (1 - math.cos(math.pi / 100)))  # the last step
    assert lr(110) == pytest.approx(1e-4) and lr(500) == pytest.approx(1e-4)


def test_each_optimiser_step_uses_the_scheduled_learning_rate(store, tmp_path, monkeypatch):
    """lr 1e-3, warmup 2, 4 steps, floor 0.1: the optimiser steps at 5e-4, 1e-3, 1e-3, 5.5e-4
    (by hand), and the log says so."""
    used = []

    class SpyAdamW(torch.optim.AdamW):
        def step(self, closure=None):
            used.append(self.param_groups[0]["lr"])
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "AdamW", SpyAdamW)
    run(store, tmp_path / "r", "optim.lr=1e-3", "optim.warmup_steps=2", "optim.max_steps=4", "optim.min_lr_frac=0.1",
        "eval.log_every=1")
    expected = [5e-4, 1e-3, 1e-3, 5.5e-4]
    assert used == pytest.approx(expected)
    assert [r["lr"] for r in metrics(tmp_path / "r") if "lr" in r] == pytest.approx(expected)


# --- 3. gradient accumulation ------------------------------------------------------------------------

def sgd_by_hand(cfg, store: Path, steps: int, lr: float) -> dict[str, torch.Tensor]:
    """``steps`` steps of w -= lr * grad(the loss of the step's whole batch of 4: its mean over the
    batch's played notes, each segment with its own draws), from the seeded initial model, over the
    batches training draws (written out here, no Accelerate, no optimiser)."""
    st = CodecStore(store)
    data = SegmentSet(st, "train", synthetic=cfg.data.synthetic)
    torch.manual_seed(cfg.seed)
    expr = build_expression(cfg.model, st.meta["stats"], cfg.task)
    for step in range(steps):
        expr.model.zero_grad()
        batch = data.batch(batch_indices(step, len(data), 4, cfg.seed))
        expr.loss(batch, example_generators(cfg.seed, step, 0, 4))["loss"].backward()
        with torch.no_grad():
            for p in expr.model.parameters():
                if p.grad is not None:
                    p -= lr * p.grad
    return expr.model.state_dict()


def test_two_accumulated_micro_batches_make_the_step_of_one_big_batch(store, tmp_path, monkeypatch):
    """The loss of a batch of 4 is its mean over the batch's played notes; each half's loss is its
    share of that mean (its sum over the whole batch's count), so grad_accum=2 and one batch of 4
    must both reach w - lr * grad, worked out here step by step with the real loss. The optimiser
    is plain SGD (w -= lr g), which sees the gradient's scale where Adam does not."""
    monkeypatch.setattr(torch.optim, "AdamW", lambda params, lr, weight_decay: torch.optim.SGD(params, lr=lr))
    common = ["optim.lr=0.1", "optim.warmup_steps=1", "optim.max_steps=2", "optim.clip_grad=0",
              "optim.weight_decay=0", "eval.log_every=1"]
    cfg = run(store, tmp_path / "big", *common)
    # the halves must hold different numbers of notes, or a mean of the halves' means would pass too
    data = SegmentSet(CodecStore(store), "train", synthetic=cfg.data.synthetic)
    masks = data.batch(batch_indices(0, len(data), 4, cfg.seed))["mask"]
    assert masks[:2].sum() != masks[2:].sum()
    run(store, tmp_path / "acc", *common, "optim.grad_accum=2")
    w0, hand = initial_weights(cfg), sgd_by_hand(cfg, store, 2, 0.1)
    moved = largest_move(hand, w0)
    assert moved > 1e-3  # the steps did something
    for name in ("big", "acc"):
        got = weights(tmp_path / name)
        for k in hand:
            assert torch.allclose(got[k], hand[k], atol=1e-6 * max(1.0, moved)), (name, k)
    losses = lambda d: [r["loss"] for r in metrics(tmp_path / d) if "loss" in r]  # noqa: E731
    assert losses("acc") == pytest.approx(losses("big"), rel=1e-5)


# --- 4. gradient clipping ------------------------------------------------------------------------------

def test_clipping_the_gradient_norm_bounds_adams_first_step(store, tmp_path):
    """Adam's first step moves each weight by lr g / (|g| + 1e-8): about lr for any sizeable
    gradient, but under lr / 100 once the whole gradient's norm is clipped to 1e-10."""
    common = ["optim.lr=1e-2", "optim.warmup_steps=1", "optim.max_steps=1", "optim.weight_decay=0"]
    cfg = run(store, tmp_path / "free", *common, "optim.clip_grad=0")
    run(store, tmp_path / "clip", *common, "optim.clip_grad=1e-10")
    w0 = initial_weights(cfg)
    assert largest_move(weights(tmp_path / "free"), w0) == pytest.approx(1e-2, rel=1e-3)
    assert largest_move(weights(tmp_path / "clip"), w0) < 1e-2 / 100


# --- 5. the best checkpoint ----------------------------------------------------------------------------

def test_best_is_the_step_with_the_lowest_logged_validation_loss(store, tmp_path, monkeypatch):
    """With validation losses 3, 1, 2, 0.5, 4 at steps 1..5, checkpoints/best must hold step 4
    and record 0.5: the minimum of those logged, neither the first nor the last."""
    real = Expression.loss
    script = iter([3.0, 1.0, 2.0, 0.5, 4.0])

    def loss(self, batch, generator, device="cpu", notes=None):
        out = real(self, batch, generator, device, notes)
        return out if torch.is_grad_enabled() else {**out, "loss": torch.tensor(next(script))}  # validation

    monkeypatch.setattr(Expression, "loss", loss)
    run(store, tmp_path / "r", "optim.max_steps=5", "eval.every=1")
    logged = [(r["step"], r["valid_loss"]) for r in metrics(tmp_path / "r") if "valid_loss" in r]
    assert logged == [(1, 3.0), (2, 1.0), (3, 2.0), (4, 0.5), (5, 4.0)]
    best_step, best_loss = min(logged, key=lambda sv: sv[1])
    facts = json.loads((tmp_path / "r" / "checkpoints" / "best" / "config.json").read_text())["training"]
    assert (facts["step"], facts["valid_loss"]) == (best_step, best_loss) == (4, 0.5)


# --- 6. sampling from a source ---------------------------------------------------------------------------

def test_transfer_starts_from_the_source_without_noise():
    """Transfer runs DDIM (eta = 0) from the source at t = strength T - 1. With a denoiser that
    predicts no noise, x0_hat = x_t / sqrt(ab_t) at every step, so the result is the normalised
    source / sqrt(ab_9) for strength 0.01, whatever the generator; from noise it would be noise."""
    batch = toy_batch(3)
    batch.update(source_p=toy_batch(4)["p_codec"], source_c=batch["c_codec"])
    norm = CodecNormalizer(STATS, 5.0)
    expr = Expression(FixedNet(), norm, Schedule.linear(T), TaskConfig(target="transfer"))
    outs = [expr.sample(batch, SamplingOptions(steps=5, strength=0.01), generator=torch.Generator().manual_seed(s)) for s in (0, 1)]
    want = normalised(batch["source_p"]) / math.sqrt(alpha_bar(9))
    for out in outs:
        assert torch.allclose(normalised(out), want, atol=1e-3)


@pytest.mark.parametrize("sampler", ["dpm++", "ddim", "ddpm"])
def test_a_variation_with_the_fewest_noise_steps_stays_at_its_source(sampler):
    """``x_start`` with strength 1/T is noised to t = 0 only: x = sqrt(ab_0) x0 + sqrt(1 - ab_0) n,
    and a denoiser that sees no noise returns x / sqrt(ab_0) = x0 + 0.01 n; from pure noise the
    result would be about n, a distance near 1 in the normalised space."""
    batch = toy_batch(5)
    source = toy_batch(6)["p_codec"]
    expr = Expression(FixedNet(), CodecNormalizer(STATS, 5.0), Schedule.linear(T), TaskConfig())
    out = expr.sample(batch, SamplingOptions(sampler=sampler, steps=5, strength=1 / T), x_start=source,
                      generator=torch.Generator().manual_seed(0))
    gap = (normalised(out) - normalised(source)).abs()
    assert gap.mean() < 0.03 and gap.max() < 0.1


# --- 7. metrics -------------------------------------------------------------------------------------------

def test_kl_divergence_is_kl_of_p_from_q_with_add_one_histograms():
    """Two bins over [0, 1]: P = [0, 0, 0, 0, 1] counts (4, 1), Q = [0, 1, 1] counts (1, 2); add-one:
    P = (5/7, 2/7), Q = (2/5, 3/5). KL(P||Q) = 5/7 ln(25/14) + 2/7 ln(10/21) and the other way
    2/5 ln(14/25) + 3/5 ln(21/10): the two differ."""
    p, q = np.array([0.0, 0.0, 0.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0])
    pq = 5 / 7 * math.log(25 / 14) + 2 / 7 * math.log(10 / 21)
    qp = 2 / 5 * math.log(14 / 25) + 3 / 5 * math.log(21 / 10)
    assert kl_divergence(p, q, bins=2) == pytest.approx(pq, rel=1e-9)
    assert kl_divergence(q, p, bins=2) == pytest.approx(qp, rel=1e-9)
    assert abs(pq - qp) > 0.01


def test_onset_tempo_is_60_over_the_mean_beat_period_winsorised_at_4x_the_median():
    """Onsets with beat periods 0.5 (a chord of 0.4 and 0.6), 0.5, 0.5, 5, 0.05 s/beat are 120, 120,
    120, 12 and 1200 BPM; the median is 120, so 12 becomes 30 and 1200 becomes 480. An unplayed
    note does not count, and the last onset has no tempo (its beat period is a codec convention)."""
    onset = np.array([0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 4.0, 5.0])
    bp = np.array([0.4, 0.6, 0.5, 0.5, 5.0, 0.05, 9.0, 0.01])
    vel = np.array([50, 70, 64, 64, 64, 100, 10, 30]) / 127
    p = np.zeros((8, 5))
    p[:, 0], p[:, 1] = bp, vel
    mask = np.array([1, 1, 1, 1, 1, 1, 0, 1], dtype=bool)
    tempo, velocity = onset_curves(onset, Performance(p, mask))
    assert tempo[:5] == pytest.approx([120, 120, 120, 30, 480]) and np.isnan(tempo[5])
    assert velocity == pytest.approx([60, 64, 64, 64, 100, 30])


def test_pearson_r_of_a_pair_worked_by_hand():
    """a = 1..4, b = 2, 4, 5, 9: deviations (-1.5, -0.5, 0.5, 1.5) and (-3, -1, 0, 4), products 11,
    squares 5 and 26: r = 11 / sqrt(130)."""
    assert pearson(np.array([1.0, 2, 3, 4]), np.array([2.0, 4, 5, 9])) == pytest.approx(11 / math.sqrt(130))


def test_compare_scores_the_log_tempo_curves_and_kl_of_human_from_rendered():
    """Log BPM per onset ln 100 + 0.1 (1, 2, 3, 4) rendered and ln 100 + 0.1 (2, 4, 5, 9) human
    (a fifth, last onset carries no tempo): tempo_r = 11 / sqrt(130) (as above), tempo_dev =
    0.1 mean(1, 2, 2, 5) = 0.25. Velocities 60, 60, 60, 100, 60 rendered and 60, 81, 100, 100, 60
    human, over [60, 100] in 32 bins, fall in bins {0: 4, 31: 1} and {0: 2, 16: 1, 31: 2};
    velocity_kl is KL(human || rendered) of those add-one histograms."""
    onset = np.array([0.0, 0.0, 1, 2, 3, 4])  # a chord, then single notes

    def perf(tenths, midi_velocity):
        bp = 60 / np.exp(math.log(100) + 0.1 * np.array(tenths))
        p = np.zeros((6, 5))
        p[:, 0] = [0.9 * bp[0], 1.1 * bp[0], *bp[1:], 7.0]  # the chord's mean beat period is the onset's
        p[:, 1] = np.array([midi_velocity[0], *midi_velocity]) / 127
        return Performance(p, np.ones(6, dtype=bool))

    out = compare(onset, perf([1, 2, 3, 4], [60, 60, 60, 100, 60]), perf([2, 4, 5, 9], [60, 81, 100, 100, 60]))
    assert out["tempo_r"] == pytest.approx(11 / math.sqrt(130), rel=1e-6)
    assert out["tempo_dev"] == pytest.approx(0.25)
    human = (np.bincount([0, 16, 31, 31, 0], minlength=32) + 1) / (5 + 32)
    rendered = (np.bincount([0, 0, 0, 31, 0], minlength=32) + 1) / (5 + 32)
    assert out["velocity_kl"] == pytest.approx(float(np.sum(human * np.log(human / rendered))), rel=1e-9)
    assert out["velocity_kl"] != pytest.approx(float(np.sum(rendered * np.log(rendered / human))), rel=1e-3)
