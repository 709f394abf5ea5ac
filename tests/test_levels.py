"""Level metrics (dexter_cli/evaluation/levels.py): tempo and loudness level against the humans'."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dexter_cli.evaluation.levels import (human_level_ceiling, level_metrics, summarise_levels, tempo_level,
                                          velocity_level)
from dexter_cli.evaluation.metrics import Performance
from dexter_cli.evaluation.statistics import paired_comparison

ONSETS = np.repeat(np.arange(12.0), 2)  # 12 onsets of two notes


def perf(bpm: float, velocity: int) -> Performance:
    p = np.zeros((len(ONSETS), 5))
    p[:, 0] = 60.0 / bpm
    p[:, 1] = velocity / 127
    return Performance(p, np.ones(len(ONSETS), dtype=bool))


HUMANS = [perf(100, 50), perf(120, 60), perf(140, 70)]


def test_levels_of_a_performance():
    assert tempo_level(ONSETS, perf(96, 64)) == pytest.approx(96.0)
    assert velocity_level(perf(96, 64)) == pytest.approx(64.0)
    shaped = perf(100, 64)
    shaped.p_codec[:8, 0] = 60.0 / 50  # the first four onsets at 50 BPM: the median stays at 100
    assert tempo_level(ONSETS, shaped) == pytest.approx(100.0)


def test_a_rendering_against_the_humans_levels_by_hand():
    same = level_metrics(ONSETS, perf(120, 60), HUMANS)
    assert same == {"tempo_level_err": 0.0, "tempo_level_in_range": 1.0, "velocity_level_err": 0.0,
                    "velocity_level_in_range": 1.0}
    fast = level_metrics(ONSETS, perf(200, 90), HUMANS)
    assert fast["tempo_level_err"] == pytest.approx(math.log2(200 / 120))
    assert fast["tempo_level_in_range"] == 0.0  # above 140 x 1.1 = 154
    assert fast["velocity_level_err"] == pytest.approx(30.0) and fast["velocity_level_in_range"] == 0.0  # 70 x 1.1 = 77
    edge = level_metrics(ONSETS, perf(152, 76), HUMANS)  # within the humans' range widened by 10 %
    assert edge["tempo_level_in_range"] == 1.0 and edge["velocity_level_in_range"] == 1.0
    slow = level_metrics(ONSETS, perf(89, 44), HUMANS)  # below 100 x 0.9 = 90 and 50 x 0.9 = 45
    assert slow["tempo_level_in_range"] == 0.0 and slow["velocity_level_in_range"] == 0.0


def test_the_human_ceiling_is_leave_one_out():
    got = human_level_ceiling(ONSETS, HUMANS)
    # 100 against (120, 140): median 130, out of [108, 154]; 120 against (100, 140): in [90, 154];
    # 140 against (100, 120): out of [90, 132]
    errs = [math.log2(130 / 100), math.log2(120 / 120), math.log2(140 / 110)]
    assert got["tempo_level_err"] == pytest.approx(np.median(errs))
    assert got["tempo_level_in_range"] == pytest.approx(1 / 3)


def test_in_range_is_summarised_as_a_share_and_errors_as_a_median():
    rows = [{"tempo_level_err": e, "tempo_level_in_range": i, "velocity_level_err": 1.0, "velocity_level_in_range": 1.0}
            for e, i in ((0.1, 1.0), (0.5, 0.0), (0.2, 0.0), (float("nan"), float("nan")))]
    got = summarise_levels(rows)
    assert got["tempo_level_err"] == pytest.approx(0.2) and got["tempo_level_in_range"] == pytest.approx(1 / 3)


def test_a_paired_comparison_of_errors_counts_lower_as_better():
    a = [{"piece": k, "tempo_level_err": v} for k, v in enumerate((0.1, 0.2, 0.3))]
    b = [{"piece": k, "tempo_level_err": v} for k, v in enumerate((0.5, 0.5, 0.1))]
    got = paired_comparison(a, b, "tempo_level_err")
    assert got["better"] == 2 and got["median"] == pytest.approx(-0.3)
    r_a = [{"piece": k, "tempo_r": v} for k, v in enumerate((0.1, 0.2, 0.3))]
    r_b = [{"piece": k, "tempo_r": v} for k, v in enumerate((0.5, 0.5, 0.1))]
    assert paired_comparison(r_a, r_b, "tempo_r")["better"] == 1
