"""``dexter render``: a score in, an expressive performance (MIDI) out."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._common import Sampler, console, console_err, stage_progress


def render(
    score: Optional[Path] = typer.Argument(None, help="Score file (MusicXML/MXL, MEI, kern, quantised MIDI), or a folder of them."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output MIDI, or the output folder for a folder of scores \\[default: <score>.performance.mid]."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint folder \\[default: the bundled model]."),
    sampler: Sampler = typer.Option("dpm++", "--sampler", help="Sampler (ddpm: all T steps, the paper's)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Denoising steps (dpm++/ddim) \\[default: the model's for dpm++, see --info; 20 otherwise]."),
    guidance: Optional[float] = typer.Option(None, "--guidance", "-w", help="Classifier-free guidance weight (1 = plain conditional) \\[default: the model's, see --info]."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same performance."),
    control: Optional[List[str]] = typer.Option(None, "--control", help="NAME=VALUE in training std or plain units (repeatable), e.g. loudness=+1, loudness=mf, tempo_level=90bpm; see --list-controls."),
    num_samples: int = typer.Option(1, "--num-samples", "-n", help="Render K interpretations in one batch (with the bundled model they differ in timing, articulation and pedal detail; the curves barely vary)."),
    overlap: float = typer.Option(0.5, "--overlap", help="Fraction of each window shared with the next (whole-piece continuity)."),
    as_written: bool = typer.Option(False, "--as-written", help="Play the score as written (no repeats unfolded).", metavar=""),
    save_codec: Optional[Path] = typer.Option(None, "--save-codec", help="Also write the predicted p_codec (.npz or .csv)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also write a PNG of the tempo and velocity curves."),
    tempo_map: bool = typer.Option(False, "--tempo-map", help="Write the MIDI on the score's bars and beats with a tempo map (for a DAW or notation program); it plays the same.", metavar=""),
    audio: Optional[Path] = typer.Option(None, "--audio", help="Also write a WAV of the performance (-o out.wav writes the WAV alone)."),
    soundfont: Optional[Path] = typer.Option(None, "--soundfont", help="SoundFont for audio \\[default: $DEXTER_SOUNDFONT, else the system's, e.g. /usr/share/sounds/sf2/FluidR3_GM.sf2]."),
    from_: Optional[Path] = typer.Option(None, "--from", help="Re-render this performance of the score (MIDI or .match)."),
    alignment: Optional[Path] = typer.Option(None, "--alignment", help="Its note alignment (note_alignment.tsv or align.csv) \\[default: parangonar]."),
    strength: float = typer.Option(0.5, "--strength", help="With --from: how deep the source is noised, 0..1 (small = close to it)."),
    list_controls: bool = typer.Option(False, "--list-controls", help="List the controls and exit.", metavar=""),
    info: bool = typer.Option(False, "--info", help="Describe the model and exit.", metavar=""),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary.", metavar=""),
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
        raise typer.BadParameter("give a score file: dexter render SCORE -o OUT.mid", param_hint="SCORE")
    if out is not None and str(out) == "-":
        raise typer.BadParameter("dexter writes files, not standard output: give a path such as out.mid",
                                 param_hint="--out")
    choices = {"sampler": sampler.value, "steps": steps, "guidance": guidance, "seed": seed, "num_samples": num_samples,
               "overlap": overlap, "strength": strength, "controls": list(control or [])}
    if score.is_dir():
        if save_codec or plot or from_ or audio:
            raise DexterError("--save-codec, --plot, --audio and --from take one score, not a folder")
        from ..batch import render_batch

        with stage_progress(quiet) as progress:
            res = render_batch(score, out, choices, checkpoint=checkpoint, unfold=not as_written, tempo_map=tempo_map,
                               progress=progress)
        for path, why in res.skipped:
            console_err.print(f"[yellow]skipped[/] {path}: {why}", highlight=False, soft_wrap=True)
        for path, written in res.renamed:
            console_err.print(f"[yellow]note:[/] {path} shares its name with another score: written as {written.name}",
                              highlight=False, soft_wrap=True)
        if not quiet:
            console.print(f"rendered {len(res.rendered)} of {len(res.rendered) + len(res.skipped)} scores "
                          f"({res.n_notes} notes) in {res.seconds:.1f} s", highlight=False)
        if res.skipped:
            written = "; the others were written" if res.rendered else ""
            raise DexterError(f"{len(res.skipped)} of {len(res.rendered) + len(res.skipped)} scores could not be "
                              f"rendered (listed above){written}")
        return
    from ..render import Extras, Source, render_score

    out = out or score.with_suffix(".performance.mid")
    source = Source(from_, alignment) if from_ is not None else None
    t0 = time.perf_counter()
    with stage_progress(quiet) as progress:
        res = render_score(score, out, choices, checkpoint=checkpoint, unfold=not as_written, source=source,
                           extras=Extras(save_codec, plot, audio, soundfont, tempo_map), progress=progress)
    if not quiet:
        t = res.timings
        console.print(f"{res.n_notes} notes, {res.durations_s[0]:.1f} s of music -> {', '.join(map(str, res.outputs))} "
                      f"in {time.perf_counter() - t0:.1f} s (parse {t['parse']:.1f}, sample {t['sample']:.1f}, "
                      f"write {t['write']:.1f})", highlight=False, soft_wrap=True)


def _describe(checkpoint: Optional[Path], list_controls: bool) -> None:
    from ..engine import load_expression

    _, config = load_expression(checkpoint)
    console.print(_controls_table(config) if list_controls else _info_table(config, checkpoint))


def _info_table(config: dict, checkpoint: Optional[Path]):
    """The model, its training and how it samples, as a two-column table."""
    from rich.table import Table

    from ..data.codec import P_CODEC_NAMES
    from ..sampling import SamplingOptions

    tr, m, task = config.get("training", {}), config["model"], config["task"]
    counts, secs = tr.get("counts", {}), tr.get("train_seconds")
    opts = SamplingOptions.for_model(config)
    table = Table(title=f"model {tr.get('name') or checkpoint or 'bundled'}", show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("network", f"{m['residual_channels']} channels x {m['residual_layers']} blocks, attention every "
                  f"{m['attention_every'] or 'never'}; weights stored in {config.get('weights_dtype') or 'float32'}")
    table.add_row("task", f"{task.get('target')}, {task.get('prediction')}-prediction, prior mean: {task.get('prior', 'none')}")
    table.add_row("trained", f"{tr.get('step')} steps" + (f" in {secs / 3600:.1f} h" if secs else "")
                  + (f" on {tr['hardware']}" if tr.get("hardware") else ""))
    table.add_row("data", f"{counts.get('performances', '?')} performances, {counts.get('notes', '?')} notes, "
                  f"{tr.get('pieces_train', '?')} train pieces")
    if tr.get("head_refit"):  # scripts/research/refit_head.py
        head = tr["head_refit"]
        table.add_row("refit", f"output rows {', '.join(P_CODEC_NAMES[r] for r in head['rows'])} refitted by least "
                      "squares on the frozen network")
    table.add_row("sampling", f"{opts.steps} DPM-Solver++ steps, guidance w = {opts.guidance:g}")
    curves = "the network's first-step reading of their mean" if opts.curves == "mean" else "the sampler's draw"
    spread = (f"; range x{opts.spread[1]:g} (velocity), x{opts.spread[0]:g} (tempo), voicing x{opts.spread[2]:g}"
              if opts.spread != (1.0, 1.0, 1.0) else "")
    table.add_row("decoding", f"curve noise at temperature {opts.temperature:g}; curves from {curves}{spread}")
    return table


def _controls_table(config: dict):
    """The controls this model responds to, with their units; the constant ones are named below."""
    from rich.table import Table

    from ..data.codec import C_DESCRIPTIONS

    stats = config["codec"]["stats"]
    table = Table(title="controls: --control NAME=VALUE, VALUE in standard deviations of the training data "
                  "(or in the plain units listed)", title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("meaning", min_width=28, ratio=1)
    table.add_column("mean ± 1 std", justify="right", no_wrap=True)
    table.add_column("plain units", no_wrap=True)
    constant = []
    for j, name in enumerate(config["codec"]["c_codec_names"]):
        if stats["c_max"][j] <= stats["c_min"][j]:
            constant.append(name)
            continue
        table.add_row(name, C_DESCRIPTIONS.get(name, ""), f"{_num(stats['c_mean'][j])} ± {_num(stats['c_std'][j])}",
                      PLAIN_UNITS.get(name, ""))
    if constant:
        table.caption = f"not listed: {', '.join(constant)} (constant in the training data: no effect, refused)"
        table.caption_justify = "left"
    return table


PLAIN_UNITS = {"tempo_level": "90bpm", "loudness": "70vel, pp..ff"}  # examples of --control's plain units


def _num(x: float) -> str:
    """A statistic for people: 3 significant digits, and 0 for round-off (1e-15)."""
    return "0" if abs(x) < 1e-9 else f"{x:.3g}"


def register(app: typer.Typer) -> None:
    app.command("render")(render)
