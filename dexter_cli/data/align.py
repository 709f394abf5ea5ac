"""A performance of a score, aligned to it: given alignments or parangonar's automatic one."""

from __future__ import annotations

import contextlib
import logging
import io
from pathlib import Path

import numpy as np

from ..errors import DexterError
from ._partitura import load_alignment_from_ASAP, load_parangonada_alignment, pt, quiet
from .encode import matched_pairs, needs_unfolding

# a performance "of this piece" must match at least this fraction of the score's notes
MIN_MATCHED_FRACTION = 0.5


def load_performance(path: Path, alignment: Path | None = None) -> tuple[object, list[dict] | None]:
    """Read a performance (MIDI or match) and its alignment when one is given or inside it.

    Returns
    -------
    performance : partitura Performance
    alignment : list of dict or None
        None when it must be computed (a MIDI without an alignment file).
    """
    path = Path(path)
    if not path.is_file():
        raise DexterError(f"performance not found: {path}")
    try:
        with quiet():
            if path.suffix == ".match":
                perf, al = pt.load_match(str(path))
                return perf, list(al)
            perf = pt.load_performance_midi(str(path))
            if alignment is None:
                return perf, None
            alignment = Path(alignment)
            if not alignment.is_file():
                raise DexterError(f"alignment not found: {alignment}")
            if alignment.suffix == ".csv":
                return perf, list(load_parangonada_alignment(str(alignment)))
            return perf, list(load_alignment_from_ASAP(str(alignment)))
    except DexterError:
        raise
    except Exception as exc:
        raise DexterError(f"cannot read performance {path.name}: {type(exc).__name__}: {exc}") from exc


def auto_align(score_part: object, perf: object) -> list[dict]:
    """parangonar's automatic note alignment (its console chatter silenced), the same on every call."""
    try:
        import parangonar as pa
    except ImportError as exc:  # it is a dependency; a broken install says so plainly
        raise DexterError("automatic alignment needs parangonar (pip install parangonar)") from exc
    # parangonar samples chord combinations from numpy's global generator: seeded here (and the
    # caller's state restored) so that the same score and performance always align the same way
    state = np.random.get_state()
    np.random.seed(0)
    chatter = logging.getLogger("parangonar")  # its matcher logs a warning per large chord combination
    level = chatter.level
    chatter.setLevel(logging.ERROR)
    with quiet(), contextlib.redirect_stdout(io.StringIO()):
        try:
            return list(pa.AutomaticNoteMatcher()(score_part.note_array(), perf.note_array(), verbose_time=False))
        except Exception as exc:
            raise DexterError(f"automatic alignment failed: {type(exc).__name__}: {exc}") from exc
        finally:
            np.random.set_state(state)
            chatter.setLevel(level)


def check_coverage(alignment: list[dict], score: object, perf: object, name: str) -> float:
    """Fraction of score notes matched with the right pitch; refuse a performance of another piece:
    at least ``MIN_MATCHED_FRACTION`` of the score's notes and of the performance's must be matched.

    Parameters
    ----------
    alignment : list of dict
    score : LoadedScore
    perf : partitura Performance
    name : str
        For the message.
    """
    s_pitch = dict(zip(score.note_ids.tolist(), score.note_array["pitch"].tolist()))
    pna = perf.note_array()
    p_pitch = dict(zip(pna["id"].astype(str).tolist(), pna["pitch"].tolist()))
    good = sum(1 for s, p in matched_pairs(alignment) if s in s_pitch and s_pitch[s] == p_pitch.get(p))
    frac = good / max(1, len(score.note_ids))
    if frac < MIN_MATCHED_FRACTION:
        raise DexterError(f"{name} matches only {100 * frac:.0f}% of the score's notes: is it a performance of this piece?")
    perf_frac = good / max(1, len(p_pitch))  # a longer performance of another piece can cover a short score
    if perf_frac < MIN_MATCHED_FRACTION:
        raise DexterError(f"only {100 * perf_frac:.0f}% of the notes of {name} match the score "
                          f"({100 * frac:.0f}% of the score's notes are matched): is it a performance of this piece?")
    return frac


__all__ = ["auto_align", "check_coverage", "load_performance", "needs_unfolding"]
