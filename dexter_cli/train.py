"""The training loop (HuggingFace Accelerate): one CPU, one GPU, or many GPUs/nodes.

Readable by design (nanoGPT-style): a step-counting loop, ``get_lr(step)`` as
a pure function, evaluation under ``torch.no_grad()``, progress only on the
main process. Every random draw derives from (seed, step, rank) and the data
order from (seed, epoch), so a resumed run continues exactly as if it had not
stopped.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .checkpoint import export_inference, load_inference, load_training_state, save_training_state
from .config import TrainConfig, save_config
from .data.dataset import PairSet, SegmentSet
from .data.store import CodecStore
from .engine import Expression, build_expression
from .errors import DexterError
from .evaluation.segments import segment_curve_scores
from .model import ModelConfig
from .prior import CONTEXT_WIDTHS

Progress = Callable[[int, int, dict], None]


class TrainingInterrupted(DexterError):
    """SIGTERM/SIGINT arrived: a resumable checkpoint was saved."""

    def __init__(self, step: int, signum: int):
        self.step, self.signum = step, signum
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}; "
                         f"state saved, continue with --resume")


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    best_valid: float
    nonfinite_steps: int
    seconds: float


def ema_decay_at(step: int, decay: float, warmup: bool) -> float:
    """The EMA decay for update ``step`` (0-based): ``decay``, or with warmup
    ``min(decay, (1 + step) / (10 + step))``, so that short runs do not keep the initial weights."""
    return min(decay, (1 + step) / (10 + step)) if warmup else decay


def get_lr(step: int, lr: float, warmup: int, max_steps: int, min_frac: float) -> float:
    """Linear warmup, then cosine decay to ``min_frac * lr``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, max_steps - warmup)
    return lr * (min_frac + (1 - min_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def batch_indices(step: int, n: int, batch_size: int, seed: int) -> np.ndarray:
    """Global batch of item positions for ``step``: epochs of a seeded permutation."""
    if n >= batch_size:
        per_epoch = n // batch_size
        epoch, pos = divmod(step, per_epoch)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        return perm[pos * batch_size:(pos + 1) * batch_size]
    return np.random.default_rng([seed, step]).integers(0, n, size=batch_size)


def step_generator(seed: int, step: int, rank: int, offset: int = 0) -> torch.Generator:
    """The RNG of one step on one process (noise, t, condition dropout)."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, step, rank, offset]).generate_state(1)[0]))


def _datasets(cfg: TrainConfig, store: CodecStore):
    if cfg.task.target == "transfer":
        train, valid = PairSet(store, "train"), PairSet(store, "valid")
    else:
        train = SegmentSet(store, "train", synthetic=cfg.data.synthetic)
        valid = SegmentSet(store, "valid", synthetic=False)
    if len(train) == 0:
        raise DexterError(f"the train split of {store.path} is empty" +
                          (" of pairs (run `dexter pair`)" if cfg.task.target == "transfer" else ""))
    return train, valid


def check_finite_store(store: CodecStore, chunk: int = 4096) -> None:
    """Refuse a store whose codec arrays hold NaN or infinite values, naming the file and the count."""
    for name in ("p_codec", "s_codec", "c_codec"):
        arr = getattr(store, name)
        bad = sum(int((~np.isfinite(np.asarray(arr[i:i + chunk]))).sum()) for i in range(0, len(arr), chunk))
        if bad:
            raise DexterError(f"{store.path / (name + '.npy')} holds {bad} non-finite values: rebuild the store "
                              "with dexter codec")


def model_stats(cfg: TrainConfig, store: CodecStore) -> dict:
    """The store's normalisation statistics, with the linear prior's weights when the task has one
    (fitted on the real train segments, the same on every process and at every resume)."""
    if cfg.task.prior == "none":
        return store.meta["stats"]
    from .prior import fit_linear_prior

    context = CONTEXT_WIDTHS if cfg.task.prior in ("context", "mlp") else ()
    weights, _ = fit_linear_prior(store, alpha=cfg.task.prior_alpha, context=context,
                                  within=cfg.task.prior_fit == "within")
    return {**store.meta["stats"], "prior_weights": weights.tolist(), "prior_context": list(context)}


def _check_same(saved: dict, cfg: TrainConfig, where: str, prediction: bool = False) -> None:
    """Refuse to continue ``saved`` (a run's config) under another model, target or prior mean mu(s);
    a fine-tune also keeps the parameterisation (``prediction``, ``timesteps``)."""
    if ModelConfig.from_dict(saved["model"]).to_dict() != cfg.model.to_dict():  # (settings added since: defaults)
        raise DexterError(f"{where} has another model config: {saved['model']}")
    keys = [("target", None), ("prior", "none"), ("prior_alpha", 1.0), ("prior_fit", "pooled")]
    for key, default in keys + ([("prediction", "eps"), ("timesteps", 1000)] if prediction else []):
        if saved["task"].get(key, default) != getattr(cfg.task, key):
            raise DexterError(f"{where} was trained with task.{key} = "
                              f"{saved['task'].get(key, default)!r}, not {getattr(cfg.task, key)!r}")


def load_init(cfg: TrainConfig, store: CodecStore) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """The weights, normalisation statistics (with the prior's weights) and facts of ``cfg.init_from``,
    checked against the config and the store: a fine-tune diffuses around the same mu(s) as its start."""
    state, config = load_inference(Path(cfg.init_from))
    _check_same(config, cfg, f"init_from {cfg.init_from}", prediction=True)
    codec, meta = config["codec"], store.meta
    for key, ours in (("version", meta["codec_version"]), ("p_codec_names", meta["p_codec_names"]),
                      ("s_codec_names", meta["s_codec_names"]), ("c_codec_names", meta["c_codec_names"])):
        if codec[key] != ours:
            raise DexterError(f"init_from {cfg.init_from} has codec {key} {codec[key]!r}, the store {ours!r}")
    training = config.get("training", {})
    facts = {"init_from": str(cfg.init_from), "init_name": training.get("name", ""),
             "init_step": training.get("step", 0)}
    return state, codec["stats"], facts


def checkpoint_config(cfg: TrainConfig, store: CodecStore, step: int, stats: dict | None = None, **facts) -> dict:
    """The small config stored beside the weights: all inference needs, and training facts.
    ``stats``: the normalisation statistics the model was trained with (default: the store's)."""
    meta = store.meta
    return {"model": cfg.model.to_dict(),
            "task": cfg.task.__dict__.copy(),
            "codec": {"version": meta["codec_version"], "max_note_seq": meta["max_note_seq"],
                      "p_codec_names": meta["p_codec_names"], "s_codec_names": meta["s_codec_names"],
                      "c_codec_names": meta["c_codec_names"], "stats": stats or meta["stats"]},
            "training": {"step": step, "data": str(store.path), "counts": meta["counts"],
                         "pieces_train": len(meta.get("pieces", {}).get("train", [])), **facts}}


def train(cfg: TrainConfig, *, resume: bool = False, progress: Progress | None = None) -> TrainResult:
    """Train (or resume training) as configured.

    Parameters
    ----------
    cfg : TrainConfig
    resume : bool
        Continue from ``<run_dir>/state``.
    progress : callable, optional
        ``progress(step, max_steps, metrics)`` on the main process.

    Returns
    -------
    TrainResult

    Raises
    ------
    DexterError
        Bad store, config or checkpoint (before any work), too many non-finite losses.
    TrainingInterrupted
        After saving, when SIGTERM/SIGINT arrived.
    """
    from accelerate import Accelerator

    t_start = time.perf_counter()
    store = CodecStore(cfg.data.path)
    check_finite_store(store)
    meta = store.meta
    cfg.model.p_dim, cfg.model.s_dim, cfg.model.c_dim = (len(meta["p_codec_names"]), len(meta["s_codec_names"]),
                                                          len(meta["c_codec_names"]))
    # the prior network (task.prior: mlp only) reads the context ridge's regressors
    cfg.model.prior_in = cfg.model.s_dim * (1 + len(CONTEXT_WIDTHS)) + 1 if cfg.task.prior == "mlp" else 0
    train_set, valid_set = _datasets(cfg, store)

    run_dir = Path(cfg.run_dir)
    from .fileio import check_writable

    check_writable(run_dir / "config.yaml", "run folder")  # before the model is built, not at the first save
    state_dir = run_dir / "state"
    state = None
    if resume:
        state = load_training_state(state_dir)
        _check_same(state["config"], cfg, f"checkpoint in {state_dir}")
        if state["config"].get("init_from", "") != cfg.init_from:  # its mu(s) and normalisation came from there
            raise DexterError(f"the run in {run_dir} was started with init_from = "
                              f"{state['config'].get('init_from', '')!r}, not {cfg.init_from!r}: resume it with the same")
    elif state_dir.exists():
        raise DexterError(f"{run_dir} already holds a training run: pass --resume, or choose another --run-dir")

    init_state, init_facts = None, {}
    if state is not None and "stats" in state:
        # a resume keeps the normalisation and mu(s) it was trained with, even if init_from or the store changed since
        stats, init_facts = state["stats"], state.get("init_facts", {})
    elif cfg.init_from:
        init_state, stats, init_facts = load_init(cfg, store)
    else:
        stats = model_stats(cfg, store)

    def ckpt_config(step: int, **facts) -> dict:  # with the segments this run saw (a store may be a subset)
        return checkpoint_config(cfg, store, step, stats, train_segments=len(train_set), **init_facts, **facts)

    cuda = torch.cuda.is_available()
    accelerator = Accelerator(mixed_precision=cfg.optim.mixed_precision if cuda else "no")
    device, rank, world = accelerator.device, accelerator.process_index, accelerator.num_processes
    if cfg.optim.batch_size % (world * cfg.optim.grad_accum):
        raise DexterError(f"optim.batch_size {cfg.optim.batch_size} must divide by processes x grad_accum "
                          f"({world} x {cfg.optim.grad_accum})")

    torch.manual_seed(cfg.seed)
    expr = build_expression(cfg.model, stats, cfg.task.__dict__)
    model = expr.model
    prior_fit: dict = {}
    if state is not None:
        model.load_state_dict(state["model"])
    elif init_state is not None:  # fine-tune: the EMA starts from these weights too
        model.load_state_dict(init_state)
    elif model.prior_net is not None:  # task.prior: mlp: fitted once, before the diffusion trains; resumes load it
        from .prior import fit_prior_net

        prior_fit = fit_prior_net(model.prior_net, store, expr.norm, seed=cfg.seed)
    ema = {k: v.detach().clone().float() for k, v in model.state_dict().items()}
    if state is not None:
        ema = {k: v.float() for k, v in state["ema"].items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.optim.lr,
                                  weight_decay=cfg.optim.weight_decay)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
    model, optimizer = accelerator.prepare(model, optimizer)
    expr.model = model
    ema = {k: v.to(device) for k, v in ema.items()}
    trained = {k for k, p in accelerator.unwrap_model(model).named_parameters() if p.requires_grad}
    eval_model = copy.deepcopy(accelerator.unwrap_model(model)).eval()
    eval_expr = Expression(eval_model, expr.norm, expr.schedule, target=expr.target, prediction=expr.prediction,
                           cond_drop=0.0, cond_drop_all=0.0, recon_weight=expr.recon_weight)

    step = int(state["step"]) if state is not None else 0
    best = float(state.get("best_valid", float("inf"))) if state is not None else float("inf")
    nonfinite_total = int(state.get("nonfinite_steps", 0)) if state is not None else 0
    good_steps = int(state.get("good_steps", step - nonfinite_total)) if state is not None else 0
    seconds_before = float(state.get("train_seconds", 0.0)) if state is not None else 0.0
    elapsed = lambda: seconds_before + time.perf_counter() - t_start  # noqa: E731  (over resumes)
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
    metrics_path = run_dir / "metrics.jsonl"

    stop = {"signum": 0}
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def on_signal(signum, frame):  # noqa: ARG001
        stop["signum"] = signum

    for s in previous:
        signal.signal(s, on_signal)

    def log(record: dict) -> None:
        if accelerator.is_main_process:
            with open(metrics_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")

    if prior_fit:
        log({"step": step, **prior_fit})

    def save_state() -> None:
        if accelerator.is_main_process:
            save_training_state(state_dir, model=accelerator.unwrap_model(model).state_dict(), ema=ema,
                                optimizer=optimizer.state_dict(), step=step, config=cfg.to_dict(),
                                extra={"best_valid": best, "nonfinite_steps": nonfinite_total,
                                       "good_steps": good_steps, "train_seconds": elapsed(), "stats": stats,
                                       "init_facts": init_facts})
            if good_steps:  # a model that no step has trained is not exported
                export_inference(run_dir / "checkpoints" / "last", ema,
                                 ckpt_config(step, train_seconds=elapsed()))
        accelerator.wait_for_everyone()

    def evaluate() -> dict:
        eval_model.load_state_dict(ema)
        out: dict = {}
        if len(valid_set) == 0:
            return out
        losses = []
        with torch.no_grad():
            for b in range(cfg.eval.valid_batches):
                items = np.arange(b * cfg.optim.batch_size, (b + 1) * cfg.optim.batch_size) % len(valid_set)
                if b * cfg.optim.batch_size >= len(valid_set) and b > 0:
                    break
                gen = step_generator(cfg.seed, b, 0, offset=1)  # the same noise at every evaluation
                losses.append(eval_expr.loss(valid_set.batch(items), gen, device)["loss"].item())
        out["valid_loss"] = float(np.mean(losses))
        k = min(cfg.eval.sample_segments, len(valid_set))
        if k:
            batch = valid_set.batch(np.arange(k))
            # gen_noise: controls left free, so the curves come from the score, not the label's own
            # descriptors; transfer: conditioned on c_target - c_source, as in use
            free = torch.ones(k, batch["c_codec"].shape[-1], dtype=torch.bool)
            pred = eval_expr.sample({kk: v.to(device) for kk, v in batch.items()}, sampler=cfg.eval.sampler,
                                    steps=cfg.eval.steps, generator=step_generator(cfg.seed, 0, 0, offset=2),
                                    drop_c=free if cfg.task.target == "gen_noise" else None)
            scores = segment_curve_scores(pred.cpu().numpy(), batch["p_codec"].numpy(), batch["mask"].numpy())
            out.update({f"valid_{k2}": v for k2, v in scores.items()})
        return out

    n_train = len(train_set)
    per_rank = cfg.optim.batch_size // world
    micro = per_rank // cfg.optim.grad_accum
    consecutive_bad = 0
    t_last, steps_since = time.perf_counter(), 0
    model.train()
    try:
        while step < cfg.optim.max_steps:
            lr = get_lr(step, cfg.optim.lr, cfg.optim.warmup_steps, cfg.optim.max_steps, cfg.optim.min_lr_frac)
            for group in optimizer.param_groups:
                group["lr"] = lr
            idx = batch_indices(step, n_train, cfg.optim.batch_size, cfg.seed)[rank * per_rank:(rank + 1) * per_rank]
            gen = step_generator(cfg.seed, step, rank)
            total, parts, bad = 0.0, [], False
            for m in range(cfg.optim.grad_accum):
                batch = train_set.batch(idx[m * micro:(m + 1) * micro])
                with accelerator.autocast():
                    out = expr.loss(batch, gen, device)
                parts.append(out)
                finite = torch.tensor(float(torch.isfinite(out["loss"]).item()), device=device)
                if accelerator.reduce(finite, "min").item() < 1:
                    bad = True  # non-finite on some process: every process skips this step
                    break
                ctx = accelerator.no_sync(model) if m + 1 < cfg.optim.grad_accum else contextlib.nullcontext()
                with ctx:
                    accelerator.backward(out["loss"] / cfg.optim.grad_accum)
                total += out["loss"].item() / cfg.optim.grad_accum
            if bad:
                optimizer.zero_grad(set_to_none=True)
                nonfinite_total += 1
                consecutive_bad += 1
                log({"step": step, "nonfinite_loss": True})
                if consecutive_bad >= cfg.optim.max_nonfinite:
                    raise DexterError(f"{consecutive_bad} non-finite losses in a row at step {step}: "
                                      "lower optim.lr or check the data")
                step += 1
                continue
            consecutive_bad = 0
            good_steps += 1
            if cfg.optim.clip_grad > 0:
                accelerator.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():  # EMA of the trained weights (frozen ones, the prior network's, are copied)
                d = ema_decay_at(step, cfg.optim.ema_decay, cfg.optim.ema_warmup)
                for k, v in accelerator.unwrap_model(model).state_dict().items():
                    if k in trained:
                        ema[k].mul_(d).add_(v.detach().float(), alpha=1 - d)
                    else:
                        ema[k].copy_(v)
            step += 1
            steps_since += 1
            if step % cfg.eval.log_every == 0 or step == cfg.optim.max_steps:
                loss_t = accelerator.reduce(torch.tensor(total, device=device), "mean").item()
                now = time.perf_counter()
                rate = steps_since / max(now - t_last, 1e-9)
                t_last, steps_since = now, 0
                record = {"step": step, "loss": loss_t, "lr": lr, "it_s": rate,
                          "segments_s": rate * cfg.optim.batch_size,
                          **{k: v.item() for k, v in parts[-1].items() if k in ("diffusion", "recon")}}
                log(record)
                if progress and accelerator.is_main_process:
                    progress(step, cfg.optim.max_steps, record)
            if step % cfg.eval.every == 0 or step == cfg.optim.max_steps:
                if accelerator.is_main_process:
                    ev = evaluate()
                    log({"step": step, **ev})
                    if good_steps and ev.get("valid_loss", float("inf")) < best:
                        best = ev["valid_loss"]
                        export_inference(run_dir / "checkpoints" / "best", ema,
                                         ckpt_config(step, valid_loss=best, train_seconds=elapsed()))
                    if progress:
                        progress(step, cfg.optim.max_steps, {"step": step, **ev})
                model.train()
                accelerator.wait_for_everyone()
            if step % cfg.eval.checkpoint_every == 0:
                save_state()
            if stop["signum"]:
                save_state()
                raise TrainingInterrupted(step, stop["signum"])
        save_state()
        if not good_steps:
            raise DexterError(f"no training step had a finite loss ({nonfinite_total} skipped): no checkpoint was "
                              "exported; check the data and lower optim.lr")
        if accelerator.is_main_process and not (run_dir / "checkpoints" / "best").exists():
            export_inference(run_dir / "checkpoints" / "best", ema,
                             ckpt_config(step, train_seconds=elapsed()))
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return TrainResult(run_dir, step, best, nonfinite_total, time.perf_counter() - t_start)

