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
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..checkpoint import export_inference, load_training_state, save_training_state
from ..config import TrainConfig, save_config
from ..data.store import CodecStore
from ..engine import Expression, _prior_in_stats, build_expression
from ..errors import DexterError
from ..fileio import write_text
from ..evaluation.segments import segment_curve_scores
from ..prior import Prior
from ..sampling import SamplingOptions
from .schedule import batch_indices, ema_decay_at, example_generators, get_lr, step_generator
from .setup import _check_same, _datasets, check_finite_store, checkpoint_config, fit_prior, load_init

Progress = Callable[[int, int, dict], None]
INTERRUPTED = "interrupted"  # written in the run folder when a signal stopped the run, removed when it restarts


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


class Run:
    """One training run: :meth:`setup` builds it (fresh, resumed or fine-tuned), :meth:`step` takes one
    optimiser step, :meth:`evaluate` scores the EMA weights on the valid split, :meth:`save` writes
    the resumable state and the inference checkpoint."""

    def __init__(self, cfg: TrainConfig, store: CodecStore, accelerator, t_start: float):
        self.cfg, self.store, self.acc, self.t_start = cfg, store, accelerator, t_start
        self.run_dir = Path(cfg.run_dir)
        self.state_dir = self.run_dir / "state"
        self.train_set, self.valid_set = _datasets(cfg, store)
        # counters a resume restores
        self.step, self.best, self.nonfinite, self.good_steps, self.seconds_before = 0, float("inf"), 0, 0, 0.0
        self.consecutive_bad = 0

    # setup -------------------------------------------------------------------
    @classmethod
    def setup(cls, cfg: TrainConfig, resume: bool) -> "Run":
        """Check the store, the run folder and any state to resume before the model is built."""
        from accelerate import Accelerator

        from ..fileio import check_writable

        t_start = time.perf_counter()
        store = CodecStore(cfg.data.path)
        check_finite_store(store)
        meta = store.meta
        cfg.model.p_dim, cfg.model.s_dim, cfg.model.c_dim = (len(meta["p_codec_names"]), len(meta["s_codec_names"]),
                                                              len(meta["c_codec_names"]))
        check_writable(Path(cfg.run_dir) / "config.yaml", "run folder")  # before the model, not at the first save
        cuda = torch.cuda.is_available()
        # without an accelerator, cpu=True lets processes started by torch.distributed.run or accelerate
        # launch meet over gloo
        cpu = not (cuda or torch.backends.mps.is_available())
        run = cls(cfg, store, Accelerator(mixed_precision=cfg.optim.mixed_precision if cuda else "no", cpu=cpu), t_start)
        state = run._resume_state() if resume else None
        if not resume and run.state_dir.exists():
            raise DexterError(f"{run.run_dir} already holds a training run: pass --resume, or choose another --run-dir")
        if run.acc.is_main_process:
            (run.run_dir / INTERRUPTED).unlink(missing_ok=True)
        world = run.acc.num_processes
        if cfg.optim.batch_size % (world * cfg.optim.grad_accum):
            raise DexterError(f"optim.batch_size {cfg.optim.batch_size} must divide by processes x grad_accum "
                              f"({world} x {cfg.optim.grad_accum})")
        run._build(state)
        return run

    def _resume_state(self) -> dict:
        state = load_training_state(self.state_dir)
        _check_same(state["config"], self.cfg, f"checkpoint in {self.state_dir}")
        if state["config"].get("init_from", "") != self.cfg.init_from:  # its mu(s) and normalisation came from there
            raise DexterError(f"the run in {self.run_dir} was started with init_from = "
                              f"{state['config'].get('init_from', '')!r}, not {self.cfg.init_from!r}: resume it with "
                              "the same")
        return state

    def _build(self, state: dict | None) -> None:
        """The model, its normalisation and prior, the optimiser and the EMA, from ``state`` if resumed."""
        cfg = self.cfg
        init_state, self.init_facts = None, {}
        if state is not None and "stats" in state:
            # a resume keeps the normalisation and mu(s) it was trained with, even if init_from or the store changed
            self.stats, self.init_facts = state["stats"], state.get("init_facts", {})
            self.prior = Prior.from_state_dict(state.get("prior", {})) or _prior_in_stats(self.stats)
        elif cfg.init_from:
            init_state, self.stats, self.prior, self.init_facts = load_init(cfg, self.store)
        else:
            self.stats, self.prior = self.store.meta["stats"], fit_prior(cfg, self.store)
        torch.manual_seed(cfg.seed)
        self.expr = build_expression(cfg.model, self.stats, cfg.task, self.prior)
        model = self.expr.model
        if state is not None or init_state is not None:  # a fine-tune's EMA starts from its weights too
            model.load_state_dict(state["model"] if state is not None else init_state)
        ema = {k: v.detach().clone().float() for k, v in model.state_dict().items()}
        if state is not None:
            ema = {k: v.float() for k, v in state["ema"].items()}
            self.step, self.best = int(state["step"]), float(state.get("best_valid", float("inf")))
            self.nonfinite = int(state.get("nonfinite_steps", 0))
            self.good_steps = int(state.get("good_steps", self.step - self.nonfinite))
            self.seconds_before = float(state.get("train_seconds", 0.0))
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        if state is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self.model, self.optimizer = self.acc.prepare(model, self.optimizer)
        self.expr.model = self.model
        self.ema = {k: v.to(self.acc.device) for k, v in ema.items()}
        self.trained = {k for k, _ in self.acc.unwrap_model(self.model).named_parameters()}  # buffers are copied
        self.eval_expr = Expression(copy.deepcopy(self.acc.unwrap_model(self.model)).eval(), self.expr.norm,
                                    self.expr.schedule, replace(cfg.task, cond_drop=0.0, cond_drop_all=0.0), self.prior)
        if self.acc.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.run_dir / "config.yaml")

    # the loop's parts ---------------------------------------------------------
    def elapsed(self) -> float:
        """Training seconds over all resumes."""
        return self.seconds_before + time.perf_counter() - self.t_start

    def log(self, record: dict) -> None:
        if self.acc.is_main_process:
            with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")

    def step_once(self) -> dict | None:
        """One optimiser step: its loss terms, or None when a process saw a non-finite loss (the step
        is skipped everywhere and counted)."""
        cfg, acc = self.cfg, self.acc
        lr = get_lr(self.step, cfg.optim.lr, cfg.optim.warmup_steps, cfg.optim.max_steps, cfg.optim.min_lr_frac)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        per_rank = cfg.optim.batch_size // acc.num_processes
        micro = per_rank // cfg.optim.grad_accum
        rank = acc.process_index
        idx = batch_indices(self.step, len(self.train_set), cfg.optim.batch_size, cfg.seed)[rank * per_rank:(rank + 1) * per_rank]
        batches = [self.train_set.batch(idx[m * micro:(m + 1) * micro]) for m in range(cfg.optim.grad_accum)]
        # every part's loss is a share of the whole batch's mean: its sum over the batch's played notes,
        # times the processes (whose gradients DDP averages), so the parts add up to one big batch
        mine = torch.tensor(float(sum(b["mask"].sum() for b in batches)), device=acc.device)
        notes = acc.reduce(mine, "sum").item() / acc.num_processes
        total, terms = 0.0, {"diffusion": 0.0, "recon": 0.0}
        for m, batch in enumerate(batches):
            gens = example_generators(cfg.seed, self.step, rank * per_rank + m * micro, micro)
            with acc.autocast():
                out = self.expr.loss(batch, gens, acc.device, notes=notes)
            finite = torch.tensor(float(torch.isfinite(out["loss"]).item()), device=acc.device)
            if acc.reduce(finite, "min").item() < 1:
                return self._skip()
            last = m + 1 == cfg.optim.grad_accum
            with contextlib.nullcontext() if last else acc.no_sync(self.model):
                acc.backward(out["loss"])
            total += out["loss"].item()
            terms = {k: v + out[k].item() for k, v in terms.items()}
        self.consecutive_bad = 0
        self.good_steps += 1
        # the gradient's norm before clipping (0: no clipping, the norm only measured)
        limit = cfg.optim.clip_grad if cfg.optim.clip_grad > 0 else float("inf")
        grad_norm = float(acc.clip_grad_norm_(self.model.parameters(), limit))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self._update_ema()
        self.step += 1
        return {"loss": total, "lr": lr, **terms, "grad_norm": grad_norm}

    def _skip(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.nonfinite += 1
        self.consecutive_bad += 1
        self.log({"step": self.step, "nonfinite_loss": True})
        if self.consecutive_bad >= self.cfg.optim.max_nonfinite:
            raise DexterError(f"{self.consecutive_bad} non-finite losses in a row at step {self.step}: "
                              "lower optim.lr or check the data")
        self.step += 1
        return None

    @torch.no_grad()
    def _update_ema(self) -> None:
        d = ema_decay_at(self.step, self.cfg.optim.ema_decay, self.cfg.optim.ema_warmup)
        for k, v in self.acc.unwrap_model(self.model).state_dict().items():
            if k in self.trained:
                self.ema[k].mul_(d).add_(v.detach().float(), alpha=1 - d)
            else:
                self.ema[k].copy_(v)

    def evaluate(self) -> dict:
        """The EMA weights on the valid split: the loss on fixed draws, and the curve r of sampled segments."""
        cfg, valid = self.cfg, self.valid_set
        self.eval_expr.model.load_state_dict(self.ema)
        if len(valid) == 0:
            return {}
        losses = []
        with torch.no_grad():
            for b in range(cfg.eval.valid_batches):
                if b * cfg.optim.batch_size >= len(valid) and b > 0:
                    break
                items = np.arange(b * cfg.optim.batch_size, (b + 1) * cfg.optim.batch_size) % len(valid)
                gen = step_generator(cfg.seed, b, 0, offset=1)  # the same noise at every evaluation
                losses.append(self.eval_expr.loss(valid.batch(items), gen, self.acc.device)["loss"].item())
        out = {"valid_loss": float(np.mean(losses))}
        k = min(cfg.eval.sample_segments, len(valid))
        if k:
            batch = valid.batch(np.arange(k))
            # gen_noise: controls left free, so the curves come from the score, not the label's own
            # descriptors; transfer: conditioned on c_target - c_source, as in use
            free = torch.ones(k, batch["c_codec"].shape[-1], dtype=torch.bool)
            opts = SamplingOptions(sampler=cfg.eval.sampler, steps=cfg.eval.steps, guidance=1.0, strength=1.0)
            pred = self.eval_expr.sample({kk: v.to(self.acc.device) for kk, v in batch.items()}, opts,
                                         generator=step_generator(cfg.seed, 0, 0, offset=2),
                                         drop_c=free if cfg.task.target == "gen_noise" else None)
            scores = segment_curve_scores(pred.cpu().numpy(), batch["p_codec"].numpy(), batch["mask"].numpy())
            out.update({f"valid_{k2}": v for k2, v in scores.items()})
        return out

    def export(self, name: str, **facts) -> None:
        """The EMA weights and the prior as the inference checkpoint ``checkpoints/<name>``."""
        tensors = {**self.ema, **(self.prior.state_dict() if self.prior is not None else {})}
        config = checkpoint_config(self.cfg, self.store, self.step, self.stats, train_segments=len(self.train_set),
                                   world_size=self.acc.num_processes, **self.init_facts, **facts)
        export_inference(self.run_dir / "checkpoints" / name, tensors, config)

    def save(self) -> None:
        """The resumable state, and the last inference checkpoint once a step has trained."""
        if self.acc.is_main_process:
            save_training_state(self.state_dir, model=self.acc.unwrap_model(self.model).state_dict(), ema=self.ema,
                                optimizer=self.optimizer.state_dict(), step=self.step, config=self.cfg.to_dict(),
                                extra={"best_valid": self.best, "nonfinite_steps": self.nonfinite,
                                       "good_steps": self.good_steps, "train_seconds": self.elapsed(),
                                       "stats": self.stats, "init_facts": self.init_facts},
                                prior=self.prior.state_dict() if self.prior is not None else None)
            if self.good_steps:  # a model that no step has trained is not exported
                self.export("last", train_seconds=self.elapsed())
        self.acc.wait_for_everyone()

    def evaluate_and_keep_best(self, progress: Progress | None) -> None:
        if self.acc.is_main_process:
            ev = self.evaluate()
            self.log({"step": self.step, **ev})
            if self.good_steps and ev.get("valid_loss", float("inf")) < self.best:
                self.best = ev["valid_loss"]
                self.export("best", valid_loss=self.best, train_seconds=self.elapsed())
            if progress:
                progress(self.step, self.cfg.optim.max_steps, {"step": self.step, **ev})
        self.model.train()
        self.acc.wait_for_everyone()


@contextlib.contextmanager
def stop_signals():
    """SIGTERM and SIGINT, while training, only set ``stop["signum"]``: the loop saves and stops."""
    stop = {"signum": 0}
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def on_signal(signum, frame):  # noqa: ARG001
        stop["signum"] = signum

    for s in previous:
        signal.signal(s, on_signal)
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


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
    run = Run.setup(cfg, resume)
    max_steps, ev = cfg.optim.max_steps, cfg.eval
    t_last, steps_since = time.perf_counter(), 0
    run.model.train()
    with stop_signals() as stop:
        while run.step < max_steps:
            out = run.step_once()
            if out is not None:
                steps_since += 1
                if run.step % ev.log_every == 0 or run.step == max_steps:
                    for key in ("loss", "diffusion", "recon"):  # each process's share times their number: the mean is the batch's
                        out[key] = run.acc.reduce(torch.tensor(out[key], device=run.acc.device), "mean").item()
                    now = time.perf_counter()
                    rate = steps_since / max(now - t_last, 1e-9)
                    t_last, steps_since = now, 0
                    record = {"step": run.step, **out, "it_s": rate, "segments_s": rate * cfg.optim.batch_size,
                              "world_size": run.acc.num_processes}
                    run.log(record)
                    if progress and run.acc.is_main_process:
                        progress(run.step, max_steps, record)
                if run.step % ev.every == 0 or run.step == max_steps:
                    run.evaluate_and_keep_best(progress)
                if run.step % ev.checkpoint_every == 0:
                    run.save()
            if stop["signum"]:
                run.save()
                if run.acc.is_main_process:  # for a scheduler: requeue this run (scripts/slurm_*.sh)
                    write_text(run.run_dir / INTERRUPTED, f"step {run.step}, signal {stop['signum']}\n")
                raise TrainingInterrupted(run.step, stop["signum"])
        run.save()
    if not run.good_steps:
        raise DexterError(f"no training step had a finite loss ({run.nonfinite} skipped): no checkpoint was "
                          "exported; check the data and lower optim.lr")
    if run.acc.is_main_process and not (run.run_dir / "checkpoints" / "best").exists():
        run.export("best", train_seconds=run.elapsed())
    return TrainResult(run.run_dir, run.step, run.best, run.nonfinite, time.perf_counter() - run.t_start)
