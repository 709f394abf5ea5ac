"""``dexter evaluate``: render the pieces with each renderer, score them against every human.

Every renderer is scored from the MIDI file it would write, read back and encoded as the
human performances are (:func:`delivered`): the figures are those of what a user receives.

Pieces come from a store's split or from a list of score and performance files
(``pieces``); renderers from ``renderers``. Every performance, human or rendered, is
decoded against the score once for partitura's performance features. ``workers > 1``
spreads the pieces over spawned processes (each builds its own renderers).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.store import CodecStore
from ..errors import DexterError
from ..sampling import SamplingOptions
from .metrics import METRICS, Performance, dynamics_levels, human_ceiling, score_against_humans
from .pieces import Piece, Selection, list_pieces, store_pieces
from .baselines import make_renderer
from .levels import human_level_ceiling, level_metrics, summarise_levels
from .paper import human_paper_ceiling, paper_metrics
from .report import EvaluationReport
from .statistics import _finite_stat, _nanmedian, against_references, ratios_to_human

Progress = Callable[[str, int, int], None]


def _with_features(piece: Piece, perf: Performance, problems: list[str], who: str) -> Performance:
    """``perf`` with partitura's performance features computed against the piece's score."""
    from ..data.perf_features import performance_features

    try:
        perf.features = performance_features(piece.score, perf.p_codec, perf.mask)
    except Exception as exc:  # a feature that cannot be computed leaves its metrics NaN, not the piece unscored
        problems.append(f"{who} on {piece.key}: performance features failed ({type(exc).__name__}: {exc})")
    return perf


def delivered(piece: Piece, perf: Performance) -> Performance:
    """What a renderer's codec becomes in the MIDI file it would write, read back (a file's reading as it is)."""
    from ..data.delivered import delivered_codec

    if perf.from_file:
        return perf
    p, mask = delivered_codec(piece.score, perf.p_codec)
    return Performance(p, mask, from_file=True)


def evaluate_piece(piece: Piece, made: dict) -> tuple[list[dict], list[str], dict[str, Performance]]:
    """Every renderer on one piece: rows (human ceiling first), problems, and the rendered performances."""
    from ..data.vocab import S_CODEC_NAMES

    problems = list(piece.entry.get("problems", []))
    if piece.entry.get("unreadable"):
        return [], problems, {}
    if not piece.humans:
        problems.append(f"{piece.key}: no human performance, not evaluated")
        return [], problems, {}
    level = dynamics_levels(piece.onset_beat, piece.s_codec, S_CODEC_NAMES)
    for name, h in zip(piece.names, piece.humans):
        _with_features(piece, h, problems, f"human {name}")
    ceiling = human_ceiling(piece.onset_beat, piece.humans, level)
    if ceiling is not None:
        ceiling.update(human_level_ceiling(piece.onset_beat, piece.humans))
        ceiling.update(human_paper_ceiling(piece.onset_beat, piece.humans, piece.s_codec, S_CODEC_NAMES))
    if ceiling is None:
        problems.append(f"{piece.key}: one human performance only, no human-to-human reference")
    rows = [{"piece": piece.key, "renderer": "human", "n_humans": len(piece.humans),
             **(ceiling or {k: float("nan") for k in METRICS})}]
    preds = {}
    for spec, renderer in made.items():
        try:
            out = renderer(piece)
            samples = [_with_features(piece, delivered(piece, perf), problems, spec)
                       for perf in (out if isinstance(out, list) else [out])]
            preds[spec] = samples[0]
            rows_k = [{**score_against_humans(piece.onset_beat, perf, piece.humans, level),
                       **level_metrics(piece.onset_beat, perf, piece.humans),
                       **paper_metrics(piece.onset_beat, perf, piece.humans, piece.s_codec, S_CODEC_NAMES)}
                      for perf in samples]
            row = rows_k[0] if len(rows_k) == 1 else {k: _finite_stat([r[k] for r in rows_k], np.mean) for k in METRICS}
        except DexterError as exc:
            problems.append(f"{spec} on {piece.key}: {exc}")
            row = {k: float("nan") for k in METRICS}
        rows.append({"piece": piece.key, "renderer": spec, "n_humans": len(piece.humans), **row})
    piece._score = None  # the parsed score is not needed again (and not sent between processes)
    return rows, problems, preds


_WORKER: dict = {}


def _worker_init(pieces: list[Piece], made: dict) -> None:
    import torch

    torch.set_num_threads(1)
    _WORKER["pieces"], _WORKER["made"] = pieces, made


def _worker_run(k: int):
    return evaluate_piece(_WORKER["pieces"][k], _WORKER["made"])


def evaluate_store(store_path: Path | None, renderers: list[str], options: SamplingOptions | dict | None = None, *,
                   checkpoint: Path | None = None, selection: Selection | None = None, workers: int = 1,
                   progress: Progress | None = None) -> EvaluationReport:
    """Evaluate renderers on whole pieces against every human performance.

    Parameters
    ----------
    store_path : Path or None
        Codec store: its split gives the pieces (unless ``selection.pieces_list``), and its train
        split fits the linear reference and gives deadpan's fallbacks.
    renderers : list of str
        ``dexter``, ``deadpan``, ``linear``, ``external:DIR`` (:func:`make_renderer`).
    options : SamplingOptions or dict, optional
        The dexter renderer's sampling, or the caller's choices over the model's recorded decoding.
        With ``num_samples`` > 1 it plays that many interpretations of each piece (one batched run);
        its metrics for the piece are their mean (the plots show the first).
    checkpoint : Path, optional
        The dexter renderer's model (default: the bundled one).
    selection : Selection, optional
        Which pieces: a split (default the test split) or a list of files, and a limit.
    workers : int
        Processes over pieces (1: in this process).

    Returns
    -------
    EvaluationReport
        ``summary[renderer]`` and ``summary["human"]``: median over pieces of each metric.
    """
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    t0 = time.perf_counter()
    sel = selection or Selection()
    listed = sel.pieces_list
    store = CodecStore(store_path) if store_path is not None and (listed is None or Path(store_path).exists()) else None
    pieces = list_pieces(listed, sel.limit, workers) if listed else store_pieces(store, sel.split, sel.limit)
    if not pieces:
        raise DexterError(f"no {sel.split} piece with human performances in {store_path}")
    made = {spec: make_renderer(spec, store, checkpoint, options) for spec in renderers}
    report = EvaluationReport(settings={"split": None if listed else sel.split, "pieces": len(pieces),
                                        **{spec: r.settings() for spec, r in made.items() if hasattr(r, "settings")}})
    results: list = [None] * len(pieces)
    if workers > 1 and len(pieces) > 1:
        for piece in pieces:
            piece._score = None  # a parsed score does not travel; each worker parses its own pieces
        with ProcessPoolExecutor(min(workers, len(pieces)), mp_context=mp.get_context("spawn"),
                                 initializer=_worker_init, initargs=(pieces, made)) as pool:
            futures = {pool.submit(_worker_run, k): k for k in range(len(pieces))}
            for done, fut in enumerate(as_completed(futures), 1):
                results[futures[fut]] = fut.result()
                if progress:
                    progress("evaluate", done, len(pieces))
    else:
        for k, piece in enumerate(pieces):
            results[k] = evaluate_piece(piece, made)
            if progress:
                progress("evaluate", k + 1, len(pieces))
    for piece, (rows, problems, preds) in zip(pieces, results):
        report.per_piece += rows
        report.problems += problems
        if rows:
            report.curves.append((piece, preds))
    if not report.per_piece:
        raise DexterError("no piece could be evaluated: " + "; ".join(report.problems[:3]))
    for name in ["human", *made]:
        rows = [r for r in report.per_piece if r["renderer"] == name]
        report.summary[name] = {k: _nanmedian([r[k] for r in rows]) for k in METRICS}
        report.summary[name].update(summarise_levels(rows))  # the in-range metrics: a share of the pieces
        report.summary[name]["pieces"] = sum(1 for r in rows if np.isfinite(r["velocity_r"]))
    for name in made:  # a renderer that could not be scored anywhere makes the comparison meaningless
        if report.summary[name]["pieces"] == 0:
            mine = [p for p in report.problems if p.startswith(f"{name} on ")]
            raise DexterError(f"{name} could not be scored on any of the {len(pieces)} pieces"
                              + (f" (first problem: {mine[0]})" if mine else ""))
    report.ratios = {name: ratios_to_human(report.per_piece, name) for name in made}
    report.paired = against_references(report.per_piece, list(made))
    report.seconds = time.perf_counter() - t0
    return report
