"""The training loop: resume, transfer, bad input, non-finite losses, EMA, fine-tuning."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dexter_cli.checkpoint import export_inference, load_inference
from dexter_cli.config import TaskConfig, load_config
from dexter_cli.data import CodecStore, CodecOptions, run_codec
from dexter_cli.engine import load_expression
from dexter_cli.errors import DexterError
from dexter_cli.prior import Prior
from dexter_cli.train import TrainingInterrupted, train

from .conftest import TINY, cfg_for, sigkill_when
from .synth import make_asap_tree


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
    assert (tmp_path / "part" / "interrupted").read_text().startswith("step 6")  # for a scheduler to requeue
    train(cfg_for(store_path, tmp_path / "part"), resume=True)
    assert not (tmp_path / "part" / "interrupted").exists()
    a, _ = load_inference(tmp_path / "full" / "checkpoints" / "last")
    b, _ = load_inference(tmp_path / "part" / "checkpoints" / "last")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    from safetensors.torch import load_file
    ma, mb = load_file(str(tmp_path / "full/state/model.safetensors")), load_file(str(tmp_path / "part/state/model.safetensors"))
    assert all(torch.equal(ma[k], mb[k]) for k in ma)
    # the best so far survives the interruption: the same step is the best of both runs
    best_a, best_b = (load_inference(tmp_path / run / "checkpoints" / "best")[1] for run in ("full", "part"))
    assert best_a["training"]["step"] == best_b["training"]["step"]
    assert best_a["training"]["valid_loss"] == best_b["training"]["valid_loss"]


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
    run_codec(tmp_path / "s", CodecOptions(datasets_root=None, roots={"asap": root}, max_note_seq=16, fractions=(0.0, 0.0, 1.0)))
    with pytest.raises(DexterError, match="train split .* is empty"):
        train(cfg_for(tmp_path / "s", tmp_path / "r"))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_ranks_train_to_the_weights_of_one_process(store_path, tmp_path):
    """Two CPU processes (gloo, started by torch.distributed.run) with 2 segments each reach the
    weights of one process with the batch of 4, within float tolerance: every segment draws the
    same noise wherever it is, each rank's loss is its share of the batch's mean, and DDP averages."""
    common = [*TINY, f"data.path={store_path}", "optim.batch_size=4", "optim.max_steps=4", "optim.warmup_steps=1",
              "optim.lr=1e-2", "eval.checkpoint_every=4",
              "eval.every=4", "eval.log_every=2", "eval.steps=2", "eval.sample_segments=1", "eval.valid_batches=1"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "dexter_cli", "train", "-q", *common, f"run_dir={tmp_path / 'ddp'}"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    train(load_config(None, [*common, f"run_dir={tmp_path / 'one'}"]))
    recs = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if "loss" in r] == [2, 4]  # one writer: the main process
    assert {r["world_size"] for r in recs if "loss" in r} == {2}
    from safetensors.torch import load_file

    config, config_one = (load_inference(tmp_path / d / "checkpoints" / "last")[1] for d in ("ddp", "one"))
    assert config["training"]["world_size"] == 2 and config_one["training"]["world_size"] == 1
    two, one = (load_file(str(tmp_path / d / "state" / "model.safetensors")) for d in ("ddp", "one"))  # the raw weights
    moved = max(float((one[k].float() - w).abs().max()) for k, w in _initial(tmp_path / "one").items())
    assert moved > 1e-3  # the steps did something
    for k in one:
        assert torch.allclose(two[k], one[k], atol=1e-5), k
    one_loss = [r["loss"] for r in map(json.loads, (tmp_path / "one" / "metrics.jsonl").read_text().splitlines())
                if "loss" in r]
    assert [r["loss"] for r in recs if "loss" in r] == pytest.approx(one_loss, rel=1e-4)
    # the gradient itself, not only its direction (AdamW would hide a scale): the same norm
    one_norm = [r["grad_norm"] for r in map(json.loads, (tmp_path / "one" / "metrics.jsonl").read_text().splitlines())
                if "grad_norm" in r]
    assert [r["grad_norm"] for r in recs if "grad_norm" in r] == pytest.approx(one_norm, rel=1e-4)


def _initial(run_dir: Path) -> dict[str, torch.Tensor]:
    """The seeded initial weights of a run's model."""
    from dexter_cli.config import load_config as _load
    from dexter_cli.engine import build_expression

    cfg = _load(run_dir / "config.yaml", [])
    torch.manual_seed(cfg.seed)
    st = CodecStore(cfg.data.path)
    return {k: v.float() for k, v in build_expression(cfg.model, st.meta["stats"], cfg.task).model.state_dict().items()}


def test_nonfinite_losses_are_skipped_then_stop_the_run(store_path, tmp_path, monkeypatch):
    from dexter_cli import engine

    real = engine.Expression.loss
    calls = {"n": 0}

    def flaky(self, batch, generator, device="cpu", notes=None):
        out = real(self, batch, generator, device, notes)
        calls["n"] += 1
        if calls["n"] in (3, 4):  # two bad steps, then healthy again
            out = {**out, "loss": out["loss"] * float("nan")}
        return out

    monkeypatch.setattr(engine.Expression, "loss", flaky)
    res = train(cfg_for(store_path, tmp_path / "a", "optim.max_steps=8", "eval.every=100"))
    assert res.nonfinite_steps == 2 and res.step == 8
    from safetensors.torch import load_file
    assert all(torch.isfinite(v).all() for v in load_file(str(tmp_path / "a/state/model.safetensors")).values())

    monkeypatch.setattr(engine.Expression, "loss", lambda self, b, g, device="cpu", notes=None: {
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
    cfg = cfg_for(store_path, tmp_path / "base", "task.prior=context")
    train(cfg)
    weights, config = load_inference(tmp_path / "base" / "checkpoints" / "last")
    # a start whose normalisation differs from what the store would give: the fine-tune must keep it
    for key in ("s_std", "p_log_std"):  # what the normaliser reads
        config["codec"]["stats"][key] = [2.0 * v for v in config["codec"]["stats"][key]]
    export_inference(tmp_path / "start", weights, config)

    # lr 0: one update moves nothing, so the export is the start's weights, not a fresh initialisation
    ft = cfg_for(store_path, tmp_path / "ft", "task.prior=context", f"init_from={tmp_path / 'start'}",
                 "optim.max_steps=1", "optim.lr=0", "optim.ema_warmup=true")
    train(ft)
    got, got_config = load_inference(tmp_path / "ft" / "checkpoints" / "last")
    assert set(got) == set(weights) and all(torch.equal(got[k], weights[k]) for k in weights)
    assert got_config["codec"]["stats"] == config["codec"]["stats"]
    assert got_config["training"]["init_from"] == str(tmp_path / "start") and got_config["training"]["init_step"] == 12

    # and it learns from there
    more = cfg_for(store_path, tmp_path / "ft2", "task.prior=context", f"init_from={tmp_path / 'start'}")
    train(more)
    moved, _ = load_inference(tmp_path / "ft2" / "checkpoints" / "last")
    assert any(not torch.equal(moved[k], weights[k]) for k in weights)
    # a resume must not refit the normalisation and prior from the store: it needs the same start
    with pytest.raises(DexterError, match="started with init_from"):
        train(cfg_for(store_path, tmp_path / "ft2", "task.prior=context"), resume=True)
    # and it keeps the normalisation it was trained with even when the start has changed since
    changed = json.loads(json.dumps(config))
    for key in ("s_std", "p_log_std"):
        changed["codec"]["stats"][key] = [1.5 * v for v in changed["codec"]["stats"][key]]
    export_inference(tmp_path / "start", weights, changed)
    train(cfg_for(store_path, tmp_path / "ft2", "task.prior=context", f"init_from={tmp_path / 'start'}",
                  "optim.max_steps=14"), resume=True)
    _, resumed = load_inference(tmp_path / "ft2" / "checkpoints" / "last")
    assert resumed["training"]["step"] == 14 and resumed["training"]["init_step"] == 12
    assert resumed["codec"]["stats"] == config["codec"]["stats"]

    # another prior is fitted anew, in the start's normalisation
    train(cfg_for(store_path, tmp_path / "lv", "task.prior=level", "task.prior_level_alpha=50",
                  f"init_from={tmp_path / 'start'}", "optim.max_steps=1"))
    lv, lv_config = load_expression(tmp_path / "lv" / "checkpoints" / "last")
    want = Prior.fit(CodecStore(store_path), alpha=TaskConfig().prior_alpha, level_alpha=50, stats=changed["codec"]["stats"])
    own = Prior.fit(CodecStore(store_path), alpha=TaskConfig().prior_alpha, level_alpha=50)
    assert not torch.allclose(want.level, own.level, atol=1e-3)  # the normalisation matters
    assert torch.allclose(lv.prior.level, want.level, atol=1e-5) and torch.allclose(lv.prior.weights, want.weights, atol=1e-5)
    assert lv_config["training"]["prior_refitted"] and lv_config["codec"]["stats"] == changed["codec"]["stats"]
    for bad, why in ((["model.residual_channels=8"], "another model config"),
                     (["task.prior=context", "task.prediction=x0"], "task.prediction"),
                     (["task.prior=context", "task.prior_alpha=5"], "task.prior_alpha")):  # the same kind, refitted: no
        with pytest.raises(DexterError, match=why):
            train(cfg_for(store_path, tmp_path / f"bad{len(bad)}{why[-3:]}", *bad,
                          f"init_from={tmp_path / 'start'}"))
    with pytest.raises(DexterError, match="no checkpoint"):
        train(cfg_for(store_path, tmp_path / "missing", f"init_from={tmp_path / 'nowhere'}"))
