"""The performance a user receives: a p_codec written as MIDI and read back from the file.

dexter's quality figures come from the file that ``dexter render`` writes, not from the
model's codec: :func:`delivered_codec` decodes a p_codec, writes the MIDI bytes with the
writer ``render`` uses, reads them back as any MIDI file is read, matches the notes to the
score and encodes them with partitura's codec, as a human performance is encoded.

A MIDI file carries no note ids, so its notes are matched to the score by order: within
each pitch, the k-th note struck is the k-th note expected (:func:`order_alignment`). For
a file that dexter wrote, the expected order is known exactly (the decoded onsets); for a
file of another system that plays every score note once, it is the score's order.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..errors import DexterError
from ._partitura import pt, quiet
from .decode import decode_performance, performance_midi
from .encode import encode_performance
from .layouts import PerformanceSource
from .scores import LoadedScore


def read_midi(data: bytes, name: str = "performance.mid") -> object:
    """A partitura Performance from the bytes of a MIDI file (as ``load_performance_midi`` reads a file)."""
    import mido

    try:
        with quiet():
            return pt.load_performance_midi(mido.MidiFile(file=io.BytesIO(data)))
    except Exception as exc:
        raise DexterError(f"cannot read MIDI {name}: {type(exc).__name__}: {exc}") from exc


def order_alignment(score_ids: np.ndarray, score_pitch: np.ndarray, expected_onset: np.ndarray,
                    perf_note_array: np.ndarray) -> list[dict] | None:
    """Match a performance that plays every score note once to the score, by order within each pitch.

    Parameters
    ----------
    score_ids, score_pitch : ndarray, shape (n,)
        The score's note ids and MIDI pitches.
    expected_onset : ndarray, shape (n,)
        Where each score note is expected in time (seconds or beats): only its order within a
        pitch matters (ties keep the score's order).
    perf_note_array : structured ndarray
        The performance's notes (``id``, ``pitch``, ``onset_sec``).

    Returns
    -------
    list of dict or None
        partitura alignment (``label`` match, ``score_id``, ``performance_id``); None when the
        performance does not hold exactly the score's notes (a count differs for some pitch).
    """
    s_pitch = np.asarray(score_pitch, dtype=np.int64)
    p_pitch = np.asarray(perf_note_array["pitch"], dtype=np.int64)
    if len(s_pitch) != len(p_pitch) or not np.array_equal(np.sort(s_pitch), np.sort(p_pitch)):
        return None
    # sort both by (pitch, time): equal pitches then pair up in order
    s_order = np.lexsort((np.arange(len(s_pitch)), np.asarray(expected_onset, dtype=np.float64), s_pitch))
    p_order = np.lexsort((np.arange(len(p_pitch)), np.asarray(perf_note_array["onset_sec"], dtype=np.float64),
                          p_pitch))
    p_ids = np.asarray(perf_note_array["id"]).astype(str)
    s_ids = np.asarray(score_ids).astype(str)
    return [{"label": "match", "score_id": s, "performance_id": q}
            for s, q in zip(s_ids[s_order].tolist(), p_ids[p_order].tolist())]


def encode_file_performance(score: LoadedScore, perf: object, name: str,
                            expected_onset: np.ndarray | None = None, align: bool = True,
                            by_order: bool = True) -> tuple[np.ndarray, np.ndarray, str]:
    """Encode a performance read from a MIDI file against its score, as a human one is encoded.

    Parameters
    ----------
    score : LoadedScore
    perf : partitura Performance
    name : str
        The file's name (for messages).
    expected_onset : ndarray, optional
        Known order of the score notes in time (a file dexter wrote); default: the score's onsets.
    align : bool
        When the file does not hold exactly the score's notes, align it with parangonar
        (otherwise that is an error).
    by_order : bool
        Try the match by order first (False: always parangonar).

    Returns
    -------
    p_codec : ndarray, shape (n, 5)
    mask : ndarray of bool, shape (n,)
    matched_by : {"order", "parangonar"}
    """
    from .align import auto_align, check_coverage

    na = score.note_array
    expected = na["onset_beat"].astype(np.float64) if expected_onset is None else expected_onset
    alignment = order_alignment(score.note_ids, na["pitch"], expected, perf.note_array()) if by_order else None
    how = "order"
    if alignment is None:
        if not align:
            raise DexterError(f"{name} does not hold exactly the score's notes")
        alignment, how = auto_align(score.part, perf), "parangonar"
        check_coverage(alignment, score, perf, name)
    src = PerformanceSource("file", "", Path(name).stem, Path(name), Path(name), None, Path("."))
    enc = encode_performance(src, score, perf, alignment)
    return enc.p_codec, enc.mask, how


def delivered_codec(score: LoadedScore, p_codec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The p_codec of the MIDI file that ``dexter render`` writes for ``p_codec``, read back.

    Parameters
    ----------
    score : LoadedScore
    p_codec : ndarray, shape (n, 5)
        A rendered (or reference) codec over every score note.

    Returns
    -------
    p_codec : ndarray, shape (n, 5)
        partitura's encoding of the file's notes, matched to the score in their known order.
    mask : ndarray of bool, shape (n,)
        The notes with a finite codec.
    """
    ppart = decode_performance(score, p_codec)
    onset = np.array([n["note_on"] for n in ppart.notes], dtype=np.float64)
    perf = read_midi(performance_midi(ppart))
    p, mask, _ = encode_file_performance(score, perf, "rendered.mid", expected_onset=onset, align=False)
    return p, mask


__all__ = ["delivered_codec", "encode_file_performance", "order_alignment", "read_midi"]
