"""The performance codec (p_codec) and the control codec (c_codec).

p_codec, per score note (paper, Sec. 3.1): beat_period (s/beat), velocity
(MIDI/127), timing (onset deviation, s), articulation_log (log2 of performed
over notated duration) from partitura's ``encode_performance``, and pedal
(sustain CC64 at the performed onset, /127).

c_codec, per score note: interpretable descriptors of the performance in a
window of +-``window_beats`` score beats around the note, plus the seven
mid-level perceptual features when a ``<perf>_cep_features.csv`` exists.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Row(IntEnum):
    """The p_codec rows by name: ``p[..., Row.VELOCITY]``."""

    BEAT_PERIOD = 0  # seconds per beat at the note's onset
    VELOCITY = 1  # MIDI velocity / 127
    TIMING = 2  # onset deviation from the tempo curve, seconds
    ARTICULATION = 3  # log of played over notated duration
    PEDAL = 4  # sustain pedal depth at the onset, 0..1


P_CODEC_NAMES: tuple[str, ...] = ("beat_period", "velocity", "timing", "articulation_log", "pedal")
# p_codec rows of the tempo and loudness curves (what a sampling temperature acts on)
CURVE_ROWS: tuple[int, ...] = (Row.BEAT_PERIOD, Row.VELOCITY)
C_BUILTIN_NAMES: tuple[str, ...] = (
    "tempo_level", "rubato", "loudness", "dynamic_range", "articulation", "pedal_amount", "asynchrony",
)
CEP_NAMES: tuple[str, ...] = (
    "melodiousness", "articulation", "rhythm_complexity", "rhythm_stability",
    "dissonance", "tonal_stability", "minorness",
)
C_CODEC_NAMES: tuple[str, ...] = (*C_BUILTIN_NAMES, *(f"cep_{n}" for n in CEP_NAMES))

# What each control means, for `dexter render --list-controls` and the docs.
C_DESCRIPTIONS: dict[str, str] = {
    "tempo_level": "local tempo, geometric mean in BPM over the window",
    "rubato": "tempo variability: std of log beat period over the window",
    "loudness": "mean MIDI velocity over the window",
    "dynamic_range": "std of MIDI velocity over the window",
    "articulation": "mean articulation_log (log2 performed/notated duration): low = staccato, high = legato",
    "pedal_amount": "mean sustain pedal depth (0..1) at note onsets over the window",
    "asynchrony": "mean onset spread within chords, in ms",
    **{f"cep_{n}": f"mid-level perceptual feature '{n}' (from <perf>_cep_features.csv)" for n in CEP_NAMES},
}


def fill_unplayed(p: np.ndarray, played: np.ndarray) -> np.ndarray:
    """A copy of ``p`` (n, k) where unplayed notes take the values of the nearest later
    (else last) played note, so that a codec with gaps can be decoded or denoised."""
    p = np.array(p, copy=True)
    idx = np.flatnonzero(played)
    if len(idx) == 0 or len(idx) == len(p):
        return p
    nearest = idx[np.clip(np.searchsorted(idx, np.arange(len(p))), 0, len(idx) - 1)]
    p[~played] = p[nearest[~played]]
    return p


PEDAL_AT_TOLERANCE_S = 2e-4  # under half a MIDI tick at 960 ticks/s; above float32 rounding to ~3,000 s


def pedal_at(onsets: np.ndarray, cc_times: np.ndarray, cc_values: np.ndarray) -> np.ndarray:
    """Sustain pedal value (0..1) in force at each onset.

    Parameters
    ----------
    onsets : ndarray
        Performed onset times (s).
    cc_times, cc_values : ndarray
        CC64 events (time in s, value 0..127); need not be sorted.

    Returns
    -------
    ndarray
        Value of the last CC64 event at or before each onset, /127; 0 before
        the first event or when there are none. An event within ``PEDAL_AT_TOLERANCE_S``
        after the onset counts as at it: partitura reads note onsets as float32 and control
        times as float64, so an event on the onset's own MIDI tick can read as just after it.
    """
    onsets = np.asarray(onsets, dtype=np.float64)
    if len(cc_times) == 0:
        return np.zeros(len(onsets), dtype=np.float64)
    order = np.argsort(cc_times, kind="stable")
    t, v = np.asarray(cc_times, dtype=np.float64)[order], np.asarray(cc_values, dtype=np.float64)[order]
    idx = np.searchsorted(t, onsets + PEDAL_AT_TOLERANCE_S, side="right") - 1
    return np.where(idx >= 0, v[np.maximum(idx, 0)] / 127.0, 0.0)


def _window_bounds(onset_beat: np.ndarray, window_beats: float) -> tuple[np.ndarray, np.ndarray]:
    lo = np.searchsorted(onset_beat, onset_beat - window_beats, side="left")
    hi = np.searchsorted(onset_beat, onset_beat + window_beats, side="right")
    return lo, hi


def _windowed(values: np.ndarray, valid: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std of ``values`` over ``valid`` entries in [lo, hi) for each note."""
    center = values[valid].mean() if valid.any() else 0.0  # centring keeps the variance exact
    v = np.where(valid, values - center, 0.0)
    c0 = np.concatenate([[0.0], np.cumsum(valid.astype(np.float64))])
    c1 = np.concatenate([[0.0], np.cumsum(v)])
    c2 = np.concatenate([[0.0], np.cumsum(v * v)])
    n = c0[hi] - c0[lo]
    safe = np.maximum(n, 1.0)
    mean = (c1[hi] - c1[lo]) / safe
    var = np.maximum((c2[hi] - c2[lo]) / safe - mean ** 2, 0.0)
    return mean + center, np.sqrt(var), n


def control_features(
    onset_beat: np.ndarray,
    p_codec: np.ndarray,
    played: np.ndarray,
    perf_onset: np.ndarray,
    window_beats: float = 4.0,
) -> np.ndarray:
    """Compute the built-in c_codec descriptors for every score note.

    Parameters
    ----------
    onset_beat : ndarray, shape (n,)
        Score onsets in beats, non-decreasing (canonical note order).
    p_codec : ndarray, shape (n, 5)
        Performance codec rows ``P_CODEC_NAMES`` (undefined where not played).
    played : ndarray of bool, shape (n,)
        Notes with a finite p_codec.
    perf_onset : ndarray, shape (n,)
        Performed onset (s) of each played note.
    window_beats : float
        Half-width of the window in score beats.

    Returns
    -------
    ndarray, shape (n, len(C_BUILTIN_NAMES)), float64
        Notes whose window holds no played note get the piece-level value.
    """
    n = len(onset_beat)
    lo, hi = _window_bounds(onset_beat, window_beats)
    bp, vel, _, art, ped = (p_codec[:, i] for i in range(5))
    log_bp = np.log(np.where(played, np.maximum(bp, 1e-6), 1.0))
    out = np.zeros((n, len(C_BUILTIN_NAMES)))
    m, s, cnt = _windowed(log_bp, played, lo, hi)
    out[:, 0] = 60.0 * np.exp(-m)  # tempo_level: BPM = 60 / geometric-mean beat period
    out[:, 1] = s  # rubato
    m, s, _ = _windowed(vel * 127.0, played, lo, hi)
    out[:, 2], out[:, 3] = m, s  # loudness, dynamic_range
    out[:, 4] = _windowed(art, played, lo, hi)[0]
    out[:, 5] = _windowed(ped, played, lo, hi)[0]
    # asynchrony: spread (max - min) of performed onsets within each score onset group, ms
    spread = np.zeros(n)
    if played.any():
        _, group = np.unique(onset_beat, return_inverse=True)
        g_played = group[played]
        t = perf_onset[played]
        gmax = np.full(group.max() + 1, -np.inf)
        gmin = np.full(group.max() + 1, np.inf)
        np.maximum.at(gmax, g_played, t)
        np.minimum.at(gmin, g_played, t)
        gspread = np.where(np.isfinite(gmax) & np.isfinite(gmin), gmax - gmin, 0.0)
        spread = gspread[group] * 1000.0
    out[:, 6] = _windowed(spread, played, lo, hi)[0]
    empty = cnt == 0
    if empty.any() and (~empty).any():
        out[empty] = out[~empty].mean(axis=0)
    return out


def cep_features(perf_onset: np.ndarray, played: np.ndarray, frame_start: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Mid-level perceptual features at each note's performed onset.

    Parameters
    ----------
    perf_onset : ndarray, shape (n,)
        Performed onsets (s).
    played : ndarray of bool, shape (n,)
    frame_start : ndarray, shape (m,)
        ``frame_start_time`` column of the CSV.
    values : ndarray, shape (m, 7)
        Feature columns ``CEP_NAMES``.

    Returns
    -------
    ndarray, shape (n, 7)
        The frame in force at each onset; 0 for unplayed notes.
    """
    order = np.argsort(frame_start, kind="stable")
    t, v = frame_start[order], values[order]
    idx = np.clip(np.searchsorted(t, perf_onset, side="right") - 1, 0, len(t) - 1)
    out = v[idx]
    out[~played] = 0.0
    return out
