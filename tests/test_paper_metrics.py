"""The DExter paper's metric definitions (dexter_cli/evaluation/paper.py), against values worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from dexter_cli.data.vocab import S_CODEC_NAMES
from dexter_cli.evaluation.metrics import PAPER_METRICS, Performance
from dexter_cli.evaluation.paper import KDE_CURVES, consistency_std, kde_kl, own_values, paper_metrics, ramp_cor


def test_consistency_is_the_mean_std_under_each_marking():
    velocity = np.array([60.0, 62.0, 80.0, 84.0, 88.0, 40.0, np.nan])
    level = np.array([2, 2, 5, 5, 5, np.nan, 5])  # p, p, f, f, f, unmarked, f but unplayed
    want = (1.0 + np.sqrt(((80 - 84) ** 2 + 0 + (88 - 84) ** 2) / 3)) / 2
    assert consistency_std(velocity, level) == pytest.approx(want)
    assert np.isnan(consistency_std(velocity, np.full(7, np.nan)))


def test_ramp_cor_follows_the_hairpins_direction():
    ramp = np.array([0, 1, 1, 1, 0, -1, -1, -1])
    assert ramp_cor(np.array([50, 50, 60, 70, 60, 70, 60, 50.0]), ramp) == pytest.approx(1.0)
    # a diminuendo played louder cancels a crescendo played louder
    assert ramp_cor(np.array([50, 50, 60, 70, 60, 50, 60, 70.0]), ramp) == pytest.approx(0.0)
    # a flat hairpin counts as no ramp (0), runs of fewer than three onsets are left out
    assert ramp_cor(np.array([60, 60, 60, 60, 50, 50, 40, 70.0]), np.array([1, 1, 1, 1, 0, 0, -1, -1])) == 0.0
    assert np.isnan(ramp_cor(np.arange(5.0), np.zeros(5)))


def test_kde_kl_is_kl_of_the_rendered_from_the_human_density():
    g = np.random.default_rng(0)
    a, b = g.normal(0, 1, 4000), g.normal(1, 1, 4000)
    # KL(N(0, s2) || N(1, s2)) = 1 / (2 s2): 0.5, a little less once the kernel widens both
    assert kde_kl(a, b) == pytest.approx(0.5, abs=0.05)
    assert kde_kl(a, g.normal(0, 1, 4000)) < 0.01
    narrow, wide = g.normal(0, 0.3, 4000), g.normal(0, 1, 4000)
    # the direction: a rendering narrower than the humans costs less than one wider than them
    assert kde_kl(narrow, wide) < kde_kl(wide, narrow)
    assert np.isnan(kde_kl(a, np.ones(10)))


def _piece(n: int = 40):
    s = np.zeros((n, len(S_CODEC_NAMES)), dtype=np.float32)
    s[: n // 2, S_CODEC_NAMES.index("dyn_p")] = 1
    s[n // 2:, S_CODEC_NAMES.index("dyn_f")] = 1
    s[5:15, S_CODEC_NAMES.index("cresc")] = 1
    return np.arange(n, dtype=float), s


def _perf(velocity: np.ndarray, seed: int) -> Performance:
    g = np.random.default_rng(seed)
    p = np.column_stack([0.5 + 0.05 * g.random(len(velocity)), velocity / 127, 0.01 * g.normal(size=len(velocity)),
                         g.normal(size=len(velocity)), g.random(len(velocity))])
    return Performance(p, np.ones(len(velocity), bool))


def test_relative_deviation_is_measured_in_the_humans_spread():
    onset, s = _piece()
    # the p half flat; the f half alternating 80, 80 + k: std k / 2 under f, 0 under p, so each
    # human's consistency is k / 4: 0.25, 0.5, 0.75 (mean 0.5, sample std 0.25)
    humans = [_perf(np.r_[np.full(20, 50.0), 80.0 + k * (np.arange(20) % 2)], k) for k in range(1, 4)]
    # the rendering's f half cycles 80..84: std sqrt(2), so its consistency is sqrt(2) / 2
    pred = _perf(np.r_[np.full(20, 50.0), np.full(20, 80.0) + np.arange(20) % 5], 9)
    got = paper_metrics(onset, pred, humans, s, S_CODEC_NAMES)
    assert set(got) == set(PAPER_METRICS)
    assert got["paper_dyn_consistency_std"] == pytest.approx(np.sqrt(2) / 2)
    assert got["paper_dyn_consistency_std_reldev"] == pytest.approx((np.sqrt(2) / 2 - 0.5) / 0.25)
    assert np.isnan(got["paper_async_pitch_cor"])  # no performance features given
    assert all(np.isfinite(got[f"paper_{k}_kde_kl"]) for k in KDE_CURVES)


def test_pitch_cor_is_the_mean_over_onsets_of_partituras_per_note_value():
    onset = np.array([0.0, 0.0, 1.0, 1.0, 2.0, 3.0])
    _, s = _piece(6)
    perf = _perf(np.full(6, 60.0), 0)
    perf.features = {"async_pitch_cor": np.array([0.5, 0.5, -1.0, np.nan, np.nan, 0.2])}
    # per onset: 0.5, -1.0, (none), 0.2 -> mean of the three defined
    assert own_values(onset, perf, s, S_CODEC_NAMES)["paper_async_pitch_cor"] == pytest.approx((0.5 - 1.0 + 0.2) / 3)
