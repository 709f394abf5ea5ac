"""The DExter paper's evaluation definitions, beside dexter's own, named ``paper_*``.

dexter's metrics (:mod:`~dexter_cli.evaluation.metrics`) compare two performances with histogram
KL divergences and absolute deviations. The paper's tables use other definitions; these give its
figures on dexter's renderings, so that they can be set beside the paper's:

- ``paper_dyn_consistency_std``: how much the velocity fluctuates under one dynamic marking, the
  mean over the marked levels of the std of the velocity (MIDI) of the notes under each (ATEPP's
  ``dynamics_attributes``); the performance's own value.
- ``paper_dyn_ramp_cor``: how a performance carries out the hairpins, the Pearson r of an onset's
  place in a run of onsets marked crescendo (or diminuendo, sign flipped) with its velocity, the
  mean over runs of three or more played onsets; the performance's own value.
- ``paper_async_pitch_cor``: partitura's asynchrony ``pitch_cor`` (melody lead), the mean over onsets.
- ``*_reldev``: the relative deviation, |value - the humans' mean| / the humans' standard deviation
  (NaN with fewer than two humans or no spread among them).
- ``paper_<curve>_kde_kl``: KL(rendered || human) between Gaussian kernel density estimates
  (Scott's bandwidth) on a 512-point grid, for the onset-level tempo (log BPM) and velocity, and
  the per-note timing, articulation and pedal, the median over the humans (NaN against a human
  whose values are constant, e.g. no pedal at all). dexter's own ``*_kl`` is KL(human || rendered)
  between 32-bin histograms.
"""

from __future__ import annotations

import numpy as np

from ..data.codec import Row
from .metrics import DYN_LEVELS, PAPER_METRICS, Performance, onset_curves, pearson

OWN = PAPER_METRICS[:3]  # the performance's own values
KDE_CURVES = ("tempo", "velocity", "timing", "articulation", "pedal")
GRID = 512  # points of the density grid


def consistency_std(velocity: np.ndarray, level: np.ndarray) -> float:
    """Mean over the marked levels of the std of the velocity of the notes under each.

    Parameters
    ----------
    velocity : ndarray, shape (n,)
        MIDI velocity per note, NaN for unplayed notes.
    level : ndarray, shape (n,)
        Marked dynamic level per note, NaN where no marking applies.

    Returns
    -------
    float
        NaN when no level has two played notes.
    """
    ok = np.isfinite(velocity) & np.isfinite(level)
    stds = [float(np.std(velocity[ok & (level == v)])) for v in np.unique(level[ok])
            if (ok & (level == v)).sum() >= 2]
    return float(np.mean(stds)) if stds else float("nan")


def ramp_cor(velocity: np.ndarray, ramp: np.ndarray) -> float:
    """Mean over the runs of ``ramp`` of r(place in the run, velocity), with the run's direction.

    Parameters
    ----------
    velocity : ndarray, shape (G,)
        Velocity per onset, NaN where none was played.
    ramp : ndarray, shape (G,)
        +1 under a crescendo, -1 under a diminuendo, 0 elsewhere, per onset.

    Returns
    -------
    float
        0 for a flat run; NaN without a run of three played onsets.
    """
    rs, start = [], 0
    for i in range(1, len(ramp) + 1):
        if i == len(ramp) or ramp[i] != ramp[start]:
            if ramp[start] != 0:
                v = velocity[start:i]
                ok = np.isfinite(v)
                if ok.sum() >= 3:
                    r = pearson(np.arange(i - start)[ok], v[ok])
                    rs.append(ramp[start] * (0.0 if np.isnan(r) else r))  # flat: no ramp at all
            start = i
    return float(np.mean(rs)) if rs else float("nan")


def kde_kl(p_values: np.ndarray, q_values: np.ndarray) -> float:
    """KL(P || Q) between Gaussian kernel density estimates of two samples, on a common grid.

    Parameters
    ----------
    p_values, q_values : ndarray
        The samples (non-finite values ignored): P the rendered, Q the human.

    Returns
    -------
    float
        NaN with fewer than three values in either, or a constant Q.

    Notes
    -----
    Each density is a binned KDE: the sample's histogram over :data:`GRID` bins of the common range
    (padded by a tenth at each end), smoothed with a Gaussian of Scott's bandwidth
    (std * n ** -1/5), as exact as the grid for the sizes compared here and linear in the sample size.
    """
    p, q = p_values[np.isfinite(p_values)], q_values[np.isfinite(q_values)]
    if len(p) < 3 or len(q) < 3 or np.std(q) < 1e-9:
        return float("nan")
    lo, hi = min(p.min(), q.min()), max(p.max(), q.max())
    pad = 0.1 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    floor = (hi - lo) / GRID  # a constant sample: a kernel one bin wide
    dp, dq = (_binned_kde(v, lo, hi, max(float(np.std(v)) * len(v) ** -0.2, floor)) for v in (p, q))
    return float(np.sum(dp * np.log(dp / dq)))


def _binned_kde(values: np.ndarray, lo: float, hi: float, bandwidth: float) -> np.ndarray:
    counts, _ = np.histogram(values, bins=GRID, range=(lo, hi))
    sigma = bandwidth / ((hi - lo) / GRID)  # in bins
    half = int(np.ceil(4 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    dens = np.convolve(counts.astype(np.float64), kernel / kernel.sum(), mode="full")[half: half + GRID] + 1e-12
    return dens / dens.sum()


def own_values(onset_beat: np.ndarray, perf: Performance, s_codec: np.ndarray,
               names: list[str] | tuple[str, ...]) -> dict[str, float]:
    """The performance's own consistency_std, ramp_cor and mean pitch_cor.

    Parameters
    ----------
    onset_beat : ndarray, shape (n,)
        Score onset of each note (canonical order).
    perf : Performance
    s_codec : ndarray, shape (n, F)
        The score features, read for the dynamics markings and the hairpins.
    names : sequence of str
        The s_codec's feature names.

    Returns
    -------
    dict
        The three ``paper_*`` values (NaN where undefined).
    """
    names = list(names)
    d = np.asarray(s_codec)[:, [names.index(c) for c in DYN_LEVELS]]
    level = np.where(d.max(1) > 0.5, d.argmax(1).astype(float), np.nan)
    m = perf.mask.astype(bool)
    velocity = np.where(m, perf.p_codec[:, Row.VELOCITY] * 127.0, np.nan)
    _, first, group = np.unique(onset_beat, return_index=True, return_inverse=True)
    s = np.asarray(s_codec)
    hairpin = (s[:, names.index("cresc")] > 0.5).astype(int) - (s[:, names.index("dim")] > 0.5).astype(int)
    pitch_cor = np.nan
    if perf.features is not None and np.isfinite(perf.features["async_pitch_cor"]).any():
        f = perf.features["async_pitch_cor"]
        per_onset = np.bincount(group[np.isfinite(f)], weights=f[np.isfinite(f)], minlength=len(first))
        n = np.bincount(group[np.isfinite(f)], minlength=len(first))
        pitch_cor = float(np.mean(per_onset[n > 0] / n[n > 0]))
    return {"paper_dyn_consistency_std": consistency_std(velocity, level),
            "paper_dyn_ramp_cor": ramp_cor(onset_curves(onset_beat, perf)[1], hairpin[first]),
            "paper_async_pitch_cor": pitch_cor}


def _samples(onset_beat: np.ndarray, perf: Performance) -> dict[str, np.ndarray]:
    tempo, velocity = onset_curves(onset_beat, perf)
    m = perf.mask.astype(bool)
    return {"tempo": np.log(tempo), "velocity": velocity, "timing": perf.p_codec[m, Row.TIMING],
            "articulation": perf.p_codec[m, Row.ARTICULATION], "pedal": perf.p_codec[m, Row.PEDAL]}


def paper_metrics(onset_beat: np.ndarray, pred: Performance, humans: list[Performance], s_codec: np.ndarray,
                  names: list[str] | tuple[str, ...]) -> dict[str, float]:
    """Every ``paper_*`` metric of ``pred`` against the human performances of its piece.

    Parameters
    ----------
    onset_beat, s_codec, names
        As for :func:`own_values`.
    pred : Performance
    humans : list of Performance

    Returns
    -------
    dict
        :data:`~dexter_cli.evaluation.metrics.PAPER_METRICS`, NaN where undefined.
    """
    theirs = [own_values(onset_beat, h, s_codec, names) for h in humans]
    return _against(own_values(onset_beat, pred, s_codec, names), _samples(onset_beat, pred), theirs,
                    [_samples(onset_beat, h) for h in humans])


def human_paper_ceiling(onset_beat: np.ndarray, humans: list[Performance], s_codec: np.ndarray,
                        names: list[str] | tuple[str, ...]) -> dict[str, float]:
    """Each human against the others (leave one out), the medians; arguments as :func:`paper_metrics`."""
    own = [own_values(onset_beat, h, s_codec, names) for h in humans]  # each human's values, once
    samples = [_samples(onset_beat, h) for h in humans]
    rows = [_against(own[i], samples[i], own[:i] + own[i + 1:], samples[:i] + samples[i + 1:])
            for i in range(len(humans))]
    return {k: _median([r[k] for r in rows]) for k in PAPER_METRICS}


def _against(mine: dict[str, float], ours: dict[str, np.ndarray], theirs: list[dict[str, float]],
             refs: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """The ``paper_*`` metrics of one performance's values and samples against the humans'."""
    out = dict(mine)
    for key in OWN:
        vals = np.array([t[key] for t in theirs if np.isfinite(t[key])])
        spread = float(np.std(vals, ddof=1)) if len(vals) >= 2 else 0.0
        out[f"{key}_reldev"] = abs(mine[key] - float(vals.mean())) / spread if spread > 1e-9 else float("nan")
    for k in KDE_CURVES:
        kls = [kde_kl(ours[k], r[k]) for r in refs]
        kls = [v for v in kls if np.isfinite(v)]
        out[f"paper_{k}_kde_kl"] = float(np.median(kls)) if kls else float("nan")
    return out


def _median(values: list[float]) -> float:
    v = np.array([x for x in values if np.isfinite(x)])
    return float(np.median(v)) if len(v) else float("nan")
