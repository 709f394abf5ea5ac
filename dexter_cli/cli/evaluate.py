"""``dexter evaluate``: score renderers against every human performance of the test pieces."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import Sampler, console, stage_progress


def evaluate(
    data: Path = typer.Option(Path("data/codec_N=300_mixup"), "--data", "-d", help="Codec store: its test split is evaluated."),
    renderers: str = typer.Option("dexter,deadpan,linear", "--renderers", "-r", help="Comma list: dexter, deadpan, linear (the prior alone), external:DIR."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint of the dexter renderer \\[default: bundled]."),
    split: str = typer.Option("test", "--split", help="Split to evaluate."),
    pieces: Optional[Path] = typer.Option(None, "--pieces", help="CSV/TSV of score,performance[,alignment] rows to evaluate instead of a split."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Processes over pieces."),
    limit: Optional[int] = typer.Option(None, "--limit", help="At most this many pieces."),
    sampler: Sampler = typer.Option("dpm++", "--sampler", help="Sampler of the dexter renderer."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Its steps \\[default: the model's for dpm++, 20 otherwise]."),
    seed: int = typer.Option(0, "--seed", help="Its seed."),
    guidance: Optional[float] = typer.Option(None, "--guidance", "-w", help="Its classifier-free guidance weight w \\[default: the model's]."),
    overlap: float = typer.Option(0.5, "--overlap", help="Its window overlap (as dexter render --overlap)."),
    samples: int = typer.Option(1, "--num-samples", "--samples", "-n", min=1, help="Interpretations per piece of the dexter renderer (one batched run, as dexter render -n); its metrics are their mean per piece: less seed noise."),
    out: Path = typer.Option(Path("artifacts/evaluate"), "--out", "-o", help="Folder for results.json, results.csv and plots."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar.", metavar=""),
) -> None:
    """Evaluate renderers on whole pieces, each metric next to its human-to-human value.

    Example: [bold]dexter evaluate --data data/codec_N=300_mixup -r dexter,deadpan,linear --checkpoint runs/x/checkpoints/best[/]
    """
    from rich.table import Table

    from ..evaluation.metrics import METRICS
    from ..evaluation.runner import evaluate_store
    from ..evaluation.report import write_report
    from ..evaluation.pieces import Selection
    from ..fileio import check_writable

    specs = [r.strip() for r in renderers.split(",") if r.strip()]
    check_writable(out / "results.json", "results")  # an unwritable folder fails now, not after the renders
    choices = {"sampler": sampler.value, "steps": steps, "seed": seed, "guidance": guidance, "overlap": overlap,
               "num_samples": samples}
    with stage_progress(quiet) as progress:
        report = evaluate_store(data, specs, choices, checkpoint=checkpoint, selection=Selection(split, pieces, limit),
                                workers=workers, progress=progress)
    files = write_report(report, out)
    names = list(report.summary)
    scope = pieces.name if pieces else f"{split} split of {data}"
    table = Table(title=f"{scope}: medians over pieces (per piece: median over its humans)")
    table.add_column("metric")
    for name in names:
        table.add_column("human (LOO)" if name == "human" else name, justify="right")
    table.add_row("pieces", *(str(report.summary[n]["pieces"]) for n in names))
    for m in METRICS:
        table.add_row(m, *(f"{report.summary[n][m]:.3f}" if report.summary[n][m] == report.summary[n][m] else "—"
                           for n in names))
    console.print(table)
    for name, ratios in report.ratios.items():
        if ratios:
            n = max(r["pieces"] for r in ratios.values())
            parts = [f"{m} {r['ratio']:.3f}x [{r['low']:.2f}, {r['high']:.2f}]" for m, r in ratios.items()]
            console.print(f"{name} / human, like for like over the {n} pieces with a human-to-human value "
                          f"(95 % bootstrap over pieces): " + ", ".join(parts), highlight=False)
    for name, refs in report.paired.items():
        for ref, by_metric in refs.items():
            parts = [f"{m} {c['median']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}], better on {c['better']} of {c['pieces']} "
                     f"(sign p {c['p_sign']:.3f})" for m, c in by_metric.items() if c["pieces"]]
            if parts:
                console.print(f"{name} - {ref}, piece by piece (median difference, 95 % bootstrap): " + "; ".join(parts),
                              highlight=False)
    for name in names:
        st = report.settings.get(name)
        if st:  # a model renderer: what it sampled with, its checkpoint's defaults resolved
            console.print(f"{name}: {st['model'] or 'unnamed model'}, {st['sampler']} {st['steps']} steps, w {st['guidance']:g}, "
                          f"temperature {st['temperature']:g}, spread {'/'.join(f'{g:g}' for g in st['spread'])} (tempo/velocity/voicing), "
                          f"curves {st['curves']}, seed {st['seed']}, {st['num_samples']} sample(s) per piece",
                          highlight=False)
    for p in report.problems:
        console.print(f"[yellow]note:[/] {p}", highlight=False)
    console.print(f"wrote {len(files)} files to {out} in {report.seconds:.0f} s", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
