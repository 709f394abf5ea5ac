"""Scores: load (merged, unfolded as the alignment requires) and s_codec features.

The s_codec vocabulary is fixed (``S_CODEC_NAMES``): every piece produces the
same columns whatever its meter, markings or instrumentation. Values are raw
(beats, MIDI pitch / 127, 0/1 flags); normalisation happens in the model.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DexterError, DexterWarning
from ._partitura import pt, quiet
from .score_checks import check_kern, check_mei, check_musicxml
from .unfold import unfold_maximal

from .vocab import _ARTICULATIONS, _FEATURE_FUNCTIONS, _NA_COLUMNS, _PT_COLUMNS, S_CODEC_NAMES  # noqa: F401


SCORE_SUFFIXES = (".musicxml", ".xml", ".mxl", ".mei", ".krn", ".kern", ".mid", ".midi")


@dataclass
class LoadedScore:
    """A score ready for encoding.

    Attributes
    ----------
    part : partitura Part
        All parts merged into one; unfolded when ``unfolded``.
    note_ids : ndarray of str
        Score note ids in canonical order (onset, then pitch).
    order : ndarray of int
        ``note_ids = part.note_array()["id"][order]``.
    note_array : ndarray (structured)
        ``part.note_array(...)`` in canonical order.
    unfolded : bool
        Whether repeats were unfolded maximally (ids like ``n12-2``).
    s_codec : ndarray or None
        :func:`score_features` of the score, once computed (read-only).
    """

    part: object
    note_ids: np.ndarray
    order: np.ndarray
    note_array: np.ndarray
    unfolded: bool
    s_codec: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.note_ids)


def parse_score(path: Path) -> object:
    """Parse a score file and merge its parts into one (no unfolding).

    Parameters
    ----------
    path : Path
        Any score format partitura reads (MusicXML, MXL, MEI, kern, MIDI).

    Returns
    -------
    partitura Part

    Raises
    ------
    DexterError
        A file partitura cannot read, or would misread (:mod:`dexter_cli.data.score_checks`).

    Warns
    -----
    DexterWarning
        Repeat counts (``times``) that are not honoured.
    """
    path = Path(path)
    if not path.is_file():
        raise DexterError(f"score not found: {path}")
    if path.suffix.lower() not in SCORE_SUFFIXES:
        raise DexterError(f"{path.name}: not a score format dexter reads (MusicXML .musicxml/.xml/.mxl, MEI .mei, "
                          f"Humdrum .krn/.kern, MIDI .mid/.midi)")
    if path.stat().st_size == 0:
        raise DexterError(f"cannot read score {path.name}: the file is empty")
    suffix, notes = path.suffix.lower(), []
    try:
        with quiet():
            if suffix in (".krn", ".kern"):
                check_kern(path)
            elif suffix in (".musicxml", ".xml", ".mxl"):
                notes = check_musicxml(path)
            with_ids = check_mei(path) if suffix == ".mei" else None
            parts = list((_load_with_ids(path, with_ids) if with_ids is not None else pt.load_score(str(path))).parts)
            if not parts:
                raise DexterError(f"score has no parts: {path}")
            part = pt.score.merge_parts(parts) if len(parts) > 1 else parts[0]
    except DexterError:
        raise
    except Exception as exc:  # partitura raises many types on malformed files
        raise DexterError(f"cannot read score {path.name}: {_why(exc, suffix)}") from exc
    for note in notes:
        warnings.warn(note, DexterWarning, stacklevel=2)
    return part


def _load_with_ids(path: Path, document: bytes) -> object:
    """partitura's score of an MEI document given as bytes (read from a copy named as ``path``)."""
    with tempfile.TemporaryDirectory(prefix="dexter-") as tmp:
        copy = Path(tmp) / path.name
        copy.write_bytes(document)
        return pt.load_score(str(copy))


def _why(exc: Exception, suffix: str = "") -> str:
    """One line on an exception partitura raised: its type and message, whitespace folded, without
    libxml2's advice to parse with XML_PARSE_HUGE (not the user's to take); an MEI file's KeyError
    names the attribute or value partitura looked for."""
    if isinstance(exc, KeyError) and suffix == ".mei":
        key = exc.args[0] if exc.args else None
        return (f"{key!r} is missing or has a value partitura does not read (KeyError)" if key is not None
                else "an attribute or reference that partitura needs is missing (KeyError: None)")
    why = re.sub(r",? (?:try|use) XML_PARSE_HUGE(?: option)? ?", "", " ".join(str(exc).split()))
    return f"{type(exc).__name__}: {why or 'the file ends early (truncated?)'}"


def prepare_score(part: object, unfold: bool = False, name: str = "score", in_place: bool = False) -> LoadedScore:
    """Put a parsed part in canonical note order, optionally unfolding its repeats.

    Parameters
    ----------
    part : partitura Part
        From :func:`parse_score`.
    unfold : bool
        Unfold repeats maximally with ids ``<id>-<pass>`` (ASAP's convention).
    name : str
        Used in error messages.
    in_place : bool
        Whether unfolding may change ``part`` rather than copy it (faster for a score without
        repeats; :func:`~dexter_cli.data.unfold.unfold_maximal`): only for a part nothing else holds.

    Raises
    ------
    DexterError
        No notes, or none that lasts any time (grace notes only, every duration 0).

    Warns
    -----
    DexterWarning
        Pitches outside MIDI's 0-127 (a performance plays them clamped to that range).
    """
    notes = part.notes_tied
    if not notes:
        raise DexterError(f"score has no notes: {name}")
    if all(n.duration_tied == 0 for n in notes):  # partitura's maps need a score that lasts some time
        raise DexterError(f"cannot read score {name}: none of its {len(notes)} notes lasts any time "
                          "(grace notes only, or every duration 0)")
    try:
        with quiet():
            if unfold:
                part = unfold_maximal(part, in_place)
            na = note_array(part)
    except Exception as exc:
        raise DexterError(f"cannot read score {name}: {_why(exc)}") from exc
    if len(na) == 0:
        raise DexterError(f"score has no notes: {name}")
    outside = na["pitch"][(na["pitch"] < 0) | (na["pitch"] > 127)]
    if len(outside):
        span = f"{outside.min()}" if outside.min() == outside.max() else f"{outside.min()} to {outside.max()}"
        notes = f"{len(outside)} note" + ("s" if len(outside) > 1 else "")
        warnings.warn(f"{name}: pitches outside MIDI's range 0-127 ({span}, {notes}) are played clamped to 0 and 127",
                      DexterWarning, stacklevel=2)
    order = np.lexsort((na["pitch"], na["onset_div"]))
    return LoadedScore(part, na["id"][order].astype(str), order, na[order], unfold)


def note_array(part: object) -> np.ndarray:
    """``part.note_array(include_staff, include_time_signature, include_metrical_position,
    include_grace_notes)``, the same array, computed faster.

    partitura evaluates its beat, quarter, time-signature and metrical-position maps (scipy
    interpolators) once per note, which is most of the time it takes (over a second on a
    5,000-note score). Here each map is evaluated once over every distinct time at which the
    notes start or end, and partitura's own ``note_array_from_note_list`` reads the values back
    from that table: an interpolator gives each point the same value in a vector as alone.
    """
    from partitura.utils.music import note_array_from_note_list

    notes = part.notes_tied
    on = np.fromiter((n.start.t for n in notes), dtype=np.int64, count=len(notes))
    off = on + np.fromiter((n.duration_tied for n in notes), dtype=np.int64, count=len(notes))
    times, starts = np.unique(np.concatenate([on, off])), np.unique(on)
    beat, quarter = dict(zip(times.tolist(), part.beat_map(times))), dict(zip(times.tolist(), part.quarter_map(times)))
    ts = dict(zip(starts.tolist(), part.time_signature_map(starts)))
    mp = dict(zip(starts.tolist(), part.metrical_position_map(starts)))
    return note_array_from_note_list(
        notes, beat_map=lambda t: np.array([beat[x] for x in t]), quarter_map=lambda t: np.array([quarter[x] for x in t]),
        time_signature_map=ts.__getitem__, metrical_position_map=mp.__getitem__,
        include_grace_notes=True, include_staff=True)


def load_score(path: Path, unfold: bool = False) -> LoadedScore:
    """Load a score, merge its parts, optionally unfold its repeats maximally.

    Parameters
    ----------
    path : Path
        Any score format partitura reads (MusicXML, MXL, MEI, kern, MIDI).
    unfold : bool
        Unfold repeats maximally with ids ``<id>-<pass>`` (ASAP's convention).

    Returns
    -------
    LoadedScore
        Shared by every call on the same file content, name and ``unfold`` while it is among the
        last ``LOADED_SCORES`` loaded (a changed file is a new score): read it, do not change it.
    """
    path = Path(path)
    try:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        key = (digest.hexdigest(), path.name, bool(unfold))
    except OSError:
        key = None  # parse_score says what is wrong with the path
    if key in _LOADED:
        _LOADED.move_to_end(key)
        score, said = _LOADED[key]
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DexterWarning)
            score = prepare_score(parse_score(path), unfold, path.name, in_place=True)
        said = [str(w.message) for w in caught if issubclass(w.category, DexterWarning)]
        for w in caught:  # anything else, passed on as it came
            if not issubclass(w.category, DexterWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if key is not None:
            _LOADED[key] = (score, said)
            while len(_LOADED) > LOADED_SCORES:
                _LOADED.popitem(last=False)
    for message in said:  # said at every load, the first or one from the cache
        warnings.warn(message, DexterWarning, stacklevel=2)
    return score


LOADED_SCORES = 4  # scores load_score keeps (a piece evaluated or rendered again is not parsed again)
_LOADED: OrderedDict[tuple[str, str, bool], tuple[LoadedScore, list[str]]] = OrderedDict()


def score_features(score: LoadedScore) -> np.ndarray:
    """Compute the s_codec of a score: one row per note, columns ``S_CODEC_NAMES``.

    Parameters
    ----------
    score : LoadedScore

    Returns
    -------
    ndarray, shape (n_notes, len(S_CODEC_NAMES)), float32
        Read-only; computed once per score and kept on it.
    """
    if score.s_codec is not None:
        return score.s_codec
    na = score.note_array
    feats, names = _note_features(score)
    col = {n: i for i, n in enumerate(names)}
    out = np.zeros((len(na), len(S_CODEC_NAMES)), dtype=np.float64)
    j = 0
    for name in _NA_COLUMNS:
        out[:, j] = na[name].astype(np.float64)
        j += 1
    # inter-onset interval to the next distinct onset, in beats (0 for the last onset)
    onsets = na["onset_beat"].astype(np.float64)
    uniq = np.unique(onsets)
    nxt = np.searchsorted(uniq, onsets, side="right")
    ioi = np.where(nxt < len(uniq), uniq[np.minimum(nxt, len(uniq) - 1)] - onsets, 0.0)
    out[:, j] = ioi
    j += 1
    for name, src in _PT_COLUMNS.items():
        if src in col:
            out[:, j] = feats[:, col[src]]
        j += 1
    for name, srcs in _ARTICULATIONS.items():
        present = [col[s] for s in srcs if s in col]
        if present:
            out[:, j] = feats[:, present].max(axis=1)
        j += 1
    out[~np.isfinite(out)] = 0.0
    score.s_codec = out.astype(np.float32)
    score.s_codec.flags.writeable = False  # shared by every caller of this score
    return score.s_codec


def _note_features(score: LoadedScore) -> tuple[np.ndarray, list[str]]:
    """partitura's note features (``_FEATURE_FUNCTIONS``) in canonical note order, with names.

    What ``make_note_feats(part, ..., include_empty_features=True, force_fixed_size=True)``
    computes, without rebuilding the note array it builds again for every call (two
    seconds on a 5,000-note score): each feature function gets the note array that
    :func:`prepare_score` already made, in partitura's own order. A function that fails
    on an odd score (NaN beat phase without a time signature, say) or yields non-finite
    values leaves its columns out (0 in the s_codec), as ``make_note_feats`` would refuse them.
    """
    nf = pt.musicanalysis.note_features
    na = np.empty_like(score.note_array)
    na[score.order] = score.note_array  # back to partitura's order, which feature rows follow
    blocks, names = [], []
    for fname in _FEATURE_FUNCTIONS:
        func = getattr(nf, fname)
        try:
            with quiet():
                f, n = func(na, score.part, include_empty_features=True)
        except Exception:
            continue
        f = np.asarray(f, dtype=np.float64)
        if f.size == 0 or f.ndim != 2 or f.shape != (len(na), len(n)) or not np.isfinite(f).all():
            continue
        blocks.append(f)
        names += [f"{fname}.{x}" for x in n]
    feats = np.concatenate(blocks, axis=1)[score.order] if blocks else np.zeros((len(na), 0))
    return feats, names


def score_markings(score: LoadedScore) -> list[tuple[float, str]]:
    """Dynamics and tempo markings of a score as (onset in beats, text), for plots."""
    out = []
    try:
        with quiet():
            part = score.part
            for d in part.iter_all(pt.score.Direction):
                text = getattr(d, "text", None) or type(d).__name__
                out.append((float(part.beat_map(d.start.t)), str(text)))
    except Exception:  # markings only decorate a plot; a score without them is fine
        return []
    return sorted(out)


def notated_beat_period(score: LoadedScore) -> float | None:
    """Seconds per beat of the score's first metronome marking, or None without one."""
    try:
        with quiet():
            tempos = list(score.part.iter_all(pt.score.Tempo))
            if not tempos:
                return None
            t = tempos[0]
            seconds_per_quarter = t.microseconds_per_quarter / 1e6
            quarters_per_beat = float(score.part.quarter_map(score.part.inv_beat_map(1.0)) -
                                      score.part.quarter_map(score.part.inv_beat_map(0.0)))
    except Exception:
        return None
    bp = seconds_per_quarter * quarters_per_beat
    return bp if np.isfinite(bp) and 0.05 < bp < 10 else None
