"""Statistics over evaluated pieces: ratios to the human-to-human ceiling and paired comparisons."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

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


LOWER_IS_BETTER = ("_err", "_dev", "_reldev", "_kl")  # metric suffixes of errors, deviations and divergences
REFERENCES = ("deadpan", "linear")  # the quality bar: clearly above deadpan and above the linear reference


def against_references(per_piece: list[dict], renderers: list[str],
                       metrics: tuple[str, ...] = ("tempo_r", "velocity_r", "tempo_level_err",
                                                   "velocity_level_err")) -> dict[str, dict]:
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
        A column of the rows; for ``better``, higher is better, but for an error, a deviation or a
        divergence (``*_err``, ``*_dev``, ``*_kl``) lower is.
    boot, level, seed : int, float, int
        Bootstrap resamples of the pieces, the interval's coverage, the resampling seed.

    Returns
    -------
    dict
        ``pieces``, ``median`` (of the differences), ``low`` and ``high``, ``mean`` (of the
        differences: the paired non-inferiority statistic of the selection rules), ``better``
        (pieces where ``a`` is better) and ``p_sign`` (one-sided exact sign test that ``a`` is
        better more often; ties count against).
    """
    b = {r["piece"]: r.get(metric) for r in rows_b}  # (results written before a metric existed lack it)
    d = np.array([r[metric] - b[r["piece"]] for r in rows_a
                  if r["piece"] in b and _is_finite(r.get(metric)) and _is_finite(b[r["piece"]])])
    n = len(d)
    if n == 0:
        return {"pieces": 0, "median": float("nan"), "low": float("nan"), "high": float("nan"),
                "mean": float("nan"), "better": 0, "p_sign": float("nan")}
    idx = np.random.default_rng(seed).integers(0, n, size=(boot, n))
    low, high = np.quantile(np.median(d[idx], axis=1), [(1 - level) / 2, (1 + level) / 2])
    k = int((d < 0).sum() if metric.endswith(LOWER_IS_BETTER) else (d > 0).sum())
    p_sign = sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n  # P(X >= k), X ~ Bin(n, 1/2)
    return {"pieces": n, "median": float(np.median(d)), "low": float(low), "high": float(high),
            "mean": float(d.mean()), "better": k, "p_sign": float(p_sign)}


def _finite_stat(values: list[float], stat: Callable = np.median) -> float:
    """``stat`` of the finite values (NaN when there are none)."""
    v = np.array([x for x in values if np.isfinite(x)])
    return float(stat(v)) if len(v) else float("nan")


def _nanmedian(values: list[float]) -> float:
    return _finite_stat(values, np.median)
