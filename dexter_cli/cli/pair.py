"""``dexter pair``: transfer pairs for a codec store."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import console


def pair(
    data: Path = typer.Option(Path("data/codec_N=300_mixup"), "--data", "-d", help="Codec store folder."),
    k: Optional[int] = typer.Option(None, "--k", "-k", help="At most K pairs, drawn uniformly \\[default: all]."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the draw."),
) -> None:
    """Pair real performances of the same score segment for transfer training.

    Writes pairs.npy (source, target segment), unpaired.npy and pairs.json into the store.
    Example: [bold]dexter pair --data data/codec_N=300_mixup --k 100000[/]
    """
    from ..data.pairs import pair_store

    r = pair_store(data, k=k, seed=seed)
    console.print(f"{r.pairs} pairs (of {r.possible} possible) over {r.groups} segment groups; "
                  f"{r.unpaired} segments without a partner; {r.seconds:.2f} s", highlight=False)
    console.print("pairs by split: " + ", ".join(f"{s} {n}" for s, n in r.per_split.items()), highlight=False)


def register(app: typer.Typer) -> None:
    app.command("pair")(pair)
