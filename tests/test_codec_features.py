"""Unit tests of the codec arithmetic: pedal lookup, windowed controls, CEP features."""

import numpy as np

from dexter_cli.data.codec import C_BUILTIN_NAMES, cep_features, control_features, pedal_at


def test_pedal_at_uses_last_event_at_or_before_onset():
    t = np.array([1.0, 0.0, 2.0])  # unsorted on purpose
    v = np.array([127, 0, 64])
    got = pedal_at(np.array([-1.0, 0.0, 0.5, 1.0, 1.5, 2.5]), t, v)
    np.testing.assert_allclose(got, [0, 0, 0, 1, 1, 64 / 127])


def test_pedal_at_without_events_is_zero():
    assert pedal_at(np.array([0.0, 1.0]), np.array([]), np.array([])).tolist() == [0.0, 0.0]


def test_control_features_window_statistics():
    # 8 notes, one per beat; window +-1 beat
    onset = np.arange(8, dtype=float)
    p = np.zeros((8, 5))
    p[:, 0] = 0.5  # 120 BPM everywhere
    p[:, 1] = np.linspace(0.2, 0.9, 8)
    p[:, 3] = -1.0
    p[:, 4] = 1.0
    played = np.ones(8, dtype=bool)
    played[7] = False
    perf_onset = onset * 0.5
    c = control_features(onset, p, played, perf_onset, window_beats=1.0)
    names = list(C_BUILTIN_NAMES)
    np.testing.assert_allclose(c[:, names.index("tempo_level")], 120.0)
    np.testing.assert_allclose(c[:, names.index("rubato")], 0.0, atol=1e-9)
    # note 3 sees notes 2,3,4
    np.testing.assert_allclose(c[3, names.index("loudness")], 127 * p[2:5, 1].mean())
    np.testing.assert_allclose(c[3, names.index("dynamic_range")], 127 * p[2:5, 1].std())
    # note 7 is unplayed: its window holds only note 6
    np.testing.assert_allclose(c[7, names.index("loudness")], 127 * p[6, 1])
    np.testing.assert_allclose(c[:, names.index("articulation")], -1.0)
    np.testing.assert_allclose(c[:, names.index("pedal_amount")], 1.0)
    np.testing.assert_allclose(c[:, names.index("asynchrony")], 0.0)


def test_control_features_asynchrony_is_chord_spread_in_ms():
    onset = np.array([0.0, 0.0, 1.0, 1.0])
    p = np.tile([0.5, 0.5, 0, 0, 0], (4, 1))
    perf_onset = np.array([0.0, 0.03, 0.5, 0.51])
    c = control_features(onset, p, np.ones(4, bool), perf_onset, window_beats=0.1)
    np.testing.assert_allclose(c[:, list(C_BUILTIN_NAMES).index("asynchrony")], [30, 30, 10, 10], atol=1e-6)


def test_control_features_rubato_grows_with_tempo_change():
    onset = np.arange(16, dtype=float)
    steady, rubato = np.tile([0.5, 0.5, 0, 0, 0], (16, 1)), np.tile([0.5, 0.5, 0, 0, 0], (16, 1))
    rubato[:, 0] = 0.5 * np.exp(0.3 * np.sin(onset))
    i = list(C_BUILTIN_NAMES).index("rubato")
    a = control_features(onset, steady, np.ones(16, bool), onset, 4.0)[:, i]
    b = control_features(onset, rubato, np.ones(16, bool), onset, 4.0)[:, i]
    assert (b > a + 0.05).all()


def test_cep_features_step_interpolation_and_unplayed_zero():
    frames = np.array([0.0, 1.0, 2.0])
    vals = np.arange(21, dtype=float).reshape(3, 7)
    got = cep_features(np.array([0.5, 1.5, 9.0, 0.0]), np.array([True, True, True, False]), frames, vals)
    np.testing.assert_allclose(got[0], vals[0])
    np.testing.assert_allclose(got[1], vals[1])
    np.testing.assert_allclose(got[2], vals[2])
    np.testing.assert_allclose(got[3], 0)
