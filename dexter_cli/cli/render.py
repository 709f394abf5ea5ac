"""``dexter render``: a score in, an expressive performance (MIDI) out."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._common import console, console_err, stage_progress


def render(
    score: Optional[Path] = typer.Argument(None, help="Score file (MusicXML/MXL, MEI, kern, quantised MIDI), or a folder of them."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output MIDI, or the output folder for a folder of scores \\[default: <score>.performance.mid]."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint folder \\[default: the bundled model]."),
    sampler: str = typer.Option("dpm++", "--sampler", help="dpm++ | ddim | ddpm (ddpm: all T steps, the paper's)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Denoising steps (dpm++/ddim) \\[default: the model's for dpm++, see --info; 20 otherwise]."),
    guidance: Optional[float] = typer.Option(None, "--guidance", "-w", help="Classifier-free guidance weight (1 = plain conditional) \\[default: the model's, see --info]."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same performance."),
    control: Optional[List[str]] = typer.Option(None, "--control", help="NAME=VALUE in training std (repeatable), e.g. loudness=+1."),
    num_samples: int = typer.Option(1, "--num-samples", "-n", help="Render K interpretations in one batch."),
    overlap: float = typer.Option(0.5, "--overlap", help="Fraction of each window shared with the next (whole-piece continuity)."),
    as_written: bool = typer.Option(False, "--as-written", help="Play the score as written (no repeats unfolded)."),
    save_codec: Optional[Path] = typer.Option(None, "--save-codec", help="Also write the predicted p_codec (.npz or .csv)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also write a PNG of the tempo and velocity curves."),
    from_: Optional[Path] = typer.Option(None, "--from", help="Re-render this performance of the score (MIDI or .match)."),
    alignment: Optional[Path] = typer.Option(None, "--alignment", help="Its note alignment (note_alignment.tsv or align.csv) \\[default: parangonar]."),
    strength: float = typer.Option(0.5, "--strength", help="With --from: how deep the source is noised, 0..1 (small = close to it)."),
    list_controls: bool = typer.Option(False, "--list-controls", help="List the controls and exit."),
    info: bool = typer.Option(False, "--info", help="Describe the model and exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary."),
) -> None:
    """Render an expressive performance of a score.

    Example: [bold]dexter render score.musicxml -o out.mid --control loudness=+1 --plot curves.png[/]
    """
    import time

    from ..errors import DexterError

    if list_controls or info:
        _describe(checkpoint, list_controls)
        return
    if score is None:
        raise DexterError("give a score file: dexter render SCORE -o OUT.mid")
    choices = {"sampler": sampler, "steps": steps, "guidance": guidance, "seed": seed, "num_samples": num_samples,
               "overlap": overlap, "strength": strength, "controls": list(control or [])}
    if score.is_dir():
        if save_codec or plot or from_:
            raise DexterError("--save-codec, --plot and --from take one score, not a folder")
        from ..batch import render_batch

        with stage_progress(quiet) as progress:
            res = render_batch(score, out, choices, checkpoint=checkpoint, unfold=not as_written, progress=progress)
        for path, why in res.skipped:
            console_err.print(f"[yellow]skipped[/] {path}: {why}", highlight=False, soft_wrap=True)
        if not quiet:
            console.print(f"rendered {len(res.rendered)} of {len(res.rendered) + len(res.skipped)} scores "
                          f"({res.n_notes} notes) in {res.seconds:.1f} s", highlight=False)
        if res.skipped:
            written = "; the others were written" if res.rendered else ""
            raise DexterError(f"{len(res.skipped)} of {len(res.rendered) + len(res.skipped)} scores could not be "
                              f"rendered (listed above){written}")
        return
    from ..render import Source, render_score

    out = out or score.with_suffix(".performance.mid")
    source = Source(from_, alignment) if from_ is not None else None
    t0 = time.perf_counter()
    with stage_progress(quiet) as progress:
        res = render_score(score, out, choices, checkpoint=checkpoint, unfold=not as_written, source=source,
                           save_codec=save_codec, plot=plot, progress=progress)
    if not quiet:
        t = res.timings
        console.print(f"{res.n_notes} notes, {res.durations_s[0]:.1f} s of music -> {', '.join(map(str, res.outputs))} "
                      f"in {time.perf_counter() - t0:.1f} s (parse {t['parse']:.1f}, sample {t['sample']:.1f}, "
                      f"write {t['write']:.1f})", highlight=False)


def _describe(checkpoint: Optional[Path], list_controls: bool) -> None:
    from rich.table import Table

    from ..data.codec import C_DESCRIPTIONS
    from ..engine import load_expression
    from ..sampling import SamplingOptions

    expr, config = load_expression(checkpoint)
    tr = config.get("training", {})
    if not list_controls:
        counts = tr.get("counts", {})
        secs = tr.get("train_seconds")
        console.print(f"model {tr.get('name', checkpoint or 'bundled')}: {config['model']}; weights stored in "
                      f"{config.get('weights_dtype') or 'float32'}", highlight=False)
        console.print(f"target {config['task'].get('target')}; trained {tr.get('step')} steps"
                      + (f" in {secs / 3600:.1f} h" if secs else "") + (f" on {tr['hardware']}" if tr.get("hardware") else "")
                      + f"; data {tr.get('data')}: {counts.get('performances', '?')} performances, "
                      f"{counts.get('notes', '?')} notes, {tr.get('pieces_train', '?')} train pieces", highlight=False)
        head = tr.get("head_refit")
        if head:  # scripts/research/refit_head.py
            from ..data.codec import P_CODEC_NAMES

            console.print(f"output rows {', '.join(P_CODEC_NAMES[r] for r in head['rows'])} refitted by least squares "
                          f"on the frozen network of {head.get('from')} ({head.get('notes')} notes drawn)", highlight=False)
        if tr.get("weights_from"):  # scripts/bundle_model.py --fact weights_from=...
            console.print(f"weights: {tr['weights_from']}", highlight=False)
        opts = SamplingOptions.for_model(config)
        prior = config["task"].get("prior", "none")
        console.print(f"sampling defaults: {opts.steps} DPM-Solver++ steps, guidance w = {opts.guidance:g}"
                      + (f"; prior mean: {prior}" if prior != "none" else ""), highlight=False)
        g_tempo, g_vel, g_voice = opts.spread
        console.print(f"decoding from noise: curve noise at temperature {opts.temperature:g}; curves from "
                      + ("the network's first-step reading of their mean" if opts.curves == "mean" else "the sampler's draw")
                      + (f"; spread: tempo x{g_tempo:g}, velocity x{g_vel:g} about the piece's means, voicing x{g_voice:g}"
                         if opts.spread != (1.0, 1.0, 1.0) else ""), highlight=False)
        return
    stats = config["codec"]["stats"]
    table = Table(title="controls (--control NAME=VALUE, VALUE in standard deviations of the training data)")
    for col in ("name", "meaning", "train mean", "train std", "train range"):
        table.add_column(col)
    for j, name in enumerate(config["codec"]["c_codec_names"]):
        table.add_row(name, C_DESCRIPTIONS.get(name, ""), f"{stats['c_mean'][j]:.3g}", f"{stats['c_std'][j]:.3g}",
                      f"{stats['c_min'][j]:.3g} .. {stats['c_max'][j]:.3g}")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("render")(render)
