"""Whole-piece metrics over codecs (dexter_cli/evaluation/metrics.py), on values computed by hand."""

from __future__ import annotations


import numpy as np
import pytest

from dexter_cli.evaluation.metrics import Performance, compare, marking_agreement


def test_voicing_is_each_notes_velocity_less_its_onsets_mean():
    from dexter_cli.evaluation.metrics import voicing

    onset = np.array([0.0, 0.0, 0.0, 1.0, 2.0, 2.0])
    p = np.zeros((6, 5), dtype=np.float32)
    p[:, 1] = np.array([90, 60, 60, 70, 50, 80]) / 127
    mask = np.array([True, True, True, True, True, False])
    v = voicing(onset, Performance(p, mask))
    # a chord of three: the top note 20 above the mean; a lone note and a chord with one note played: no voicing
    assert np.allclose(v[:3], [20, -10, -10], atol=1e-4) and np.isnan(v[3:]).all()
    louder = p.copy()
    louder[:3, 1] = np.array([110, 50, 50]) / 127  # the same voicing, twice as wide
    other = compare(onset, Performance(louder, mask), Performance(p, mask))
    assert other["voicing_r"] == pytest.approx(1.0) and other["voicing_dev"] == pytest.approx(80 / 3 - 40 / 3, abs=1e-3)


def test_marking_agreement_follows_the_marked_levels():
    level = np.array([2.0, 2.0, 5.0, 5.0, np.nan, 1.0])
    assert marking_agreement(np.array([50, 52, 80, 82, 10, 30.0]), level) > 0.9  # ties in the levels keep it below 1
    assert marking_agreement(np.array([80, 82, 50, 52, 10, 90.0]), level) < -0.8
    assert marking_agreement(np.full(6, 64.0), level) == 0.0  # flat: no agreement
    assert np.isnan(marking_agreement(np.arange(6.0), np.full(6, 3.0)))  # one level: undefined
    assert np.isnan(marking_agreement(np.arange(6.0), None))


def test_the_summary_plot_of_pieces_with_one_human_gives_no_warning(tmp_path):
    import warnings

    from dexter_cli.evaluation.metrics import METRICS
    from dexter_cli.plots import plot_evaluation_summary

    summary = {"human": {k: float("nan") for k in METRICS}, "deadpan": {k: 0.5 for k in METRICS}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_evaluation_summary(tmp_path / "s.png", summary)
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
