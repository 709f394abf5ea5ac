"""The curves' spread (dexter_cli/spread.py): a gain on the range that keeps the shape."""

from __future__ import annotations

import numpy as np
import pytest

from dexter_cli.errors import DexterError
from dexter_cli.evaluation.metrics import Performance, onset_curves
from dexter_cli.spread import parse_spread, widen_curves


def _codec(rng: np.random.Generator, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    onset = np.sort(rng.integers(0, 120, n)).astype(float) / 2  # chords: shared onsets
    p = np.zeros((n, 5), dtype=np.float32)
    _, g = np.unique(onset, return_inverse=True)
    p[:, 0] = (0.5 * np.exp(0.2 * np.sin(np.arange(g.max() + 1) / 7)))[g]  # one beat period per onset
    p[:, 1] = np.clip(0.5 + 0.08 * np.sin(onset / 5) + 0.03 * rng.standard_normal(n), 0.05, 0.95)
    p[:, 2:] = rng.standard_normal((n, 3)) * 0.01
    return onset, p


def test_widening_scales_the_range_and_keeps_the_shape_and_the_rest():
    onset, p = _codec(np.random.default_rng(0))
    q = widen_curves(p, onset, tempo=1.5, velocity=2.0)
    (t0, v0), (t1, v1) = (onset_curves(onset, Performance(x, np.ones(len(x), bool))) for x in (p, q))
    t0, t1 = t0[:-1], t1[:-1]  # the last onset has no tempo (a codec convention)
    # the curves as dexter evaluate reads them: same shape (r = 1), 1.5x / 2x the range, same means
    assert np.corrcoef(np.log(t0), np.log(t1))[0, 1] == pytest.approx(1.0, abs=1e-6)
    assert np.corrcoef(v0, v1)[0, 1] == pytest.approx(1.0, abs=1e-6)
    assert np.std(np.log(t1)) / np.std(np.log(t0)) == pytest.approx(1.5, rel=1e-4)
    assert np.std(v1) / np.std(v0) == pytest.approx(2.0, rel=1e-4)
    assert np.mean(v1) == pytest.approx(np.mean(v0), abs=1e-3)
    # every note moves with its onset: the voicing within a chord and the note-level rows stay
    _, g = np.unique(onset, return_inverse=True)
    shift = (q[:, 1] - p[:, 1]).astype(np.float64)
    assert np.allclose(shift, (np.bincount(g, shift) / np.bincount(g))[g], atol=1e-6)
    assert np.array_equal(q[:, 2:], p[:, 2:])
    assert np.array_equal(widen_curves(p, onset), p)  # gain 1: unchanged
    flat = widen_curves(p, onset, tempo=0.0, velocity=0.0)  # gain 0: a flat curve at the mean
    assert np.ptp(onset_curves(onset, Performance(flat, np.ones(len(p), bool)))[1]) < 1e-2


def test_widening_clips_velocities_to_midi_and_takes_a_batch():
    onset, p = _codec(np.random.default_rng(1))
    batch = np.stack([p, p[::-1].copy()])
    q = widen_curves(batch, onset, velocity=4.0)
    assert q.shape == batch.shape
    assert q[..., 1].min() >= 1 / 127 - 1e-7 and q[..., 1].max() <= 1.0
    assert np.allclose(q[0], widen_curves(p, onset, velocity=4.0))  # each sample on its own


def test_parse_spread():
    assert parse_spread("2") == (2.0, 2.0, 2.0)
    assert parse_spread("1, 2.1") == (1.0, 2.1, 1.0)
    assert parse_spread("1,2.1,1.6") == (1.0, 2.1, 1.6)
    for bad in ("x", "1,2,3,4", "-1", "9", "nan"):
        with pytest.raises(DexterError, match="--spread"):
            parse_spread(bad)


def test_voicing_gain_widens_chords_and_leaves_the_curves():
    from dexter_cli.evaluation.metrics import voicing

    onset, p = _codec(np.random.default_rng(2))
    q = widen_curves(p, onset, voicing=1.6)
    mask = np.ones(len(p), bool)
    a, b = voicing(onset, Performance(p, mask)), voicing(onset, Performance(q, mask))
    ok = np.isfinite(a)
    assert ok.sum() > 20 and np.allclose(b[ok], 1.6 * a[ok], atol=1e-3)
    (t0, v0), (t1, v1) = (onset_curves(onset, Performance(x, mask)) for x in (p, q))
    assert np.allclose(v0, v1, atol=1e-3) and np.array_equal(t0, t1, equal_nan=True)  # the onsets' means stay
    both = widen_curves(p, onset, velocity=2.0, voicing=1.6)  # the two gains compose
    assert np.allclose(both, widen_curves(widen_curves(p, onset, velocity=2.0), onset, voicing=1.6), atol=1e-6)
