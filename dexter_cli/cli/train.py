"""``dexter train``: train the diffusion model on a codec store (plain or under ``accelerate launch``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from ._common import console_err


def train(
    overrides: Optional[List[str]] = typer.Argument(None, help="key=value settings, e.g. model.residual_layers=12 task.timesteps=1000."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config (e.g. configs/train.yaml)."),
    target: Optional[str] = typer.Option(None, "--target", help="gen_noise (from noise) or transfer (from a paired source)."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Codec store folder."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Optimiser steps."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Segments per step, over all processes."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Where config, metrics and checkpoints go."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed."),
    init_from: Optional[Path] = typer.Option(None, "--init-from", help="Fine-tune: start from this inference checkpoint's weights, normalisation and prior (e.g. dexter_cli/assets/default)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --run-dir from its last state.", metavar=""),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display.", metavar=""),
) -> None:
    """Train DExter's denoiser. Also runs under [bold]accelerate launch --num_processes N -m dexter_cli train ...[/].

    Example: [bold]dexter train --config configs/train.yaml --data data/codec_N=300_mixup --max-steps 2000[/]
    """
    from ..config import load_config
    from ..train import TrainingInterrupted, train as run_train

    flags = {"task.target": target, "data.path": data, "optim.max_steps": max_steps,
             "optim.batch_size": batch_size, "optim.lr": lr, "run_dir": run_dir, "seed": seed,
             "init_from": init_from}
    extra = [f"{k}={v}" for k, v in flags.items() if v is not None]
    cfg = load_config(config, list(overrides or []) + extra)
    with _train_progress(quiet, cfg.optim.max_steps) as progress:
        try:
            result = run_train(cfg, resume=resume, progress=progress)
        except TrainingInterrupted as exc:
            console_err.print(f"[yellow]{exc}[/]", highlight=False)
            sys.exit(128 + exc.signum)
    best = (f"best valid loss {result.best_valid:.4f}" if result.best_valid < float("inf")
            else "no valid split, so checkpoints/best is the last step")
    console_err.print(f"done: {result.step} steps in {result.seconds:.0f} s; {best}; "
                      f"non-finite steps skipped {result.nonfinite_steps}; checkpoints in {result.run_dir}/checkpoints",
                      highlight=False)


class _train_progress:
    """Rich progress for training: step, loss, it/s, ETA (main process only)."""

    def __init__(self, quiet: bool, total: int):
        self.quiet, self.total = quiet, total

    def __enter__(self):
        if self.quiet:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=console_err)
        self.task = None

        def progress(step: int, total: int, rec: dict) -> None:
            if self.task is None:
                self.bar.start()
                self.task = self.bar.add_task("train", total=total, info="")
            if "loss" in rec:
                info = f"loss {rec['loss']:.4f}  {rec['it_s']:.2f} it/s"
            else:
                info = "  ".join(f"{k} {v:.3f}" for k, v in rec.items() if k != "step" and isinstance(v, float))
                if info:  # an evaluation without a valid split has nothing to say
                    console_err.print(f"step {step}: {info}", highlight=False)
                info = self.bar.tasks[0].fields.get("info", "")
            self.bar.update(self.task, completed=step, info=info)

        return progress

    def __exit__(self, *exc):
        if not self.quiet and self.task is not None:
            self.bar.stop()
        return False


def register(app: typer.Typer) -> None:
    app.command("train")(train)
