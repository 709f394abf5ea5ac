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

from .metrics import pearson

CURVE_METRICS = ("tempo_r", "tempo_dev", "tempo_kl", "velocity_r", "velocity_dev", "velocity_kl")
NOTE_METRICS = ("timing_kl", "articulation_kl", "pedal_kl")
FEATURE_METRICS = ("async_delta_dev", "async_delta_kl", "async_delta_r", "async_pitch_cor_dev", "async_pitch_cor_kl",
                   "kor_dev", "kor_kl", "kor_r", "pedal_onset_dev", "pedal_onset_kl", "pedal_onset_r")
DYNAMICS_METRICS = ("dyn_agreement", "dyn_agreement_dev", "tempo_vel_r", "tempo_vel_dev")
VOICING_METRICS = ("voicing_r", "voicing_dev", "voicing_kl")
METRICS = CURVE_METRICS + NOTE_METRICS + FEATURE_METRICS + DYNAMICS_METRICS + VOICING_METRICS
DYN_LEVELS = ("dyn_ppp", "dyn_pp", "dyn_p", "dyn_mp", "dyn_mf", "dyn_f", "dyn_ff", "dyn_fff")  # softest first
TEMPO_CLIP = 4.0  # per-onset tempo kept within [median / 4, median * 4]
# a tempo curve whose log varies less than this (1 %) is flat: below a listener's threshold for a tempo
# change, and within what 1 ms MIDI ticks resolve on short IOIs, so its r would correlate rounding
FLAT_LOG_TEMPO = 0.01


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
    bp = np.bincount(group[m], weights=perf.p_codec[m, 0], minlength=G)
    vel = np.bincount(group[m], weights=perf.p_codec[m, 1] * 127, minlength=G)
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
    v = perf.p_codec[:, 1].astype(np.float64) * 127
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


def _onset_jumps(onset_beat: np.ndarray, p_codec: np.ndarray) -> dict[str, np.ndarray]:
    """|difference| of the per-onset log tempo and velocity curves between consecutive onsets."""
    tempo, velocity = onset_curves(onset_beat, Performance(p_codec, np.ones(len(p_codec), dtype=bool)))
    return {"tempo": np.abs(np.diff(np.log(tempo))), "velocity": np.abs(np.diff(velocity))}


def _edge_pairs(onset_beat: np.ndarray, edges: list[int]) -> np.ndarray:
    """Which onset pairs (g, g + 1) straddle a window edge: an edge note falls in group g + 1."""
    u, group = np.unique(onset_beat, return_inverse=True)
    edge_groups = {int(group[e]) for e in edges if 0 < e < len(group) and group[e] != group[e - 1]}
    return np.array([g + 1 in edge_groups for g in range(len(u) - 1)], dtype=bool)


def boundary_jumps(onset_beat: np.ndarray, p_codec: np.ndarray, edges: list[int]) -> dict[str, float]:
    """Mean jump of log tempo and velocity between consecutive score onsets, at window edges vs inside.

    Unpaired: the few edge pairs are also where the score happens to be, so their jumps carry
    the music's as well as any seam; :func:`paired_seams` holds the score fixed.

    Parameters
    ----------
    onset_beat : (n,)
        Score onsets (canonical note order, non-decreasing).
    p_codec : (n, 5)
        A rendered p_codec.
    edges : list of int
        Note positions where a window starts or ends.

    Returns
    -------
    dict
        ``tempo_edge``, ``tempo_inside``, ``velocity_edge``, ``velocity_inside`` (mean |difference|
        of the per-onset curves, log BPM and MIDI velocity).
    """
    at_edge = _edge_pairs(onset_beat, edges)
    out = {}
    for name, d in _onset_jumps(onset_beat, p_codec).items():
        out[f"{name}_edge"] = float(np.nanmean(d[at_edge])) if at_edge.any() else float("nan")
        out[f"{name}_inside"] = float(np.nanmean(d[~at_edge])) if (~at_edge).any() else float("nan")
    return out


def paired_seams(onset_beat: np.ndarray, renders: tuple[list[np.ndarray], list[np.ndarray]],
                 edges: tuple[list[int], list[int]]) -> dict[str, float]:
    """Seams at window edges with the score held fixed: the same onset pairs, on and off an edge.

    The piece is rendered with two window layouts (the second's inner edges moved, e.g. by half a
    stride; the same seeds for both). Each onset pair that is an edge in one layout and not in the
    other gives one difference: its jump in the layout where it is an edge minus its jump in the
    other (jumps averaged over the seeds). Their mean is the seam; the music at the pair cancels.

    Parameters
    ----------
    onset_beat : (n,)
        Score onsets (canonical note order, non-decreasing).
    renders : (list of (n, 5) arrays, list of (n, 5) arrays)
        p_codecs rendered with layout A and with layout B, seed for seed.
    edges : (list of int, list of int)
        The window edges (note positions) of layout A and of layout B.

    Returns
    -------
    dict
        For ``tempo`` (log BPM) and ``velocity`` (MIDI): ``{name}_seam`` (mean difference),
        ``{name}_seam_se`` (its standard error), ``{name}_inside`` (mean jump at pairs on no edge);
        and ``pairs``, the number of differences.
    """
    return summarise_seams(*seam_differences(onset_beat, renders, edges))


def seam_differences(onset_beat: np.ndarray, renders: tuple[list[np.ndarray], list[np.ndarray]],
                     edges: tuple[list[int], list[int]]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The per-pair differences of :func:`paired_seams` (same parameters), and the jumps at the
    pairs on no edge, per curve (``tempo``, ``velocity``): to pool over pieces before summarising."""
    jumps = []
    for layout in renders:  # per layout: each pair's jump, averaged over the seeds
        per_seed = [_onset_jumps(onset_beat, p) for p in layout]
        jumps.append({k: np.mean([j[k] for j in per_seed], axis=0) for k in ("tempo", "velocity")})
    at_a, at_b = (_edge_pairs(onset_beat, e) for e in edges)
    a_only, b_only, neither = at_a & ~at_b, at_b & ~at_a, ~at_a & ~at_b
    diffs, inside = {}, {}
    for name in ("tempo", "velocity"):
        ja, jb = jumps[0][name], jumps[1][name]
        diffs[name] = np.concatenate([ja[a_only] - jb[a_only], jb[b_only] - ja[b_only]])
        inside[name] = np.concatenate([ja[neither], jb[neither]])
    return diffs, inside


def summarise_seams(diffs: dict[str, np.ndarray], inside: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean, standard error and count of seam differences, and the mean jump inside (see :func:`paired_seams`)."""
    out: dict[str, float] = {"pairs": float(len(next(iter(diffs.values()))))}
    for name, d in diffs.items():
        d = d[np.isfinite(d)]
        out[f"{name}_seam"] = float(d.mean()) if len(d) else float("nan")
        out[f"{name}_seam_se"] = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
        out[f"{name}_inside"] = float(np.nanmean(inside[name])) if len(inside[name]) else float("nan")
    return out
