"""``dexter evaluate``: render the pieces with each renderer, score them against every human.

Every renderer is scored from the MIDI file it would write, read back and encoded as the
human performances are (:func:`delivered`): the figures are those of what a user receives.

Pieces come from a store's split or from a list of score and performance files
(``pieces``); renderers from ``renderers``. Every performance, human or rendered, is
decoded against the score once for partitura's performance features. ``workers > 1``
spreads the pieces over spawned processes (each builds its own renderers).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .data.store import CodecStore
from .errors import DexterError
from .evaluate import METRICS, Performance, dynamics_levels, human_ceiling, score_against_humans
from .pieces import Piece, list_pieces, store_pieces
from .renderers import make_renderer

Progress = Callable[[str, int, int], None]


@dataclass
class EvaluationReport:
    """Per renderer and piece: metric medians over humans, the human ceiling, problems."""

    per_piece: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    curves: list[tuple[Piece, dict]] = field(default_factory=list)  # (piece, {renderer: Performance})
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    ratios: dict = field(default_factory=dict)  # renderer -> ratios_to_human(...)
    settings: dict = field(default_factory=dict)  # what was evaluated: split, and each model renderer's sampling
    paired: dict = field(default_factory=dict)  # renderer -> reference -> metric -> paired_comparison(...)


def _with_features(piece: Piece, perf: Performance, problems: list[str], who: str) -> Performance:
    """``perf`` with partitura's performance features computed against the piece's score."""
    from .data.perf_features import performance_features

    try:
        perf.features = performance_features(piece.score, perf.p_codec, perf.mask)
    except Exception as exc:  # a feature that cannot be computed leaves its metrics NaN, not the piece unscored
        problems.append(f"{who} on {piece.key}: performance features failed ({type(exc).__name__}: {exc})")
    return perf


def delivered(piece: Piece, perf: Performance) -> Performance:
    """What a renderer's codec becomes in the MIDI file it would write, read back (a file's reading as it is)."""
    from .data.delivered import delivered_codec

    if perf.from_file:
        return perf
    p, mask = delivered_codec(piece.score, perf.p_codec)
    return Performance(p, mask, from_file=True)


def evaluate_piece(piece: Piece, made: dict) -> tuple[list[dict], list[str], dict[str, Performance]]:
    """Every renderer on one piece: rows (human ceiling first), problems, and the rendered performances."""
    from .data.vocab import S_CODEC_NAMES

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
            rows_k = [score_against_humans(piece.onset_beat, perf, piece.humans, level) for perf in samples]
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


def evaluate_store(store_path: Path | None, renderers: list[str], *, checkpoint: Path | None = None,
                   split: str = "test", pieces_list: Path | None = None, limit: int | None = None,
                   sampler: str = "dpm++", steps: int | None = None, seed: int = 0, guidance: float | None = None, overlap: float = 0.5,
                   temperature: float | None = None, samples: int = 1, workers: int = 1,
                   spread: tuple[float, float, float] | None = None, curves: str | None = None,
                   progress: Progress | None = None) -> EvaluationReport:
    """Evaluate renderers on whole pieces against every human performance.

    Parameters
    ----------
    store_path : Path or None
        Codec store: its ``split`` gives the pieces (unless ``pieces_list``), and its train
        split fits the linear reference and gives deadpan's fallbacks.
    pieces_list : Path, optional
        CSV/TSV of ``score,performance[,alignment]`` rows to evaluate instead of a split.
    overlap, temperature : float
        Window overlap and initial-noise scale of the dexter renderer (as ``render_score``).
    spread : (float, float, float), optional
        Its gains on the curves' range and the voicing (as ``render_score``; None: the model's default).
    curves : {"sample", "mean"}, optional
        Where its curves come from (as ``render_score``; None: the model's default).
    samples : int
        Interpretations of each piece the dexter renderer plays (one batched run); its metrics
        for the piece are their mean (the plots show the first).
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
    store = CodecStore(store_path) if store_path is not None and (pieces_list is None or Path(store_path).exists()) else None
    pieces = list_pieces(pieces_list, limit, workers) if pieces_list else store_pieces(store, split, limit)
    if not pieces:
        raise DexterError(f"no {split} piece with human performances in {store_path}")
    made = {spec: make_renderer(spec, store, checkpoint, sampler, steps, seed, guidance, overlap, temperature, samples,
                                 spread, curves)
            for spec in renderers}
    report = EvaluationReport(settings={"split": None if pieces_list else split, "pieces": len(pieces),
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


def _is_finite(v: float | None) -> bool:
    """A number, not NaN or infinite (JSON NaN is read back as None)."""
    return v is not None and math.isfinite(v)


def ratios_to_human(per_piece: list[dict], renderer: str, metrics: tuple[str, ...] = ("tempo_r", "velocity_r"), *,
                    boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, dict]:
    """Like-for-like ratios of a renderer's median to the human-to-human median, with a bootstrap interval.

    Only the pieces with a human-to-human value (two or more human performances) count, for
    both medians. The interval is the percentile bootstrap over those pieces, resampled with
    their pairs (renderer, human) kept together.

    Parameters
    ----------
    per_piece : list of dict
        ``EvaluationReport.per_piece`` rows (``piece``, ``renderer`` and the metrics; JSON
        ``None`` is read as missing).
    renderer : str
        Whose ratio.
    boot, level, seed : int, float, int
        Bootstrap resamples, the interval's coverage, and the resampling seed.

    Returns
    -------
    dict
        Per metric with at least two such pieces: ``pieces``, ``human`` and ``model`` (the
        medians), ``ratio``, ``low`` and ``high`` (the interval; NaN where resamples had a
        human median <= 0).
    """
    by: dict = {}
    for row in per_piece:
        by.setdefault(row["piece"], {})[row["renderer"]] = row
    rng = np.random.default_rng(seed)
    out = {}
    for m in metrics:
        pairs = np.array([(v["human"][m], v[renderer][m]) for v in by.values()
                          if "human" in v and renderer in v and _is_finite(v["human"][m]) and _is_finite(v[renderer][m])])
        if len(pairs) < 2:
            continue
        human, model = pairs[:, 0], pairs[:, 1]
        idx = rng.integers(0, len(pairs), size=(boot, len(pairs)))  # resampled pieces
        hb, mb = np.median(human[idx], axis=1), np.median(model[idx], axis=1)
        rb = mb[hb > 0] / hb[hb > 0]
        low, high = (np.quantile(rb, [(1 - level) / 2, (1 + level) / 2]) if len(rb) == boot
                     else (float("nan"), float("nan")))
        h, d = float(np.median(human)), float(np.median(model))
        out[m] = {"pieces": len(pairs), "human": h, "model": d, "ratio": d / h if h > 0 else float("nan"),
                  "low": float(low), "high": float(high)}
    return out


REFERENCES = ("deadpan", "linear")  # the quality bar: clearly above deadpan and above the linear reference


def against_references(per_piece: list[dict], renderers: list[str],
                       metrics: tuple[str, ...] = ("tempo_r", "velocity_r")) -> dict[str, dict]:
    """Every renderer against the references evaluated with it, piece by piece (:func:`paired_comparison`).

    A reference is compared with the references before it in ``REFERENCES`` only (linear against
    deadpan), and nothing with itself.

    Returns
    -------
    dict
        ``{renderer: {reference: {metric: paired_comparison(...)}}}``.
    """
    rows = {name: [r for r in per_piece if r["renderer"] == name] for name in renderers}
    out: dict = {}
    for name in renderers:
        earlier = REFERENCES[:REFERENCES.index(name)] if name in REFERENCES else REFERENCES
        refs = [ref for ref in earlier if ref in rows]
        if refs:
            out[name] = {ref: {m: paired_comparison(rows[name], rows[ref], m) for m in metrics} for ref in refs}
    return out


def paired_comparison(rows_a: list[dict], rows_b: list[dict], metric: str, *, boot: int = 4000,
                      level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Piece by piece, ``a`` minus ``b`` on one metric: the median difference with a bootstrap interval, and a sign test.

    Parameters
    ----------
    rows_a, rows_b : list of dict
        One renderer's rows each (``piece`` and the metric), e.g. two models' results on the same
        split; only pieces where both values are finite count.
    metric : str
        A column of the rows (higher is taken as better for ``better``).
    boot, level, seed : int, float, int
        Bootstrap resamples of the pieces, the interval's coverage, the resampling seed.

    Returns
    -------
    dict
        ``pieces``, ``median`` (of the differences), ``low`` and ``high``, ``mean`` (of the
        differences: the paired non-inferiority statistic of the selection rules), ``better``
        (pieces where ``a`` is higher) and ``p_sign`` (one-sided exact sign test that ``a`` is
        higher more often; ties count against).
    """
    b = {r["piece"]: r[metric] for r in rows_b}
    d = np.array([r[metric] - b[r["piece"]] for r in rows_a
                  if r["piece"] in b and _is_finite(r[metric]) and _is_finite(b[r["piece"]])])
    n = len(d)
    if n == 0:
        return {"pieces": 0, "median": float("nan"), "low": float("nan"), "high": float("nan"),
                "mean": float("nan"), "better": 0, "p_sign": float("nan")}
    idx = np.random.default_rng(seed).integers(0, n, size=(boot, n))
    low, high = np.quantile(np.median(d[idx], axis=1), [(1 - level) / 2, (1 + level) / 2])
    k = int((d > 0).sum())
    p_sign = sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n  # P(X >= k), X ~ Bin(n, 1/2)
    return {"pieces": n, "median": float(np.median(d)), "low": float(low), "high": float(high),
            "mean": float(d.mean()), "better": k, "p_sign": float(p_sign)}


def _finite_stat(values: list[float], stat: Callable = np.median) -> float:
    """``stat`` of the finite values (NaN when there are none)."""
    v = np.array([x for x in values if np.isfinite(x)])
    return float(stat(v)) if len(v) else float("nan")


def _nanmedian(values: list[float]) -> float:
    return _finite_stat(values, np.median)


def _json_ready(value):
    """``value`` with every non-finite float (in nested dicts and lists) made None: JSON has no NaN."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_report(report: EvaluationReport, out: Path) -> list[Path]:
    """``results.json``, ``results.csv`` and the plots into ``out``; returns the files written."""
    import csv
    import io
    import json

    from .fileio import write_text
    from .plots import plot_evaluation_summary, plot_piece_curves

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {**_json_ready({"summary": report.summary, "per_piece": report.per_piece, "ratios": report.ratios,
                              "paired": report.paired}),
               "problems": report.problems, "seconds": report.seconds, "settings": report.settings}
    write_text(out / "results.json", json.dumps(payload, indent=2) + "\n")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["piece", "renderer", "n_humans", *METRICS], lineterminator="\n")
    w.writeheader()
    for row in report.per_piece:
        w.writerow(row)
    write_text(out / "results.csv", buf.getvalue())
    files = [out / "results.json", out / "results.csv"]
    files.append(plot_evaluation_summary(out / "summary.png", report.summary))
    for k, (piece, preds) in enumerate(report.curves):
        name = piece.entry["piece"].replace("/", "_")
        files.append(plot_piece_curves(out / f"curves_{k:02d}_{name}.png", piece, preds))
    return files
