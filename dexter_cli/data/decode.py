"""Decode a p_codec into a performance and write it as MIDI.

A predicted p_codec is first projected onto the codecs a performance can have
(:func:`project_codec`); times then come from partitura's ``decode_time``
(beat_period, timing, articulation_log per score note); velocity is MIDI/127; the
pedal row becomes sustain CC64 events at the performed onsets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DexterError
from ..fileio import atomic_path
from ._partitura import pt, quiet
from .codec import Row
from .midi import midi_bytes
from .scores import LoadedScore

REPEAT_GAP_S = 0.005  # a key is released this long before it is struck again (a few MIDI ticks)
MIN_DURATION_S = 0.02  # grace notes have no notated duration; every MIDI note gets at least this


def onset_groups(onset_beat: np.ndarray) -> tuple[np.ndarray, int]:
    """The score onset of each note as a group index (partitura's grouping), and the number of groups."""
    from partitura.musicanalysis.performance_codec import get_unique_onset_idxs

    groups = get_unique_onset_idxs(np.asarray(onset_beat, dtype=np.float64))
    group = np.empty(len(onset_beat), dtype=np.int64)
    for g, idx in enumerate(groups):
        group[idx] = g
    return group, len(groups)


def project_codec(onset_beat: np.ndarray, p_codec: np.ndarray) -> np.ndarray:
    """The performance codec nearest to a predicted one that a performance can actually have.

    partitura's codec has invariants that a sampled p_codec need not keep; decoding
    such a row would put noise into the written file. Each row is projected:

    - ``beat_period``: one value per score onset, the mean of its notes (what
      ``decode_time`` plays), within [1 ms, 60 s] per beat;
    - ``velocity``: within [1/127, 1];
    - ``timing``: the offset of a note from its onset's tempo-curve time, so it
      averages to zero over the notes of each score onset (0 for a lone note): the
      onset's mean is removed and the asynchrony within the chord stays; within ±5 s;
    - ``articulation_log``: within ±10 (any value is a duration);
    - ``pedal``: within [0, 1].

    Parameters
    ----------
    onset_beat : ndarray, shape (n,)
        Score onset of each note, in beats.
    p_codec : ndarray, shape (n, 5)
        Finite values (non-finite ones are taken as 0).

    Returns
    -------
    ndarray, shape (n, 5), float64
        The projected codec; a human performance's codec comes back unchanged
        (up to float rounding).
    """
    p = np.nan_to_num(np.asarray(p_codec, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0).copy()
    group, n_groups = onset_groups(onset_beat)
    count = np.bincount(group, minlength=n_groups)
    mean = lambda x: np.bincount(group, weights=x, minlength=n_groups)[group] / count[group]  # noqa: E731
    p[:, Row.BEAT_PERIOD] = mean(np.clip(p[:, Row.BEAT_PERIOD], 1e-3, 60.0))  # seconds per beat, one per onset
    p[:, Row.VELOCITY] = np.clip(p[:, Row.VELOCITY], 1.0 / 127, 1.0)
    timing = np.clip(p[:, Row.TIMING], -5.0, 5.0)
    p[:, Row.TIMING] = timing - mean(timing)  # zero mean per onset: the onset sits on the tempo curve
    p[:, Row.ARTICULATION] = np.clip(p[:, Row.ARTICULATION], -10.0, 10.0)
    p[:, Row.PEDAL] = np.clip(p[:, Row.PEDAL], 0.0, 1.0)
    return p


def decode_performance(score: LoadedScore, p_codec: np.ndarray) -> object:
    """A partitura PerformedPart playing every score note once.

    The codec is projected first (:func:`project_codec`): a sampled timing row that
    does not average to zero per onset would move whole onsets off the tempo curve.

    Parameters
    ----------
    score : LoadedScore
        Canonical note order (onset, then pitch).
    p_codec : ndarray, shape (n, 5)
        beat_period, velocity, timing, articulation_log, pedal per score note.

    Returns
    -------
    partitura PerformedPart
        Notes carry the score note ids; velocities 1..127, positive durations,
        onsets >= 0; CC64 events from the pedal row.
    """
    from partitura.musicanalysis.performance_codec import decode_time

    p = np.asarray(p_codec, dtype=np.float64)
    if p.shape != (len(score), 5):
        raise DexterError(f"p_codec has shape {p.shape}, the score has {len(score)} notes")
    na = score.note_array
    p = project_codec(na["onset_beat"], p)
    params = np.zeros(len(p), dtype=[("beat_period", "f4"), ("timing", "f4"), ("articulation_log", "f4")])
    params["beat_period"], params["timing"] = p[:, Row.BEAT_PERIOD], p[:, Row.TIMING]
    params["articulation_log"] = p[:, Row.ARTICULATION]
    with quiet():
        od = decode_time(score_onsets=na["onset_beat"].astype(float), score_durations=na["duration_beat"].astype(float),
                         parameters=params)
    onsets = od[:, 0] - min(0.0, od[:, 0].min())
    onsets = unisons_in_score_order(onsets, na["onset_beat"], na["pitch"])
    onsets -= min(0.0, onsets.min())  # a unison spread at the first onset starts a few ms before 0
    durations = np.maximum(od[:, 1], MIN_DURATION_S)
    onsets, durations = separate_repeated_keys(onsets, durations, na["pitch"])
    velocity = np.clip(np.round(p[:, Row.VELOCITY] * 127), 1, 127).astype(int)
    pitch = np.clip(na["pitch"], 0, 127).astype(int)
    offsets = onsets + durations
    notes = [{"id": nid, "midi_pitch": k, "note_on": on, "note_off": off, "sound_off": off, "velocity": v,
              "track": 0, "channel": 0}
             for nid, k, on, off, v in zip(score.note_ids.tolist(), pitch.tolist(), onsets.tolist(),
                                           offsets.tolist(), velocity.tolist())]
    controls = pedal_events(onsets, p[:, Row.PEDAL])
    return pt.performance.PerformedPart(notes, controls=controls)


def unisons_in_score_order(onsets: np.ndarray, onset_beat: np.ndarray, pitches: np.ndarray,
                           gap: float = REPEAT_GAP_S) -> np.ndarray:
    """Onsets where the notes of one key at one score onset (a unison of two voices) sound in score
    order, struck at least ``2 * gap`` apart about their mean time.

    Such notes are one key struck twice, and a MIDI file cannot tell which strike is which
    note: their onset times are given out in score order, so that a reader that matches a
    file's notes to the score by order within each pitch matches them as they were written.
    Strikes closer than a key can repeat are spread symmetrically about their mean, so the
    onset's mean time (its place on the tempo curve) stays where the codec put it.
    """
    onsets = np.asarray(onsets, dtype=np.float64)
    group, _ = onset_groups(onset_beat)
    key = group * 128 + np.asarray(pitches, dtype=np.int64)
    by_time = np.lexsort((np.arange(len(key)), onsets, key))
    by_score = np.lexsort((np.arange(len(key)), key))
    times = onsets[by_time]
    starts = np.flatnonzero(np.diff(key[by_time], prepend=-1) != 0)
    for a, b in zip(starts, np.r_[starts[1:], len(key)]):
        k = b - a
        if k > 1 and np.diff(times[a:b]).min() < 2 * gap:  # 2.2 gaps apart: clear of the repeated-key rule
            times[a:b] = times[a:b].mean() + (np.arange(k) - (k - 1) / 2) * 2.2 * gap
    out = onsets.copy()
    out[by_score] = times
    return out


def separate_repeated_keys(onsets: np.ndarray, durations: np.ndarray, pitches: np.ndarray,
                           gap: float = REPEAT_GAP_S) -> tuple[np.ndarray, np.ndarray]:
    """Make every note of a key end before that key is struck again (as on a piano).

    MIDI cannot hold two overlapping notes of one pitch: a reader would pair the
    note-offs wrongly or merge them. A note is cut ``gap`` before the next onset of
    its pitch; a unison struck twice at once is spread by ``2 * gap``. ``gap`` is a few
    MIDI ticks (1 tick ~ 1 ms at 480 ppq), so no note-off shares a tick with the next note-on.
    """
    onsets, durations = onsets.astype(np.float64).copy(), durations.astype(np.float64).copy()
    for pitch in np.unique(pitches):
        idx = np.flatnonzero(pitches == pitch)
        if len(idx) < 2:
            continue
        idx = idx[np.argsort(onsets[idx], kind="stable")]
        for a, b in zip(idx[:-1], idx[1:]):
            if onsets[b] < onsets[a] + 2 * gap:
                onsets[b] = onsets[a] + 2 * gap
            durations[a] = max(gap, min(durations[a], onsets[b] - onsets[a] - gap))
    return onsets, durations


def pedal_events(onsets: np.ndarray, pedal: np.ndarray) -> list[dict]:
    """Sustain CC64 events: the pedal value of each onset group, when it changes."""
    order = np.argsort(onsets, kind="stable")
    values = np.clip(np.round(np.asarray(pedal, dtype=np.float64)[order] * 127), 0, 127).astype(int)
    change = np.flatnonzero(np.diff(values, prepend=-1) != 0)
    return [{"number": 64, "time": t, "value": v, "track": 0, "channel": 0}
            for t, v in zip(np.asarray(onsets, dtype=np.float64)[order][change].tolist(), values[change].tolist())]


def performance_midi(performed_part: object) -> bytes:
    """The bytes of the MIDI file of a PerformedPart (format 0, 480 ticks per quarter, 120 BPM)."""
    notes, cc = performed_part.notes, performed_part.controls
    field = lambda rows, key, dtype: np.array([r[key] for r in rows], dtype=dtype)  # noqa: E731
    return midi_bytes(field(notes, "midi_pitch", int), field(notes, "note_on", float), field(notes, "note_off", float),
                      field(notes, "velocity", int), field(cc, "time", float), field(cc, "number", int),
                      field(cc, "value", int))


def save_midi(performed_part: object, path: Path) -> None:
    """Write a PerformedPart as a standard MIDI file (:func:`performance_midi`), atomically."""
    data = performance_midi(performed_part)
    with atomic_path(path, suffix=".mid") as tmp:
        Path(tmp).write_bytes(data)
