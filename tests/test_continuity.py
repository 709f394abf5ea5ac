"""Seams at window edges (dexter_cli/evaluation/continuity.py)."""

from __future__ import annotations

import numpy as np
import pytest

from dexter_cli.diffusion.windows import window_edges


def test_boundary_jumps_find_a_step_at_a_window_edge():
    from dexter_cli.evaluation.continuity import boundary_jumps

    onset = np.repeat(np.arange(20.0), 2)  # 20 onsets, two notes each
    p = np.zeros((40, 5))
    p[:, 0] = 0.5
    p[:, 1] = np.where(np.arange(40) < 20, 0.3, 0.6)  # a velocity step at note 20
    j = boundary_jumps(onset, p, edges=[20])
    assert j["velocity_edge"] == pytest.approx(0.3 * 127) and j["velocity_inside"] == 0
    assert j["tempo_edge"] == 0 and j["tempo_inside"] == 0


def test_paired_seams_hold_the_score_fixed():
    """The music's own jumps at the edges fool the unpaired check, not the paired one; a real
    step at each layout's edges is found by both."""
    from dexter_cli.evaluation.continuity import boundary_jumps, paired_seams

    n, window, stride = 600, 100, 50
    edges = (window_edges(n, window, stride, 0), window_edges(n, window, stride, 25))
    onset = np.arange(float(n))
    rng = np.random.default_rng(0)
    plain = 60 + 10 * np.sin(np.arange(n) / 6) + rng.normal(0, 1, n)
    music = plain.copy()
    music[edges[0]] += 15  # the score accents exactly the notes where layout A's windows meet

    def render(velocity: np.ndarray) -> np.ndarray:
        p = np.zeros((n, 5))
        p[:, 0], p[:, 1] = 0.5, velocity / 127
        return p

    def stepped(layout_edges: list[int], seed: int) -> np.ndarray:  # a level step of 6 at every edge
        level = 6.0 * (np.searchsorted(layout_edges, np.arange(n), side="right") % 2)
        return render(plain + level + np.random.default_rng(seed).normal(0, 0.5, n))

    smooth = ([render(music)] * 3, [render(music)] * 3)
    unpaired = boundary_jumps(onset, smooth[0][0], edges[0])
    assert unpaired["velocity_edge"] > 2 * unpaired["velocity_inside"]  # "a seam", but it is the score
    clean = paired_seams(onset, smooth, edges)
    assert clean["velocity_seam"] == pytest.approx(0) and clean["tempo_seam"] == pytest.approx(0)
    assert clean["pairs"] == len(set(edges[0]) ^ set(edges[1]))  # one note per onset: one pair per edge
    seamy = paired_seams(onset, ([stepped(edges[0], k) for k in range(3)], [stepped(edges[1], k) for k in range(3)]),
                         edges)
    assert seamy["velocity_seam"] > 3 * seamy["velocity_seam_se"] and seamy["velocity_seam"] > 2.0
