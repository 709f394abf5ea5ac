"""The MIDI file is the performance: decode keeps the codec's invariants, and the evaluation
reads what the file holds (data.decode.project_codec, data.delivered, evaluation.delivered)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dexter_cli.data.decode import decode_performance, onset_groups, performance_midi, project_codec
from dexter_cli.data.delivered import delivered_codec, order_alignment, read_midi
from dexter_cli.data.midi import TICKS_PER_SECOND
from dexter_cli.data.scores import load_score
from dexter_cli.engine import DEFAULT_CHECKPOINT

from .synth import make_score

N_NOTES = 30
TICK = 1.0 / TICKS_PER_SECOND
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False, width=32)


@pytest.fixture(scope="module")
def score():
    folder = Path(tempfile.mkdtemp())
    make_score(folder / "s.musicxml", n_notes=N_NOTES, chord_every=2)
    return load_score(folder / "s.musicxml")


def group_mean(group: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.bincount(group, weights=x) / np.bincount(group)


def tempo_curve_times(onset_beat: np.ndarray, beat_period: np.ndarray) -> np.ndarray:
    """Per score onset, the time the tempo curve reaches it (from 0): sum of beat period x IOI."""
    group, _ = onset_groups(onset_beat)
    u, bp = group_mean(group, onset_beat), group_mean(group, beat_period)
    return np.r_[0.0, np.cumsum(bp[:-1] * np.diff(u))]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(p=arrays(np.float32, (N_NOTES, 5), elements=finite))
def test_projection_keeps_the_codec_invariants(score, p):
    onset = score.note_array["onset_beat"]
    group, _ = onset_groups(onset)
    q = project_codec(onset, p)
    for g in np.unique(group):
        rows = q[group == g]
        assert np.ptp(rows[:, 0]) == 0  # one beat period per onset
        assert abs(rows[:, 2].mean()) < 1e-9  # timing averages to zero over the onset
    assert (q[:, 0] >= 1e-3).all() and (q[:, 0] <= 60).all()
    assert (q[:, 1] >= 1 / 127).all() and (q[:, 1] <= 1).all() and (q[:, 4] >= 0).all() and (q[:, 4] <= 1).all()
    np.testing.assert_allclose(project_codec(onset, q), q, atol=1e-12)  # a projection: idempotent


def test_projection_leaves_a_valid_codec_alone(score):
    onset = score.note_array["onset_beat"]
    group, n = onset_groups(onset)
    rng = np.random.default_rng(0)
    p = np.zeros((len(onset), 5))
    p[:, 0] = rng.uniform(0.3, 1.0, n)[group]
    p[:, 1] = rng.uniform(0.2, 0.9, len(onset))
    t = rng.normal(0, 0.02, len(onset))
    p[:, 2] = t - group_mean(group, t)[group]
    p[:, 3] = rng.normal(0, 0.5, len(onset))
    p[:, 4] = rng.uniform(0, 1, len(onset))
    np.testing.assert_allclose(project_codec(onset, p), p, atol=1e-12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bp=arrays(np.float32, (N_NOTES,), elements=st.floats(0.25, 2.0, width=32)),
       timing=arrays(np.float32, (N_NOTES,), elements=st.floats(-0.03125, 0.03125, width=32)),
       rest=arrays(np.float32, (N_NOTES, 3), elements=finite))
def test_decoded_onsets_are_the_tempo_curve_plus_zero_mean_offsets(score, bp, timing, rest):
    """Any predicted codec, whatever its per-onset timing mean: each score onset's notes sound at
    the tempo curve's time for it, plus offsets that average to zero (the chord's asynchrony)."""
    onset = score.note_array["onset_beat"]
    p = np.column_stack([bp, rest[:, 0], timing, rest[:, 1], rest[:, 2]])
    na = decode_performance(score, p).note_array()
    when = dict(zip(na["id"].astype(str), na["onset_sec"].astype(np.float64)))
    played = np.array([when[i] for i in score.note_ids])
    group, _ = onset_groups(onset)
    eq = tempo_curve_times(onset, project_codec(onset, p)[:, 0])
    shift = group_mean(group, played) - eq  # the decode starts the performance at 0: one shift for all
    np.testing.assert_allclose(shift, shift[0], atol=1e-4)
    q = project_codec(onset, p)
    np.testing.assert_allclose(played - (eq + shift[0])[group], -q[:, 2], atol=1e-4)  # the chord's asynchrony stays


def test_order_alignment_pairs_each_pitch_in_order():
    ids = np.array(["a", "b", "c", "d"])
    pitch = np.array([60, 64, 60, 67])
    expected = np.array([0.0, 0.0, 1.0, 1.0])
    perf = np.array([("p3", 67, 1.01), ("p2", 60, 0.98), ("p1", 64, 0.0), ("p0", 60, 0.02)],
                    dtype=[("id", "U4"), ("pitch", "i4"), ("onset_sec", "f4")])
    pairs = {a["score_id"]: a["performance_id"] for a in order_alignment(ids, pitch, expected, perf)}
    assert pairs == {"a": "p0", "b": "p1", "c": "p2", "d": "p3"}
    assert order_alignment(ids[:3], pitch[:3], expected[:3], perf) is None  # one note too many
    perf["pitch"][0] = 65
    assert order_alignment(ids, pitch, expected, perf) is None  # another note


def test_the_file_holds_the_projected_codec_within_tick_precision(score):
    """decode -> MIDI bytes -> read back -> encode gives the projected codec: beat period, timing,
    velocity and pedal within what 1 ms ticks allow."""
    onset = score.note_array["onset_beat"]
    group, n = onset_groups(onset)
    rng = np.random.default_rng(1)
    p = np.zeros((len(onset), 5))
    p[:, 0] = 0.5 * np.exp(0.2 * np.sin(np.arange(len(onset)) / 3))  # varies within onsets too
    p[:, 1] = rng.uniform(0.2, 0.9, len(onset))
    p[:, 2] = rng.normal(0.01, 0.02, len(onset))  # not zero-mean per onset, as a sampler's
    p[:, 3] = rng.uniform(-1.5, -0.3, len(onset))
    p[:, 4] = np.repeat(rng.uniform(0, 1, n), np.bincount(group))[np.argsort(np.argsort(group, kind="stable"))]
    q = project_codec(onset, p)
    back, mask = delivered_codec(score, p)
    assert mask.all()
    u = group_mean(group, onset)
    ioi = np.r_[np.diff(u), np.inf][group]
    inner = group < n - 1  # the last onset's beat period is a convention of the codec
    assert (np.abs(back[inner, 0] - q[inner, 0]) <= 2 * TICK / ioi[inner] + 1e-6).all()
    assert np.abs(back[:, 2] - q[:, 2]).max() <= 2 * TICK
    np.testing.assert_allclose(back[:, 1], np.round(q[:, 1] * 127) / 127, atol=1e-6)
    np.testing.assert_allclose(back[:, 4], np.round(q[:, 4] * 127) / 127, atol=1e-6)


def test_old_decode_would_fail_the_tempo_check(score, monkeypatch):
    """The check above is not vacuous: a decode that leaves the timing's onset mean in the file fails it."""
    import dexter_cli.data.decode as decode

    onset = score.note_array["onset_beat"]
    group, n = onset_groups(onset)
    p = np.zeros((len(onset), 5))
    p[:, 0], p[:, 1], p[:, 3] = 0.5, 0.5, -0.5
    p[:, 2] = np.random.default_rng(2).normal(0, 0.03, len(onset))
    keep = decode.project_codec

    def uncentred(onset_beat, codec):
        out = keep(onset_beat, codec)
        out[:, 2] = np.asarray(codec)[:, 2]
        return out

    monkeypatch.setattr(decode, "project_codec", uncentred)
    back, _ = delivered_codec(score, p)
    inner = group < n - 1
    assert np.abs(back[inner, 0] / 0.5 - 1).max() > 0.05


# --- real data and the bundled model --------------------------------------------------------------


def _human(shared_datasets: Path, dataset: str, piece_part: str, name: str):
    from dexter_cli.data.encode import encode_performance, load_performance_and_alignment, matched_pairs, needs_unfolding
    from dexter_cli.data.layouts import discover, resolve_roots

    src = next(s for d in discover(resolve_roots(shared_datasets, [dataset], {})) for s in d.sources
               if piece_part in str(s.score) and s.name == name)
    perf, alignment = load_performance_and_alignment(src)
    unfold = needs_unfolding(matched_pairs(alignment), load_score(src.score, unfold=False).note_ids)
    score = load_score(src.score, unfold=unfold)
    enc = encode_performance(src, score, perf, alignment)
    return score, enc.p_codec.astype(np.float64), enc.mask


@pytest.mark.slow
@pytest.mark.parametrize("dataset,piece,name", [("vienna422", "Mozart", "p01"), ("vienna422", "Chopin", "p05"),
                                                ("asap", "bwv_848", "Denisova06M"), ("asap", "bwv_848", "Lee01M")])
def test_real_performances_survive_encode_decode_encode(shared_datasets, dataset, piece, name):
    """A human codec written as MIDI and read back is the same codec within MIDI-tick precision,
    wherever partitura's own encoding kept its invariants (a fully played onset, a next one fully
    played, a zero timing mean: partitura monotonises onsets played out of order) and, for the
    articulation, where the sustain pedal does not lengthen the sound and the key is not struck
    again before the note would end."""
    from dexter_cli.data.codec import fill_unplayed

    score, p, m = _human(shared_datasets, dataset, piece, name)
    onset = score.note_array["onset_beat"]
    group, n = onset_groups(onset)
    full = (np.bincount(group, weights=~m, minlength=n) == 0) & (np.abs(group_mean(group, p[:, 2])) < 1e-4)
    ok = (full & np.r_[full[1:], False])[group] & m
    assert ok.mean() > 0.85
    filled = fill_unplayed(p, m)
    back, mask = delivered_codec(score, filled)
    u = group_mean(group, onset)
    ioi = np.r_[np.diff(u), np.inf][group]
    assert (np.abs(back[ok, 0] - p[ok, 0]) <= 2 * TICK / ioi[ok] + 1e-5).all()
    assert np.abs(back[ok, 2] - p[ok, 2]).max() <= 2 * TICK
    np.testing.assert_allclose(back[ok, 1], p[ok, 1], atol=1e-6)
    np.testing.assert_allclose(back[ok, 4], p[ok, 4], atol=1e-6)
    ppart = decode_performance(score, filled)
    file_notes = read_midi(performance_midi(ppart)).performedparts[0].notes
    unpedalled = {i for i, nt in enumerate(file_notes) if nt["sound_off"] == nt["note_off"]}
    on = np.array([nt["note_on"] for nt in ppart.notes])
    order = np.lexsort((on, score.note_array["pitch"]))  # the file's notes, in the order matched
    file_order = sorted(range(len(file_notes)), key=lambda i: (file_notes[i]["midi_pitch"], file_notes[i]["note_on"]))
    free = np.zeros(len(on), dtype=bool)
    free[order] = [i in unpedalled for i in file_order]
    dur = np.exp2(p[:, 3]) * score.note_array["duration_beat"] * p[:, 0]
    # the decode ends a note a few ms before its key is struck again: those notes are shortened on purpose
    uncut = np.abs(np.array([nt["note_off"] - nt["note_on"] for nt in ppart.notes]) - dur) < 1e-4
    sel = ok & free & uncut & (dur > 0.05)
    assert sel.sum() > 50
    assert (np.abs(back[sel, 3] - p[sel, 3]) <= np.log2(1 + 3 * TICK / dur[sel]) + 1e-4).mean() > 0.97


needs_model = pytest.mark.skipif(not (DEFAULT_CHECKPOINT / "model.safetensors").is_file(), reason="no bundled model")


@pytest.mark.slow
@needs_model
def test_rendered_midi_carries_the_models_tempo_curve(shared_datasets, tmp_path):
    """The onset-level tempo curve read back from the MIDI that ``dexter render`` writes equals the
    model's per-onset beat-period curve within 1 % (plus the 2 ticks an IOI can lose to rounding)."""
    from dexter_cli.data.align import load_performance
    from dexter_cli.data.delivered import encode_file_performance
    from dexter_cli.render import render_score

    path = shared_datasets / "vienna4x22/musicxml/Mozart_K331_1st-mov.musicxml"
    res = render_score(path, tmp_path / "out.mid", {"seed": 0})
    score = load_score(path)
    perf, _ = load_performance(res.outputs[0])
    ppart = decode_performance(score, res.p_codec[0])
    expected = np.array([nt["note_on"] for nt in ppart.notes])
    back, mask, how = encode_file_performance(score, perf, "out.mid", expected_onset=expected, align=False)
    assert how == "order" and mask.all()
    onset = score.note_array["onset_beat"]
    group, n = onset_groups(onset)
    model = group_mean(group, res.p_codec[0][:, 0].astype(np.float64))
    got = group_mean(group, back[:, 0])
    u = group_mean(group, onset)
    rel = np.abs(got / model - 1)[:-1]
    allowed = 0.01 + 2 * TICK / (model[:-1] * np.diff(u))
    assert (rel <= allowed).all(), (rel.max(), np.argmax(rel - allowed))


@pytest.mark.slow
@needs_model
def test_evaluate_scores_the_file_that_render_writes(shared_datasets, tmp_path):
    """``dexter evaluate -r dexter`` gives the metrics of ``-r external:DIR`` on the MIDI file that
    ``dexter render`` writes with the same seed and settings: within 0.01 with the notes matched by
    their known order; with parangonar matching them, within the alignment's noise."""
    from dexter_cli.evaluation.metrics import METRICS, score_against_humans
    from dexter_cli.evaluation.pieces import Selection
    from dexter_cli.evaluation.runner import delivered, evaluate_store
    from dexter_cli.evaluation.pieces import list_pieces
    from dexter_cli.render import render_score
    from dexter_cli.evaluation.baselines import DexterRenderer, ExternalRenderer

    v = shared_datasets / "vienna4x22"
    listing = tmp_path / "pieces.csv"
    listing.write_text("".join(f"{v}/musicxml/Mozart_K331_1st-mov.musicxml,{v}/match/Mozart_K331_1st-mov_p{k:02d}.match\n"
                               for k in (1, 2, 3)))
    rendered = tmp_path / "rendered"
    rendered.mkdir()
    render_score(v / "musicxml/Mozart_K331_1st-mov.musicxml", rendered / "Mozart_K331_1st-mov.mid", {"seed": 3})
    report = evaluate_store(None, ["dexter", f"external:{rendered}"], {"seed": 3}, selection=Selection(pieces_list=listing))
    rows = {r["renderer"]: r for r in report.per_piece}
    checked = 0
    for k in METRICS:
        a, b = rows["dexter"][k], rows[f"external:{rendered}"][k]
        if np.isfinite(a) or np.isfinite(b):
            assert abs(a - b) <= 0.01, (k, a, b)
            checked += 1
    assert checked >= 20
    # parangonar instead of the known order: the same file, matched by the aligner
    piece = list_pieces(listing)[0]
    ours = delivered(piece, DexterRenderer(None, {"seed": 3})(piece))
    theirs = ExternalRenderer(rendered, by_order=False)(piece)
    assert theirs.mask.mean() > 0.97  # parangonar matches nearly every note of a file that plays them all
    a, b = (score_against_humans(piece.onset_beat, x, piece.humans) for x in (ours, theirs))
    for k in METRICS:  # measured: parangonar matches this file exactly as the known order does
        if np.isfinite(a[k]) or np.isfinite(b[k]):
            assert abs(a[k] - b[k]) <= 0.01, (k, a[k], b[k])


def test_a_unison_sounds_in_score_order():
    """One key struck twice at one score onset: the earlier strike is the earlier note of the score,
    so a reader matching by order within each pitch gets each note back; strikes closer than a key
    repeats are spread 11 ms apart about their mean (the onset stays on the tempo curve); other
    notes keep their times."""
    from dexter_cli.data.decode import unisons_in_score_order

    onsets = np.array([0.010, 0.002, 0.005, 1.0, 0.9, 2.05, 2.0])
    beats = np.array([0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 3.0])
    pitch = np.array([60, 60, 64, 60, 60, 62, 62])
    np.testing.assert_allclose(unisons_in_score_order(onsets, beats, pitch),
                               [0.0005, 0.0115, 0.005, 1.0, 0.9, 2.0, 2.05], atol=1e-12)


def test_a_unison_on_the_first_onset_decodes_to_non_negative_times(tmp_path):
    """Two voices strike one key at time 0: spread about their mean, the performance still starts at 0."""
    import partitura as pt

    part = pt.score.Part("P0", "Piano", quarter_duration=1)
    part.add(pt.score.TimeSignature(4, 4), start=0)
    part.add(pt.score.Note(id="a", step="C", octave=4, voice=1), start=0, end=2)
    part.add(pt.score.Note(id="b", step="C", octave=4, voice=2), start=0, end=1)
    part.add(pt.score.Note(id="c", step="E", octave=4, voice=1), start=2, end=4)
    pt.score.add_measures(part)
    pt.save_musicxml(part, str(tmp_path / "u.musicxml"))
    score = load_score(tmp_path / "u.musicxml")
    p = np.full((len(score), 5), 0.5)
    na = decode_performance(score, p).note_array()
    assert na["onset_sec"].min() == 0.0 and len(na) == 3
    back, mask = delivered_codec(score, p)
    assert mask.all()
