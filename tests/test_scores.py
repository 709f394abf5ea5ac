"""load_score's cache of loaded scores: keyed by content, bounded, and saying its warnings again."""

from __future__ import annotations

import warnings

import pytest

from dexter_cli.data import scores
from dexter_cli.data.scores import load_score, score_features
from dexter_cli.errors import DexterWarning

from .synth import make_score


def test_the_same_content_is_loaded_once_and_a_changed_file_again(tmp_path):
    score = tmp_path / "s.musicxml"
    make_score(score, n_notes=12)
    first = load_score(score, unfold=True)
    assert load_score(score, unfold=True) is first  # the same file again: not parsed again
    assert load_score(score, unfold=False) is not first  # another reading of it is another score
    features = score_features(first)
    assert score_features(load_score(score, unfold=True)) is features and not features.flags.writeable
    make_score(score, n_notes=13)  # the same path and name, new content
    again = load_score(score, unfold=True)
    assert again is not first and len(again) == 13 and len(first) == 12
    copy = tmp_path / "elsewhere" / "s.musicxml"
    copy.parent.mkdir()
    copy.write_bytes(score.read_bytes())
    assert load_score(copy, unfold=True) is again  # the same content and name, another folder


def test_the_cache_keeps_the_last_few_scores_only(tmp_path):
    paths = []
    for k in range(scores.LOADED_SCORES + 2):
        paths.append(tmp_path / f"s{k}.musicxml")
        make_score(paths[-1], n_notes=4 + k)
    loaded = [load_score(p) for p in paths]
    assert len(scores._LOADED) <= scores.LOADED_SCORES
    assert load_score(paths[-1]) is loaded[-1]
    assert load_score(paths[0]) is not loaded[0]  # the oldest went: loaded afresh


def test_a_score_loaded_again_says_its_warnings_again(tmp_path):
    score = tmp_path / "high.musicxml"
    make_score(score, n_notes=4)
    text = score.read_text()
    assert "<octave>4</octave>" in text
    score.write_text(text.replace("<octave>4</octave>", "<octave>11</octave>", 1))  # a pitch above MIDI's 127
    for _ in range(2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            load_score(score, unfold=True)
        said = [str(w.message) for w in caught if issubclass(w.category, DexterWarning)]
        assert len(said) == 1 and "outside MIDI's range" in said[0], said


@pytest.fixture(autouse=True)
def _empty_cache():
    scores._LOADED.clear()
    yield
    scores._LOADED.clear()
