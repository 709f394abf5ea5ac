"""``dexter test``: sample a store's test split with a checkpoint; MIDI, plots and metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import Sampler, console, stage_progress


def test(  # noqa: PT028  (a CLI command, not a pytest test)
    data: Path = typer.Option(Path("data/codec_N=300_mixup"), "--data", "-d", help="Codec store."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint folder \\[default: bundled]."),
    limit: Optional[int] = typer.Option(16, "--limit", help="At most this many test segments (0: all)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Segments sampled together."),
    sampler: Sampler = typer.Option("dpm++", "--sampler", help="Sampler."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Denoising steps \\[default: the model's for dpm++, 20 otherwise]."),
    guidance: Optional[float] = typer.Option(None, "--guidance", "-w", help="Classifier-free guidance weight \\[default: the model's]."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    transfer: bool = typer.Option(False, "--transfer", help="The paper's transfer test on pairs (transfer checkpoint).", metavar=""),
    sample_steps_frac: float = typer.Option(0.75, "--sample-steps-frac", help="Transfer: how deep the source is noised."),
    free_controls: bool = typer.Option(False, "--free-controls", help="Leave the controls free instead of the label's.", metavar=""),
    animate: bool = typer.Option(False, "--animate", help="Also save a GIF of the first sample being denoised.", metavar=""),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder \\[default: artifacts/samples/<time>]."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar.", metavar=""),
) -> None:
    """Sample test segments: predicted and human MIDI, curve plots, metrics.json.

    Example: [bold]dexter test --data data/codec_N=300_mixup --checkpoint runs/x/checkpoints/best --limit 8 --animate[/]
    """
    import time

    from rich.table import Table

    from ..evaluation.segments import run_test

    from ..evaluation.segments import TestPlan

    out = out or Path("artifacts/samples") / time.strftime("%Y%m%d-%H%M%S")
    choices = {"sampler": sampler.value, "steps": steps, "guidance": guidance, "seed": seed, "strength": sample_steps_frac}
    plan = TestPlan(limit or None, batch_size, transfer, free_controls, animate)
    with stage_progress(quiet) as progress:
        rep = run_test(data, out, choices, checkpoint=checkpoint, plan=plan, progress=progress)
    # these compare the sampled codec with the label's; `dexter evaluate` scores the delivered MIDI files
    table = Table(title=f"{rep.segments} test segments (codec-level metrics; dexter evaluate scores the MIDI files)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in rep.metrics.items():
        table.add_row(k, f"{v:.4f}")
    console.print(table)
    console.print(f"wrote {len(rep.files)} files to {out} in {rep.seconds:.0f} s", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("test")(test)
