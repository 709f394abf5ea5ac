"""Maximal unfolding of a score's repeats, without rebuilding a score that has none.

partitura's ``unfold_part_maximal`` copies every object of the part onto a new timeline, which
takes about as long as parsing the score. When the maximal path plays the score as written (no
repeat, ending or jump changes the order of its segments), that copy has the same notes at the same
times, and only the note ids change (``<id>-1``) and the slurs drop out (below):
:func:`unfold_maximal` then does that in place instead.
"""

from __future__ import annotations

from ._partitura import pt


def plays_as_written(path: object, part: object) -> bool:
    """Whether partitura's unfolding along ``path`` would give the part itself, renamed.

    Parameters
    ----------
    path : partitura score path
        The maximal path of ``part`` (``get_paths(part, ...)[0]``).
    part : partitura Part

    Returns
    -------
    bool
        True when the path visits the part's segments once each, in order, from its first time
        point (at 0: the copy starts its timeline there) to its last, and the part's note ids
        are unique (the copy numbers a repeated id ``-1``, ``-2``, ...).
    """
    segments = [path.segments[key] for key in path.path]
    if not segments or len(set(path.path)) != len(path.path):
        return False
    if part.first_point.t != 0 or segments[0].start.t != 0 or segments[-1].end.t != part.last_point.t:
        return False
    if not all(a.end.t == b.start.t for a, b in zip(segments, segments[1:])):
        return False
    ids = [note.id for note in part.notes if note.id is not None]
    return len(ids) == len(set(ids))


def unfold_maximal(part: object, in_place: bool = False) -> object:
    """partitura's ``unfold_part_maximal(part, update_ids=True)`` (every repeat played, note ids
    ``<id>-<pass>``), the same notes, times and ids.

    With ``in_place``, a part whose maximal path plays it as written is returned itself, changed
    as partitura's copy would differ from it (notes renamed ``<id>-1``, slurs on notes taken off
    the timeline); any other part, or any part without ``in_place``, is unfolded by partitura.

    Parameters
    ----------
    part : partitura Part
        One part (dexter merges a score's parts before unfolding).
    in_place : bool
        Whether ``part`` may be changed (its caller holds no other view of it).

    Returns
    -------
    partitura Part
    """
    path = pt.score.get_paths(part, no_repeats=False, all_repeats=True, ignore_leap_info=True)[0]
    if not (in_place and plays_as_written(path, part)):
        return pt.score.new_part_from_path(path, part, update_ids=True)
    for note in part.notes:
        if note.id is not None:
            note.id = f"{note.id}-1"
    # partitura's copy leaves every slur that starts on a note off the timeline (the setter of
    # Slur.start_note takes the copy off its start point), so an unfolded score has no such slur
    # for its features to see; so that a score reads the same either way, they go here too
    for slur in list(part.iter_all(pt.score.Slur)):
        if slur.start_note is not None:
            slur.start.remove_starting_object(slur)
    return part
