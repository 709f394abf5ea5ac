"""Whole-piece evaluation metrics over arrays (returns dicts, prints nothing).

Every metric compares a rendered p_codec of a score with a human one over the
same score notes (canonical order). Curves are per distinct score onset: tempo
(BPM = 60 / mean beat_period of the onset's played notes, but the last onset's, winsorised
at 4x its median, compared in log BPM: tempo_dev is the mean |log ratio|; a rendered curve
varying by under 1 % is flat, r 0) and velocity
(mean MIDI velocity). Each metric is reported as the median over all human
references of the piece, next to the same metric computed leave-one-out
between the human performances themselves: the human-to-human ceiling.

Beyond the curves: partitura's performance features per note (``Performance.features``,
computed by ``data.perf_features``): asynchrony delta and pitch correlation, the
articulation key-overlap ratio, the pedal value at onsets, each compared by the
deviation of means (``_dev``), the KL divergence (``_kl``) and per-note correlation
(``_r``); dynamics features: the agreement of the velocity curve with the score's
dynamics markings (Spearman r between marked level and velocity per onset) and the
tempo-velocity correlation of the performance, with their deviation from the human's; and the
voicing of chords (each note's velocity less its onset's mean, over onsets of two or more notes):
its per-note r, the deviation of its mean size, and its KL.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.codec import Row


CURVE_METRICS = ("tempo_r", "tempo_dev", "tempo_kl", "velocity_r", "velocity_dev", "velocity_kl")
NOTE_METRICS = ("timing_kl", "articulation_kl", "pedal_kl")
FEATURE_METRICS = ("async_delta_dev", "async_delta_kl", "async_delta_r", "async_pitch_cor_dev", "async_pitch_cor_kl",
                   "kor_dev", "kor_kl", "kor_r", "pedal_onset_dev", "pedal_onset_kl", "pedal_onset_r")
DYNAMICS_METRICS = ("dyn_agreement", "dyn_agreement_dev", "tempo_vel_r", "tempo_vel_dev")
VOICING_METRICS = ("voicing_r", "voicing_dev", "voicing_kl")
# levels against the humans' (dexter_cli.evaluation.levels; not per-human comparisons)
LEVEL_METRICS = ("tempo_level_err", "tempo_level_in_range", "velocity_level_err", "velocity_level_in_range")
# the DExter paper's definitions (dexter_cli.evaluation.paper; against all the humans at once)
PAPER_METRICS = ("paper_dyn_consistency_std", "paper_dyn_ramp_cor", "paper_async_pitch_cor",
                 "paper_dyn_consistency_std_reldev", "paper_dyn_ramp_cor_reldev", "paper_async_pitch_cor_reldev",
                 "paper_tempo_kde_kl", "paper_velocity_kde_kl", "paper_timing_kde_kl", "paper_articulation_kde_kl",
                 "paper_pedal_kde_kl")
METRICS = (CURVE_METRICS + NOTE_METRICS + FEATURE_METRICS + DYNAMICS_METRICS + VOICING_METRICS + LEVEL_METRICS
           + PAPER_METRICS)
DYN_LEVELS = ("dyn_ppp", "dyn_pp", "dyn_p", "dyn_mp", "dyn_mf", "dyn_f", "dyn_ff", "dyn_fff")  # softest first
TEMPO_CLIP = 4.0  # per-onset tempo kept within [median / 4, median * 4]
# a tempo curve whose log varies less than this (1 %) is flat: below a listener's threshold for a tempo
# change, and within what 1 ms MIDI ticks resolve on short IOIs, so its r would correlate rounding
FLAT_LOG_TEMPO = 0.01


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two 1-D arrays; NaN when either is constant or shorter than 3."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 3 or a.std() < 1e-12 or b.std() < 1e-12:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


@dataclass
class Performance:
    """A p_codec over all notes of a score, with the notes that carry values."""

    p_codec: np.ndarray  # (n, 5) raw
    mask: np.ndarray  # (n,) bool
    features: dict[str, np.ndarray] | None = None  # per-note performance features (data.perf_features)
    from_file: bool = False  # read from a MIDI file (a human's, or a delivered rendering), not a model's codec


def onset_curves(onset_beat: np.ndarray, perf: Performance) -> tuple[np.ndarray, np.ndarray]:
    """Tempo (BPM) and velocity (MIDI) per distinct score onset; NaN where no note was played, and
    the tempo NaN at the last onset (its beat period is a codec convention, not an IOI)."""
    _, group = np.unique(onset_beat, return_inverse=True)
    G = group.max() + 1
    m = perf.mask.astype(bool)
    cnt = np.bincount(group[m], minlength=G).astype(float)
    bp = np.bincount(group[m], weights=perf.p_codec[m, Row.BEAT_PERIOD], minlength=G)
    vel = np.bincount(group[m], weights=perf.p_codec[m, Row.VELOCITY] * 127, minlength=G)
    with np.errstate(invalid="ignore", divide="ignore"):
        tempo = np.where(cnt > 0, 60.0 / (bp / np.maximum(cnt, 1)), np.nan)
        velocity = np.where(cnt > 0, vel / np.maximum(cnt, 1), np.nan)
    if len(tempo):
        tempo[-1] = np.nan  # the last onset has no next one: partitura takes its beat period from a duration
    if np.isfinite(tempo).any():
        # one misaligned note can make a 20x tempo spike at its onset; winsorise at 4x the median
        med = np.nanmedian(tempo)
        tempo = np.clip(tempo, med / TEMPO_CLIP, med * TEMPO_CLIP)
    return tempo, velocity


def voicing(onset_beat: np.ndarray, perf: Performance) -> np.ndarray:
    """Each played note's velocity (MIDI) less the mean of its onset's played notes: the voicing of a
    chord (the melody above the accompaniment); NaN for unplayed notes and notes played alone."""
    _, group = np.unique(onset_beat, return_inverse=True)
    m = perf.mask.astype(bool)
    v = perf.p_codec[:, Row.VELOCITY].astype(np.float64) * 127
    cnt = np.bincount(group[m], minlength=group.max() + 1)
    mean = np.bincount(group[m], weights=v[m], minlength=group.max() + 1) / np.maximum(cnt, 1)
    return np.where(m & (cnt[group] > 1), v - mean[group], np.nan)


def kl_divergence(p_values: np.ndarray, q_values: np.ndarray, bins: int = 32) -> float:
    """KL(P || Q) between histograms of two samples over their common range (add-one smoothed)."""
    p_values, q_values = p_values[np.isfinite(p_values)], q_values[np.isfinite(q_values)]
    if len(p_values) < 2 or len(q_values) < 2:
        return float("nan")
    lo = min(p_values.min(), q_values.min())
    hi = max(p_values.max(), q_values.max())
    if hi - lo < 1e-12:
        return 0.0
    p, _ = np.histogram(p_values, bins=bins, range=(lo, hi))
    q, _ = np.histogram(q_values, bins=bins, range=(lo, hi))
    p = (p + 1) / (p.sum() + bins)
    q = (q + 1) / (q.sum() + bins)
    return float(np.sum(p * np.log(p / q)))


def compare(onset_beat: np.ndarray, pred: Performance, ref: Performance,
            dyn_level: np.ndarray | None = None) -> dict[str, float]:
    """Every metric of ``pred`` against one reference performance.

    ``dyn_level`` (per distinct onset, NaN where unmarked; see ``dynamics_levels``) enables
    the marking agreement; feature metrics need ``features`` on both performances (NaN otherwise).
    """
    t_p, v_p = onset_curves(onset_beat, pred)
    t_r, v_r = onset_curves(onset_beat, ref)
    out = {k: float("nan") for k in METRICS}
    # tempo is compared in log BPM (ratios, as a listener hears them); velocity in MIDI units
    for name, a, b in (("tempo", np.log(t_p), np.log(t_r)), ("velocity", v_p, v_r)):
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() < 3:
            out[f"{name}_r"] = float("nan")
        elif np.std(a[ok]) < (FLAT_LOG_TEMPO if name == "tempo" else 1e-9):  # flat: explains none of the shaping
            out[f"{name}_r"] = 0.0
        else:
            out[f"{name}_r"] = pearson(a[ok], b[ok])
        out[f"{name}_dev"] = float(np.mean(np.abs(a[ok] - b[ok]))) if ok.any() else float("nan")  # tempo: |log ratio|
        out[f"{name}_kl"] = kl_divergence(b[ok], a[ok])  # KL(human || rendered)
    m_p, m_r = pred.mask.astype(bool), ref.mask.astype(bool)
    for name, j in (("timing", 2), ("articulation", 3), ("pedal", 4)):
        out[f"{name}_kl"] = kl_divergence(ref.p_codec[m_r, j], pred.p_codec[m_p, j])
    if pred.features is not None and ref.features is not None:
        for name in ("async_delta", "async_pitch_cor", "kor", "pedal_onset"):
            a, b = pred.features[name], ref.features[name]
            fa, fb = np.isfinite(a), np.isfinite(b)
            if fa.any() and fb.any():
                out[f"{name}_dev"] = float(abs(np.mean(a[fa]) - np.mean(b[fb])))
                out[f"{name}_kl"] = kl_divergence(b[fb], a[fa])
            if f"{name}_r" in out:
                out[f"{name}_r"] = _flat_aware_r(a, b)
    a, b = voicing(onset_beat, pred), voicing(onset_beat, ref)
    both = np.isfinite(a) & np.isfinite(b)
    if both.sum() >= 3:  # which notes of a chord stand out, and by how much (MIDI)
        out["voicing_r"] = _flat_aware_r(a[both], b[both], if_b_flat=float("nan"))
        out["voicing_dev"] = float(abs(np.mean(np.abs(a[both])) - np.mean(np.abs(b[both]))))
        out["voicing_kl"] = kl_divergence(b[both], a[both])
    for key, mine, theirs in (("dyn_agreement", marking_agreement(v_p, dyn_level), marking_agreement(v_r, dyn_level)),
                              ("tempo_vel", tempo_velocity_r(t_p, v_p), tempo_velocity_r(t_r, v_r))):
        out[key if key == "dyn_agreement" else f"{key}_r"] = mine  # the performance's own value
        out[f"{key}_dev"] = float(abs(mine - theirs))  # NaN when either is undefined
    return out


def _flat_aware_r(a: np.ndarray, b: np.ndarray, if_b_flat: float = float("nan")) -> float:
    """Pearson r over the positions where both are finite: ``if_b_flat`` for a flat ``b``, 0 for a
    flat ``a`` (no shaping), NaN with fewer than 3 positions."""
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    if np.std(b[ok]) < 1e-9:
        return if_b_flat
    if np.std(a[ok]) < 1e-9:
        return 0.0
    return pearson(a[ok], b[ok])


def tempo_velocity_r(tempo: np.ndarray, velocity: np.ndarray) -> float:
    """Pearson r of log tempo and velocity per onset within one performance (0 when either is flat)."""
    return _flat_aware_r(np.log(tempo), velocity, if_b_flat=0.0)


def dynamics_levels(onset_beat: np.ndarray, s_codec: np.ndarray, names: list[str] | tuple[str, ...]) -> np.ndarray:
    """The marked dynamic level (0 = ppp .. 7 = fff) per distinct onset; NaN where no marking applies."""
    cols = [list(names).index(c) for c in DYN_LEVELS]
    d = np.asarray(s_codec)[:, cols]
    note_level = np.where(d.max(1) > 0.5, d.argmax(1).astype(float), np.nan)
    _, group = np.unique(onset_beat, return_inverse=True)
    level = np.full(group.max() + 1, np.nan)
    level[group] = note_level  # notes of one onset share their marking
    return level


def marking_agreement(velocity: np.ndarray, level: np.ndarray | None) -> float:
    """Spearman r between the marked level and the velocity per onset (NaN with < 2 distinct levels)."""
    from scipy.stats import rankdata

    if level is None:
        return float("nan")
    ok = np.isfinite(level) & np.isfinite(velocity)
    if len(np.unique(level[ok])) < 2:
        return float("nan")
    return _flat_aware_r(rankdata(velocity[ok]), rankdata(level[ok]))


def median_over(results: list[dict[str, float]]) -> dict[str, float]:
    """Per-metric median, ignoring NaN (NaN when no value is defined)."""
    out = {}
    for k in METRICS:
        vals = np.array([r[k] for r in results if np.isfinite(r.get(k, np.nan))])
        out[k] = float(np.median(vals)) if len(vals) else float("nan")
    return out


def score_against_humans(onset_beat: np.ndarray, pred: Performance, humans: list[Performance],
                         dyn_level: np.ndarray | None = None) -> dict[str, float]:
    """Median of each metric of ``pred`` over every human reference."""
    return median_over([compare(onset_beat, pred, h, dyn_level) for h in humans])


def human_ceiling(onset_beat: np.ndarray, humans: list[Performance],
                  dyn_level: np.ndarray | None = None) -> dict[str, float] | None:
    """Leave-one-out human-to-human values: each human scored against the others, medians.

    Returns None for a piece with a single human performance (there is no ceiling to give).
    """
    if len(humans) < 2:
        return None
    per_human = [score_against_humans(onset_beat, h, humans[:i] + humans[i + 1:], dyn_level)
                 for i, h in enumerate(humans)]
    return median_over(per_human)
