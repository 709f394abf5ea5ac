"""``dexter codec``: aligned datasets to a codec store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from ._common import console, stage_progress


def default_datasets_root() -> Path:
    """``$DEXTER_DATASETS``, else ``../shared/datasets``."""
    return Path(os.environ.get("DEXTER_DATASETS", "../shared/datasets"))


def codec(
    max_note_seq: int = typer.Option(300, "--max-note-seq", "-N", help="Segment length N (score notes per segment)."),
    mixup: bool = typer.Option(False, "--mixup", help="Add the mean of each pair of train performances of a score (synthetic).", metavar=""),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Store folder \\[default: data/codec_N=<N>[_mixup]]."),
    datasets_root: Path = typer.Option(None, "--datasets-root", help="Folder holding the datasets \\[default: $DEXTER_DATASETS or ../shared/datasets]."),
    datasets: Optional[str] = typer.Option(None, "--datasets", help="Comma list of asap,vienna422,atepp \\[default: all found]."),
    pieces: Optional[str] = typer.Option(None, "--pieces", help="Comma list of shell patterns on piece keys, e.g. 'Bach/Fugue/*' \\[default: all]."),
    asap_root: Optional[Path] = typer.Option(None, "--asap-root", help="ASAP root (overrides --datasets-root)."),
    vienna_root: Optional[Path] = typer.Option(None, "--vienna422-root", help="Vienna 4x22 root."),
    atepp_root: Optional[Path] = typer.Option(None, "--atepp-root", help="ATEPP root (parangonada align.csv layout)."),
    split: str = typer.Option("85/5/10", "--split", help="Train/valid/test percentages, by piece."),
    workers: int = typer.Option(1, "--workers", "-j", help="Worker processes."),
    shard: Optional[str] = typer.Option(None, "--shard", help="Encode shard i/n only (0-based); then run --merge once all are done."),
    merge: bool = typer.Option(False, "--merge", help="Assemble the store from the shards' results; encode nothing.", metavar=""),
    window_beats: float = typer.Option(4.0, "--window-beats", help="Half-width (beats) of the c_codec window."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars and a one-line summary.", metavar=""),
) -> None:
    """Encode every score-aligned performance into p_codec / s_codec / c_codec segments.

    Example: [bold]dexter codec --max-note-seq 300 --mixup --datasets-root ../shared/datasets --workers 2[/]
    """
    from ..data.pipeline import CodecOptions, parse_shard, run_codec
    from ..data.split import parse_fractions

    fractions = parse_fractions(split)
    shard_t = parse_shard(shard)
    piece_patterns = [p.strip() for p in pieces.split(",") if p.strip()] if pieces else None
    names = [d.strip() for d in datasets.split(",") if d.strip()] if datasets else None
    root = datasets_root if datasets_root is not None else default_datasets_root()
    store = out or Path("data") / f"codec_N={max_note_seq}{'_mixup' if mixup else ''}"
    arguments = {"max_note_seq": max_note_seq, "mixup": mixup, "datasets_root": str(root), "datasets": names, "pieces": piece_patterns,
                 "split": split, "workers": workers, "shard": shard, "window_beats": window_beats}
    options = CodecOptions(root, names, piece_patterns, {"asap": asap_root, "vienna422": vienna_root, "atepp": atepp_root},
                           max_note_seq, mixup, fractions, workers, shard_t, merge, window_beats)
    with stage_progress(quiet) as progress:
        run = run_codec(store, options, arguments=arguments, progress=progress)
    _report(run, quiet)


def _report(run, quiet: bool) -> None:
    from rich.table import Table

    if quiet:  # -q: the store's one-line summary only
        if run.assembled is not None:
            a = run.assembled
            console.print(f"{run.store}: {a.performances} performances, {a.segments} segments "
                          f"({', '.join(f'{k} {v}' for k, v in a.per_split.items())})", highlight=False, soft_wrap=True)
        return

    for d in run.discoveries:
        line = f"[bold]{d.dataset}[/]: {len(d.sources)} performances found"
        line += f" in {d.root}" if d.root else f" ({d.note})"
        if d.problems:
            line += f", {len(d.problems)} unusable (first: {d.problems[0]})"
        console.print(line, highlight=False)
    enc = run.encoded
    if enc.results:
        console.print(f"encoded {enc.count('encoded')}, already done {enc.count('cached')}, "
                      f"skipped {enc.count('skipped')} in {enc.seconds:.1f} s", highlight=False)
    if run.assembled is None:
        console.print(f"shard written to {run.store}/parts; run `dexter codec --merge` with the same options once every shard is done")
        return
    a = run.assembled
    table = Table(title=f"codec store {run.store}")
    for col in ("dataset", "performances", "notes", "segments", "skipped"):
        table.add_column(col, justify="right" if col != "dataset" else "left")
    for name, d in sorted(a.per_dataset.items()):
        table.add_row(name, str(d["performances"]), str(d["notes"]), str(d["segments"]), str(d["skipped"]))
    table.add_row("[bold]total", str(a.performances), str(a.notes), str(a.segments), str(len(a.skipped)))
    console.print(table)
    console.print("segments by split: " + ", ".join(f"{k} {v}" for k, v in a.per_split.items()), highlight=False)
    reasons: dict[str, int] = {}
    for e in a.skipped:
        r = e["reason"].split(":")[0]
        reasons[r] = reasons.get(r, 0) + 1
    for r, n in sorted(reasons.items(), key=lambda x: -x[1]):
        console.print(f"  skipped {n}: {r} (details in errors.jsonl)", highlight=False)
    if a.missing:
        console.print(f"[yellow]{a.missing} discovered performances have no result yet (unfinished shards?)[/]")


def register(app: typer.Typer) -> None:
    app.command("codec")(codec)
