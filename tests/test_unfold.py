"""The maximal unfolding (dexter_cli.data.unfold) against partitura's ``unfold_part_maximal``:
the same note array (ids included) and the same s_codec, on scores built here and on every
shared score."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from dexter_cli.data._partitura import pt, quiet
from dexter_cli.data.scores import LoadedScore, note_array, parse_score, score_features
from dexter_cli.data.unfold import plays_as_written, unfold_maximal
from dexter_cli.data.vocab import S_CODEC_NAMES

from .synth import make_score


def _loaded(part) -> LoadedScore:
    na = note_array(part)
    order = np.lexsort((na["pitch"], na["onset_div"]))
    return LoadedScore(part, na["id"][order].astype(str), order, na[order], True)


def _partituras_and_ours(path: Path, part=None) -> tuple[LoadedScore, LoadedScore, bool]:
    """(partitura's unfolding, dexter's, whether dexter's took the as-written path), each of its
    own parse of ``path`` (dexter's renames the notes of its part in place; ``part``: a parse of
    ``path`` already made, for dexter's)."""
    with quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = pt.score.unfold_part_maximal(parse_score(path), update_ids=True)
        part = parse_score(path) if part is None else part
        path_ = pt.score.get_paths(part, no_repeats=False, all_repeats=True, ignore_leap_info=True)[0]
        ours = unfold_maximal(part, in_place=True)
        return _loaded(theirs), _loaded(ours), plays_as_written(path_, part) and ours is part


def _assert_same(theirs: LoadedScore, ours: LoadedScore, name: str) -> None:
    assert theirs.note_array.dtype == ours.note_array.dtype, name
    for field in theirs.note_array.dtype.names:
        assert np.array_equal(theirs.note_array[field], ours.note_array[field]), (name, field)
    assert list(theirs.note_ids) == list(ours.note_ids), name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(score_features(theirs), score_features(ours), err_msg=name)


def _with_repeat(path: Path) -> None:
    """A 17-note score (a chord on the first beat) whose second bar is repeated."""
    make_score(path, n_notes=17, chord_every=100)
    part = pt.load_musicxml(str(path)).parts[0]
    bar = 4 * part._quarter_durations[0]
    part.add(pt.score.Repeat(), start=bar, end=2 * bar)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pt.save_musicxml(part, str(path))


def test_a_score_without_repeats_is_renamed_not_rebuilt(tmp_path):
    score = tmp_path / "plain.musicxml"
    make_score(score, n_notes=24)
    part = pt.load_musicxml(str(score)).parts[0]
    notes = sorted(part.notes, key=lambda n: n.start.t)
    part.add(pt.score.Slur(notes[2], notes[6]), start=notes[2].start.t, end=notes[6].end.t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pt.save_musicxml(part, str(score))
        folded = score_features(_loaded(parse_score(score)))
    slur = S_CODEC_NAMES.index("slur_incr")
    assert folded[:, slur].max() > 0  # the score as written has its slur
    theirs, ours, as_written = _partituras_and_ours(score)
    assert as_written
    assert all(i.endswith("-1") for i in ours.note_ids)
    _assert_same(theirs, ours, score.name)  # unfolded, it has not (partitura's copy drops it)


def test_a_score_with_a_repeat_is_unfolded_by_partitura(tmp_path):
    score = tmp_path / "repeat.musicxml"
    _with_repeat(score)
    theirs, ours, as_written = _partituras_and_ours(score)
    assert not as_written
    second = {i[:-2] for i in ours.note_ids if i.endswith("-2")}  # the repeated bar's four notes
    assert len(ours.note_ids) == 21 and len(second) == 4 and {f"{i}-1" for i in second} <= set(ours.note_ids)
    _assert_same(theirs, ours, score.name)


@pytest.mark.parametrize("kind", ["MUSICXML", "MEI", "KERN", "MIDI"])
def test_partituras_examples_in_every_format_unfold_as_partitura_unfolds_them(kind):
    theirs, ours, _ = _partituras_and_ours(Path(getattr(pt, f"EXAMPLE_{kind}")))
    _assert_same(theirs, ours, kind)


@pytest.mark.slow
def test_every_shared_score_unfolds_as_partitura_unfolds_it(shared_datasets):
    scores = sorted(p for p in shared_datasets.rglob("*") if p.suffix in (".musicxml", ".xml")
                    and p.parent.name != "cep_features")
    assert len(scores) > 200
    plain = 0
    for path in scores:
        with quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            part = parse_score(path)
            found = pt.score.get_paths(part, no_repeats=False, all_repeats=True, ignore_leap_info=True)[0]
        if not plays_as_written(found, part):
            continue  # unfolded by partitura's own get_paths and new_part_from_path, as unfold_part_maximal does
        theirs, ours, as_written = _partituras_and_ours(path, part)
        assert as_written, path
        plain += 1
        _assert_same(theirs, ours, str(path.relative_to(shared_datasets)))
    assert plain > 50, plain  # many scores take the renaming path


def test_a_part_is_changed_only_in_place(tmp_path):
    # the codec keeps one parse of a score for its folded and unfolded readings
    score = tmp_path / "plain.musicxml"
    make_score(score, n_notes=8)
    part = parse_score(score)
    ids = [n.id for n in part.notes]
    with quiet():
        unfolded = unfold_maximal(part)
    assert unfolded is not part and [n.id for n in part.notes] == ids
    assert sorted(n.id for n in unfolded.notes) == sorted(f"{i}-1" for i in ids)
