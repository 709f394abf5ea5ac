"""Render every score under a folder with one model load."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DexterError
from .render import Extras, Progress, load_model, render_score
from .sampling import SamplingOptions, resolve


@dataclass
class BatchResult:
    """What a batch render produced: ``(score, outputs)`` rendered, ``(score, reason)`` skipped."""

    rendered: list[tuple[Path, list[Path]]]
    skipped: list[tuple[Path, str]]
    n_notes: int
    seconds: float
    renamed: list[tuple[Path, Path]] = field(default_factory=list)  # scores sharing a stem: (score, its output)


def find_scores(folder: Path, exclude: Path | None = None) -> list[Path]:
    """Score files under ``folder`` (recursively, sorted), by extension; not our own outputs
    (``*.performance.mid``, anything under ``exclude``)."""
    from .data.scores import SCORE_SUFFIXES

    folder = Path(folder)
    if not folder.is_dir():
        raise DexterError(f"not a folder: {folder}")
    skip = Path(exclude).resolve() if exclude is not None else None
    found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SCORE_SUFFIXES
                   and not p.name.endswith(".performance.mid")
                   and not (skip is not None and skip in p.resolve().parents))
    if not found:
        raise DexterError(f"no score file (.musicxml .xml .mxl .mei .krn .mid) under {folder}")
    return found


def render_batch(folder: Path, out_dir: Path | None = None, options: SamplingOptions | dict | None = None, *,
                 checkpoint: Path | None = None, unfold: bool = True, tempo_map: bool = False,
                 progress: Progress | None = None) -> BatchResult:
    """Render every score under a folder with one model load; a score that fails is skipped.

    Parameters
    ----------
    folder : Path
        Searched recursively for score files (:func:`find_scores`).
    out_dir : Path, optional
        Where ``<relative folder>/<stem>.mid`` go (default: ``<stem>.performance.mid``
        beside each score).
    options : SamplingOptions or dict, optional
        As for :func:`~dexter_cli.render.render_score`, resolved once for every score.
    checkpoint : Path, optional
        Default: the bundled model.
    unfold : bool
        Play repeats (maximal unfolding) or the scores as written.
    tempo_map : bool
        Write each MIDI on its score's bars and beats (:class:`~dexter_cli.render.Extras`).
    progress : callable, optional
        ``progress("scores", done, total)``.

    Returns
    -------
    BatchResult
    """
    import gc

    t0 = time.perf_counter()
    folder = Path(folder)
    scores = find_scores(folder, exclude=out_dir if out_dir is not None and Path(out_dir) != folder else None)
    inputs = {p.resolve() for p in scores}
    loaded = load_model(checkpoint)
    opts = resolve(loaded[1], options)  # a bad option fails once, before any work
    rendered, skipped, n_notes = [], [], 0
    outputs, renamed = output_names(scores, folder, out_dir)
    for k, score in enumerate(scores):
        out = outputs[score]
        try:
            if out.resolve() in inputs:
                raise DexterError(f"its output {out} would overwrite a score of the batch")
            res = render_score(score, out, opts, checkpoint=loaded, unfold=unfold, extras=Extras(tempo_map=tempo_map))
            rendered.append((score, res.outputs))
            n_notes += res.n_notes
            res = None
        except DexterError as exc:
            skipped.append((score, str(exc)))
        except Exception as exc:  # one score's bug must not lose the rest of a long batch
            skipped.append((score, f"unexpected {type(exc).__name__}: {exc}"))
        gc.collect()  # partitura's object graphs are cyclic: free each score before the next
        if progress:
            progress("scores", k + 1, len(scores))
    return BatchResult(rendered, skipped, n_notes, time.perf_counter() - t0, [(sc, outputs[sc]) for sc in renamed])


def output_names(scores: list[Path], folder: Path, out_dir: Path | None) -> tuple[dict[Path, Path], list[Path]]:
    """Each score's MIDI: ``<out_dir>/<relative folder>/<stem>.mid``, or ``<stem>.performance.mid``
    beside it; scores that share a stem in one folder (``x.mxl`` and ``x.musicxml``) keep their
    suffix in the name (``x.mxl.mid``) so that no output replaces another. Returns the outputs and
    the scores so renamed."""
    def base(score: Path) -> Path:
        rel = score.relative_to(folder)
        return Path(out_dir) / rel.parent / rel.stem if out_dir is not None else score.with_name(score.stem)

    clash: dict[Path, int] = {}
    for score in scores:
        clash[base(score)] = clash.get(base(score), 0) + 1
    ending = ".mid" if out_dir is not None else ".performance.mid"
    renamed = [score for score in scores if clash[base(score)] > 1]
    names = {score: base(score).with_name(base(score).name + (score.suffix if score in renamed else "") + ending)
             for score in scores}
    return names, renamed
