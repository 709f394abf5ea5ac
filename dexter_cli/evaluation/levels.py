"""Level metrics: is a performance's tempo, and its loudness, where the humans play the piece?

Curve r ignores level. A rendering's tempo level is the median of its onset-level tempo curve
(BPM, :func:`~dexter_cli.evaluation.metrics.onset_curves`), its loudness level the median MIDI
velocity of its notes. Against the human performances of the piece:

- ``tempo_level_err``: |log2(rendered / median of the humans' levels)| (0.15: 11 % off);
- ``tempo_level_in_range``: 1 when the rendered level lies within the humans' range widened by
  10 % at each end, else 0 (the summary is the share of pieces);
- ``velocity_level_err`` and ``velocity_level_in_range``: the same for loudness, the error in MIDI
  velocity.

The human ceiling takes each human against the others (leave one out).
"""

from __future__ import annotations

import numpy as np

from ..data.codec import Row
from .metrics import LEVEL_METRICS, Performance, onset_curves

RANGE_MARGIN = 0.10  # the humans' range widened by 10 % at each end


def tempo_level(onset_beat: np.ndarray, perf: Performance) -> float:
    """Median onset-level tempo in BPM (NaN when no onset has one)."""
    tempo = onset_curves(onset_beat, perf)[0]
    return float(np.nanmedian(tempo)) if np.isfinite(tempo).any() else float("nan")


def velocity_level(perf: Performance) -> float:
    """Median MIDI velocity of the played notes (NaN when none)."""
    m = perf.mask.astype(bool)
    return float(np.median(perf.p_codec[m, Row.VELOCITY] * 127)) if m.any() else float("nan")


def _against(value: float, others: np.ndarray, log: bool) -> tuple[float, float]:
    """(error, in range) of ``value`` against the levels ``others``."""
    others = others[np.isfinite(others)]
    if not np.isfinite(value) or len(others) == 0:
        return float("nan"), float("nan")
    ref = float(np.median(others))
    err = abs(np.log2(value / ref)) if log else abs(value - ref)
    lo, hi = others.min() * (1 - RANGE_MARGIN), others.max() * (1 + RANGE_MARGIN)
    return float(err), float(lo <= value <= hi)


def level_metrics(onset_beat: np.ndarray, pred: Performance, humans: list[Performance]) -> dict[str, float]:
    """The level metrics of ``pred`` against the humans' levels."""
    t_err, t_in = _against(tempo_level(onset_beat, pred), np.array([tempo_level(onset_beat, h) for h in humans]), True)
    v_err, v_in = _against(velocity_level(pred), np.array([velocity_level(h) for h in humans]), False)
    return {"tempo_level_err": t_err, "tempo_level_in_range": t_in, "velocity_level_err": v_err,
            "velocity_level_in_range": v_in}


def human_level_ceiling(onset_beat: np.ndarray, humans: list[Performance]) -> dict[str, float]:
    """Each human against the others: the median error and the share in range."""
    rows = [level_metrics(onset_beat, h, humans[:i] + humans[i + 1:]) for i, h in enumerate(humans)]
    return summarise_levels(rows)


def summarise_levels(rows: list[dict[str, float]]) -> dict[str, float]:
    """Errors: the median of the finite values; in range: their mean (a share)."""
    out = {}
    for k in LEVEL_METRICS:
        vals = np.array([r[k] for r in rows if r.get(k) is not None and np.isfinite(r[k])])
        out[k] = float("nan") if not len(vals) else float(vals.mean() if k.endswith("in_range") else np.median(vals))
    return out
