"""Encode one aligned performance into per-score-note codecs.

Reads the performance and its alignment in the layout of its dataset, checks
the alignment against the score, and returns p_codec, c_codec and the played
mask over *all* notes of the score in canonical order, so that performances of
one score line up note for note.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DexterError
from ._partitura import load_alignment_from_ASAP, load_parangonada_alignment, pt, quiet
from .codec import CEP_NAMES, C_BUILTIN_NAMES, C_CODEC_NAMES, Row, cep_features, control_features, pedal_at
from .layouts import PerformanceSource
from .scores import LoadedScore

# an alignment may name a few ids the files lack; more than this and it is wrong
MAX_UNKNOWN_ID_FRACTION = 0.1
# ATEPP's alignments are automatic: one matching fewer of its notes than this is dropped, as the original does
MIN_AUTOMATIC_MATCHED = 0.5
# median tempo outside this range (BPM) means a broken alignment or MIDI
TEMPO_RANGE_BPM = (10.0, 600.0)


class SkipPerformance(DexterError):
    """This performance cannot be encoded; the reason is recorded and the run goes on."""


@dataclass
class EncodedPerformance:
    """Codecs of one performance over all notes of its score (canonical order)."""

    p_codec: np.ndarray  # (n, 5) float32, 0 where not played
    c_codec: np.ndarray  # (n, 14) float32
    mask: np.ndarray  # (n,) bool: played with finite values
    has_cep: bool
    n_matched: int


def load_performance_and_alignment(src: PerformanceSource) -> tuple[object, list[dict]]:
    """Read a performance and its note alignment in its dataset's layout.

    Returns
    -------
    performance : partitura Performance
    alignment : list of dict
        partitura alignment (``label``, ``score_id``, ``performance_id``).
    """
    try:
        with quiet():
            if src.alignment is None:  # match file: performance + alignment
                perf, alignment = pt.load_match(str(src.performance))
            else:
                perf = pt.load_performance_midi(str(src.performance))
                if src.alignment.suffix == ".csv":  # parangonar (ATEPP)
                    alignment = load_parangonada_alignment(str(src.alignment))
                else:
                    alignment = load_alignment_from_ASAP(str(src.alignment))
    except Exception as exc:
        raise SkipPerformance(f"unreadable performance or alignment: {type(exc).__name__}: {exc}") from exc
    return perf, list(alignment)


def check_automatic_alignment(alignment: list[dict]) -> None:
    """Refuse an automatic alignment that matches under :data:`MIN_AUTOMATIC_MATCHED` of its entries
    (matches, deletions and insertions).

    Raises
    ------
    SkipPerformance
        A weak alignment, with its share.
    """
    share = len(matched_pairs(alignment)) / max(len(alignment), 1)
    if share < MIN_AUTOMATIC_MATCHED:
        raise SkipPerformance(f"weak alignment: {100 * share:.0f}% of its notes matched "
                              f"(automatic alignments need {100 * MIN_AUTOMATIC_MATCHED:.0f}%)")


def matched_pairs(alignment: list[dict]) -> list[tuple[str, str]]:
    """(score_id, performance_id) of matched notes, each id used once."""
    seen_s, seen_p, out = set(), set(), []
    for a in alignment:
        if a.get("label") != "match":
            continue
        s, p = str(a["score_id"]), str(a["performance_id"])
        if s in seen_s or p in seen_p:
            continue
        seen_s.add(s)
        seen_p.add(p)
        out.append((s, p))
    return out


def needs_unfolding(pairs: list[tuple[str, str]], score_ids: np.ndarray) -> bool:
    """Whether the alignment names the notes of a maximally unfolded score."""
    if not pairs:
        return False
    ids = set(score_ids.tolist())
    hits = sum(s in ids for s, _ in pairs)
    return hits < 0.5 * len(pairs)


def encode_performance(src: PerformanceSource, score: LoadedScore, perf: object,
                       alignment: list[dict], window_beats: float = 4.0) -> EncodedPerformance:
    """Encode one performance against its (loaded) score.

    Parameters
    ----------
    src : PerformanceSource
    score : LoadedScore
        Loaded with the unfolding the alignment needs.
    perf : partitura Performance
    alignment : list of dict
    window_beats : float
        Half-width of the c_codec window.

    Returns
    -------
    EncodedPerformance

    Raises
    ------
    SkipPerformance
        When the alignment does not fit the files or the tempo is implausible.
    """
    pairs = matched_pairs(alignment)
    if not pairs:
        raise SkipPerformance("alignment has no matched notes")
    index = {sid: i for i, sid in enumerate(score.note_ids)}
    pna = perf.note_array()
    p_index = {pid: i for i, pid in enumerate(pna["id"].astype(str))}
    known = [(s, p) for s, p in pairs if s in index and p in p_index]
    unknown = len(pairs) - len(known)
    if unknown > MAX_UNKNOWN_ID_FRACTION * len(pairs):
        raise SkipPerformance(
            f"{unknown} of {len(pairs)} aligned note ids are not in the score/performance")
    alignment_ok = [{"label": "match", "score_id": s, "performance_id": p} for s, p in known]
    try:
        with quiet():
            params, snote_ids = pt.musicanalysis.encode_performance(score.part, perf, alignment_ok)[:2]
    except Exception as exc:
        raise SkipPerformance(f"partitura could not encode it: {type(exc).__name__}: {exc}") from exc

    n = len(score)
    p = np.zeros((n, 5), dtype=np.float64)
    rows = np.array([index[str(s)] for s in snote_ids], dtype=np.int64)
    for j, name in enumerate(("beat_period", "velocity", "timing", "articulation_log")):
        p[rows, j] = params[name]
    # performed onset of every matched score note, and the sustain pedal there
    perf_onset = np.zeros(n)
    s_rows = np.array([index[s] for s, _ in known], dtype=np.int64)
    p_rows = np.array([p_index[q] for _, q in known], dtype=np.int64)
    perf_onset[s_rows] = pna["onset_sec"][p_rows]
    controls = [c for pp in perf.performedparts for c in pp.controls if c.get("number") == 64]
    cc_t = np.array([c["time"] for c in controls], dtype=np.float64)
    cc_v = np.array([c["value"] for c in controls], dtype=np.float64)
    p[:, Row.PEDAL] = pedal_at(perf_onset, cc_t, cc_v)

    played = np.zeros(n, dtype=bool)
    played[rows] = True
    played &= np.isfinite(p).all(axis=1) & (p[:, Row.BEAT_PERIOD] > 0)
    if not played.any():
        raise SkipPerformance("no note has a finite codec")
    median_bpm = 60.0 / np.median(p[played, Row.BEAT_PERIOD])
    if not TEMPO_RANGE_BPM[0] <= median_bpm <= TEMPO_RANGE_BPM[1]:
        raise SkipPerformance(f"tempo outlier: median {median_bpm:.1f} BPM")
    p[~played] = 0.0

    c = np.zeros((n, len(C_CODEC_NAMES)))
    c[:, : len(C_BUILTIN_NAMES)] = control_features(
        score.note_array["onset_beat"].astype(np.float64), p, played, perf_onset, window_beats)
    has_cep = src.cep_csv.is_file()
    if has_cep:
        frame_start, values = read_cep_csv(src.cep_csv)
        c[:, len(C_BUILTIN_NAMES):] = cep_features(perf_onset, played, frame_start, values)
    c[~np.isfinite(c)] = 0.0
    return EncodedPerformance(p.astype(np.float32), c.astype(np.float32), played, has_cep, len(known))


def read_cep_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a mid-level perceptual feature CSV.

    Returns
    -------
    frame_start : ndarray, shape (m,)
    values : ndarray, shape (m, 7), columns ``CEP_NAMES``
    """
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        missing = [c for c in ("frame_start_time", *CEP_NAMES) if rows and c not in rows[0]]
        if not rows or missing:
            raise SkipPerformance(f"{path.name}: missing columns {', '.join(missing) or '(empty file)'}")
        frame_start = np.array([float(r["frame_start_time"]) for r in rows])
        values = np.array([[float(r[c]) for c in CEP_NAMES] for r in rows])
    except (ValueError, OSError) as exc:
        raise SkipPerformance(f"{path.name}: {exc}") from exc
    return frame_start, values


def source_codecs(score, score_path: Path, perf_path: Path, alignment: Path | None, unfold: bool):
    """Encode the ``--from`` performance against the score: its p_codec (unplayed notes filled
    from their neighbours) and c_codec. Returns the score view that the alignment uses."""
    from .align import auto_align, check_coverage, load_performance
    from .codec import fill_unplayed
    from .layouts import PerformanceSource
    from .scores import load_score

    perf, al = load_performance(perf_path, alignment)
    if al is None:
        al = auto_align(score.part, perf)
    elif unfold != needs_unfolding(matched_pairs(al), load_score(score_path, unfold=False).note_ids):
        score = load_score(score_path, unfold=not unfold)  # the alignment's ids decide the unfolding
    check_coverage(al, score, perf, perf_path.name)
    src = PerformanceSource("input", "", perf_path.stem, score_path, perf_path, alignment, perf_path.parent)
    enc = encode_performance(src, score, perf, al)
    p = fill_unplayed(enc.p_codec.astype(np.float32), enc.mask)
    return score, {"p_codec": p, "c_codec": enc.c_codec.astype(np.float32), "mask": enc.mask}
