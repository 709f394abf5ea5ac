"""The ``dexter codec`` job: discover, encode (resumably, in parallel, sharded), assemble."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

from ..errors import DexterError
from .build import EncodeReport, Progress, encode_all
from .layouts import Discovery, discover, resolve_roots
from .assemble import assemble_store
from .store import AssembleReport


@dataclass
class CodecRun:
    """What a ``dexter codec`` run found and did."""

    store: Path
    discoveries: list[Discovery]
    encoded: EncodeReport
    assembled: AssembleReport | None  # None for a shard of a sharded run


def parse_shard(text: str | None) -> tuple[int, int]:
    """Parse ``"i/n"`` (0-based i) into ``(i, n)``."""
    if not text:
        return (0, 1)
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise DexterError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise DexterError(f"--shard {text}: need 0 <= i < n")
    return i, n


@dataclass(frozen=True)
class CodecOptions:
    """What ``dexter codec`` encodes and how.

    Attributes
    ----------
    datasets_root : Path or None
        Folder holding the datasets under their usual names.
    datasets : list of str, optional
        Which datasets (default: all found).
    pieces : list of str, optional
        Keep only pieces whose key matches one of these shell patterns.
    roots : dict, optional
        Per-dataset root overrides.
    max_note_seq : int
        Segment length N.
    mixup : bool
        Add mixup segments (train split only).
    fractions : tuple
        Train/valid/test fractions.
    workers : int
        Worker processes.
    shard : (i, n)
        Encode shard i of n only and do not assemble (run ``merge_only`` after all shards).
    merge_only : bool
        Encode nothing; assemble the store from the parts written so far.
    window_beats : float
        c_codec window half-width in beats.
    """

    datasets_root: Path | None = None
    datasets: list[str] | None = None
    pieces: list[str] | None = None
    roots: dict[str, Path | None] | None = None
    max_note_seq: int = 300
    mixup: bool = False
    fractions: tuple[float, float, float] = (0.85, 0.05, 0.10)
    workers: int = 1
    shard: tuple[int, int] = (0, 1)
    merge_only: bool = False
    window_beats: float = 4.0

    def __post_init__(self) -> None:
        if self.max_note_seq < 1:
            raise DexterError(f"--max-note-seq must be positive, got {self.max_note_seq}")


def run_codec(out: Path, options: CodecOptions | None = None, *, arguments: dict | None = None,
              progress: Progress | None = None) -> CodecRun:
    """Encode every aligned performance found into a codec store.

    Parameters
    ----------
    out : Path
        The store folder.
    options : CodecOptions, optional
        What to encode and how (default: every dataset under no root: give one).
    arguments : dict, optional
        The command's arguments, recorded in ``meta.json``.
    progress : callable, optional
        ``progress(stage, done, total)``.

    Returns
    -------
    CodecRun

    Raises
    ------
    DexterError
        Bad arguments, no performance found, or nothing encodable.
    """
    o = options or CodecOptions()
    resolved = resolve_roots(o.datasets_root, o.datasets, o.roots or {})
    if o.datasets_root is not None and not Path(o.datasets_root).is_dir() and not any((o.roots or {}).values()):
        raise DexterError(f"datasets root {o.datasets_root} is not a folder: give --datasets-root DIR or set "
                          "DEXTER_DATASETS to the folder that holds asap/, vienna4x22/ or ATEPP")
    discoveries = discover(resolved)
    if o.pieces:
        for d in discoveries:
            d.sources = [s for s in d.sources if any(fnmatch.fnmatch(s.piece, pat) for pat in o.pieces)]
    sources = [s for d in discoveries for s in d.sources]
    if not sources:
        where = "; ".join(f"{d.dataset}: {d.note or 'nothing usable'}" for d in discoveries) or "no dataset"
        raise DexterError(f"no aligned performance found ({where})")
    out = Path(out)
    from ..fileio import check_writable

    check_writable(out / "meta.json", "codec store")  # a read-only place fails now, not after the encoding
    if o.merge_only:
        report = EncodeReport()
    else:
        report = encode_all(discoveries, out, workers=o.workers, shard=o.shard, window_beats=o.window_beats,
                            progress=progress)
    if o.shard[1] > 1 and not o.merge_only:
        return CodecRun(out, discoveries, report, None)
    assembled = assemble_store(out, sources, max_note_seq=o.max_note_seq, mixup=o.mixup, fractions=o.fractions,
                               arguments=arguments, progress=progress)
    return CodecRun(out, discoveries, report, assembled)
