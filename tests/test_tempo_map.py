"""The tempo-mapped MIDI file (dexter_cli/data/tempo_map.py): on the score's grid, playing as the real-time file."""

from __future__ import annotations

import io

import mido
import numpy as np
import pytest

from dexter_cli.data.decode import decode_performance, performance_midi
from dexter_cli.data.scores import load_score
from dexter_cli.data.tempo_map import PPQ, tempo_mapped_midi

from .conftest import datasets_root
from .synth import make_score


def _notes(data: bytes) -> np.ndarray:
    """(pitch, on s, off s, velocity) of every note, as a MIDI player reads the file (tempo changes included)."""
    t, held, out = 0.0, {}, []
    for msg in mido.MidiFile(file=io.BytesIO(data)):
        t += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            held.setdefault(msg.note, []).append((t, msg.velocity))
        elif msg.type in ("note_on", "note_off"):
            start, vel = held[msg.note].pop(0)
            out.append((msg.note, start, t, vel))
    return np.array(sorted(out))


def _performance(score, seed: int, lead: float = 0.0) -> object:
    n, rng = len(score), np.random.default_rng(seed)
    p = np.zeros((n, 5))
    p[:, 0] = 0.5 * np.exp(0.3 * np.sin(np.arange(n) / 9))  # a tempo that moves
    p[:, 1] = rng.uniform(0.3, 0.8, n)
    p[:, 2] = rng.normal(0, 0.02, n)  # chord asynchrony
    p[:, 3] = rng.normal(0, 0.3, n)
    p[:, 4] = (np.arange(n) // 7) % 2
    return decode_performance(score, p)


@pytest.mark.parametrize("seed", [0, 1])
def test_it_plays_as_the_real_time_file_within_a_tick(tmp_path, seed):
    path = tmp_path / "s.musicxml"
    make_score(path, n_notes=60, chord_every=2)
    score = load_score(path)
    perf = _performance(score, seed)
    real, mapped = _notes(performance_midi(perf)), _notes(tempo_mapped_midi(score, perf))
    assert len(real) == len(mapped) == len(score)
    assert np.array_equal(real[:, 0], mapped[:, 0]) and np.array_equal(real[:, 3], mapped[:, 3])
    # the slowest tempo here is ~ 0.68 s a quarter: a tick of it is 0.7 ms; plus the real-time file's own rounding
    assert np.abs(real[:, 1:3] - mapped[:, 1:3]).max() < 2e-3


def test_onsets_sit_on_the_score_grid_and_the_signatures_are_there(tmp_path):
    path = tmp_path / "s.musicxml"
    make_score(path, n_notes=40, chord_every=4)
    score = load_score(path)
    perf = decode_performance(score, np.tile([0.5, 0.5, 0.0, 0.0, 0.0], (len(score), 1)))  # deadpan: no offsets
    mid = mido.MidiFile(file=io.BytesIO(tempo_mapped_midi(score, perf)))
    assert mid.ticks_per_beat == PPQ
    tick, ons, metas = 0, [], []
    for msg in mid.tracks[0]:
        tick += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            ons.append(tick)
        elif msg.type in ("time_signature", "key_signature"):
            metas.append((tick, msg.type, getattr(msg, "numerator", None), getattr(msg, "key", None)))
    q = np.sort(score.note_array["onset_quarter"])
    assert np.array_equal(np.sort(ons), np.rint((q - q.min()) * PPQ).astype(int))  # quarter notes on the beat
    assert metas == [(0, "time_signature", 4, None)]  # the synthetic score has a meter and no key


def test_a_real_score_in_six_eight_with_a_key(tmp_path):
    path = datasets_root() / "vienna4x22/musicxml/Mozart_K331_1st-mov.musicxml"
    if not path.is_file():
        pytest.skip(f"shared datasets not found at {datasets_root()} (set DEXTER_DATASETS)")
    score = load_score(path)
    perf = _performance(score, 3)
    data = tempo_mapped_midi(score, perf)
    metas = [m for m in mido.MidiFile(file=io.BytesIO(data)).tracks[0] if m.type in ("time_signature", "key_signature")]
    assert (metas[0].numerator, metas[0].denominator) == (6, 8) and metas[1].key == "A"
    assert np.abs(_notes(performance_midi(perf))[:, 1:3] - _notes(data)[:, 1:3]).max() < 3e-3
