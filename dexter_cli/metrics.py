"""Metrics over arrays (no printing): curve correlations and codec errors."""

from __future__ import annotations

import numpy as np


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two 1-D arrays; NaN when either is constant or shorter than 3."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 3 or a.std() < 1e-12 or b.std() < 1e-12:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def segment_curve_scores(pred: np.ndarray, label: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Tempo (log beat_period) and velocity curve correlation between predicted and label p_codec.

    Parameters
    ----------
    pred, label : (B, N, 5) raw p_codec
    mask : (B, N) bool

    Returns
    -------
    dict
        ``tempo_r`` and ``velocity_r`` (mean over segments with a defined r),
        and ``mse_<row>`` in raw codec units over masked notes.
    """
    tempo, vel = [], []
    for p, l, m in zip(pred, label, mask.astype(bool)):
        if m.sum() < 3:
            continue
        tempo.append(pearson(np.log(np.maximum(p[m, 0], 1e-6)), np.log(np.maximum(l[m, 0], 1e-6))))
        vel.append(pearson(p[m, 1], l[m, 1]))
    out = {"tempo_r": float(np.nanmean(tempo)) if np.isfinite(tempo).any() else float("nan"),
           "velocity_r": float(np.nanmean(vel)) if np.isfinite(vel).any() else float("nan")}
    m = mask.astype(bool)
    for j, name in enumerate(("beat_period", "velocity", "timing", "articulation_log", "pedal")):
        out[f"mse_{name}"] = float(((pred[..., j] - label[..., j])[m] ** 2).mean()) if m.any() else float("nan")
    return out
