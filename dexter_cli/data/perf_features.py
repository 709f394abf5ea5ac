"""partitura's performance features of a p_codec over a score (the paper's evaluation).

A p_codec (human, from the store, or rendered) is decoded against the score into a
performed part whose notes carry the score note ids, so the alignment is the
identity over the played notes. partitura then computes, per note:

- ``async_delta``: the spread of onset times within the note's score onset (seconds, <= 1);
- ``async_pitch_cor``: the correlation of pitch and onset order within the onset (melody lead);
- ``kor``: the key-overlap ratio of a note to its successor in the same voice (Repp),
  defined only for notes whose notated offset meets the successor's onset (NaN elsewhere);
- ``pedal_onset``: the sustain pedal value (0..127) at the note's onset.

partitura 1.9's ``articulation_feature`` is quadratic in the number of notes (a
full-array search per note), so ``kor`` is computed here with partitura's own
definition (``get_kor``: (p_offset - next p_onset) / IOI, capped at 5; next note: the
same voice at the immediately following onset, closest in pitch), in one pass per voice.
"""

from __future__ import annotations

import numpy as np

from ._partitura import pt, quiet
from .decode import decode_performance
from .scores import LoadedScore

FEATURES = ("async_delta", "async_pitch_cor", "kor", "pedal_onset")


def performance_features(score: LoadedScore, p_codec: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Per-note performance features (NaN for unplayed notes and undefined values).

    Parameters
    ----------
    score : LoadedScore
        The score, canonical note order.
    p_codec : ndarray, shape (n, 5)
        Raw p_codec over all notes of the score.
    mask : ndarray of bool, shape (n,)
        The notes that were played.

    Returns
    -------
    dict
        ``FEATURES`` -> float array of shape (n,).
    """
    from partitura.musicanalysis import performance_features as pf

    n = len(score)
    out = {k: np.full(n, np.nan) for k in FEATURES}
    played = np.flatnonzero(np.asarray(mask, dtype=bool))
    if len(played) < 2:
        return out
    ppart = decode_performance(score, p_codec)
    pna = ppart.note_array()
    pos = {nid: i for i, nid in enumerate(pna["id"])}
    rows = np.array([pos[nid] for nid in score.note_ids[played]])
    na = score.note_array[played]
    m = np.zeros(len(played), dtype=[("onset", "f8"), ("duration", "f8"), ("pitch", "i4"), ("voice", "i4"),
                                     ("p_onset", "f8"), ("p_duration", "f8"), ("velocity", "i4")])
    m["onset"], m["duration"], m["pitch"] = na["onset_beat"], na["duration_beat"], na["pitch"]
    m["voice"] = na["voice"] if "voice" in na.dtype.names else 0
    m["p_onset"], m["p_duration"], m["velocity"] = pna["onset_sec"][rows], pna["duration_sec"][rows], pna["velocity"][rows]
    _, inverse = np.unique(m["onset"], return_inverse=True)
    unique_onset_idxs = [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)]
    with quiet():
        asyn = pf.asynchrony_feature(m, unique_onset_idxs, ppart)
        pedal = pf.pedal_feature(m, unique_onset_idxs, pt.performance.Performance(ppart))
    out["async_delta"][played] = asyn["delta"]
    out["async_pitch_cor"][played] = asyn["pitch_cor"]
    out["pedal_onset"][played] = pedal["onset_value"]
    out["kor"][played] = key_overlap_ratio(m)
    return out


def key_overlap_ratio(m: np.ndarray) -> np.ndarray:
    """partitura's key-overlap ratio per note (NaN where no legato successor is notated)."""
    kor = np.full(len(m), np.nan)
    for voice in np.unique(m["voice"]):
        idx = np.flatnonzero(m["voice"] == voice)
        onsets = np.unique(m["onset"][idx])
        for j in idx:
            k = np.searchsorted(onsets, m["onset"][j], side="right")
            if k >= len(onsets) or not np.isclose(onsets[k], m["onset"][j] + m["duration"][j]):
                continue  # the next onset of the voice is not where this note ends
            nxt = idx[m["onset"][idx] == onsets[k]]
            nxt = nxt[np.argmin(np.abs(m["pitch"][nxt] - m["pitch"][j]))]
            ioi = m["p_onset"][nxt] - m["p_onset"][j]
            if ioi <= 0:
                continue  # played out of order: no overlap ratio
            kot = m["p_onset"][j] + m["p_duration"][j] - m["p_onset"][nxt]
            kor[j] = min(kot / ioi, 5.0)
    return kor
