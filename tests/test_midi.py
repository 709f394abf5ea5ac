"""The MIDI writer: what mido and partitura read back is what was written."""

from __future__ import annotations

import mido
import numpy as np
import pytest

from dexter_cli.data.midi import TICKS_PER_SECOND, midi_bytes


def _read(data: bytes, tmp_path) -> mido.MidiFile:
    path = tmp_path / "x.mid"
    path.write_bytes(data)
    return mido.MidiFile(str(path))


def test_notes_and_pedal_round_trip_through_mido(tmp_path):
    rng = np.random.default_rng(0)
    n = 500
    pitch = rng.integers(21, 109, n)
    onset = np.sort(rng.uniform(0, 300, n))  # long gaps: multi-byte delta times
    offset = onset + rng.uniform(0.02, 20, n)
    velocity = rng.integers(1, 128, n)
    cc_t = np.sort(rng.uniform(0, 300, 40))
    cc_v = rng.integers(0, 128, 40)
    mid = _read(midi_bytes(pitch, onset, offset, velocity, cc_t, np.full(40, 64), cc_v), tmp_path)
    assert mid.type == 0 and mid.ticks_per_beat == 480 and len(mid.tracks) == 1
    t, ons, offs, ccs = 0, [], [], []
    for msg in mid.tracks[0]:
        t += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            ons.append((t, msg.note, msg.velocity))
        elif msg.type in ("note_off", "note_on"):
            offs.append((t, msg.note))
        elif msg.type == "control_change":
            ccs.append((t, msg.control, msg.value))
    assert sorted(ons) == sorted(zip(np.rint(onset * TICKS_PER_SECOND).astype(int).tolist(), pitch.tolist(),
                                     velocity.tolist()))
    assert sorted(offs) == sorted(zip(np.rint(offset * TICKS_PER_SECOND).astype(int).tolist(), pitch.tolist()))
    assert sorted(ccs) == sorted(zip(np.rint(cc_t * TICKS_PER_SECOND).astype(int).tolist(), [64] * 40, cc_v.tolist()))
    assert mid.length == pytest.approx(offset.max(), abs=1e-3)  # 120 BPM: ticks map back to seconds


def test_a_release_and_a_new_strike_of_one_key_at_the_same_tick_keep_their_order(tmp_path):
    # key 60 released exactly when it is struck again: the note-off must come first
    mid = _read(midi_bytes(np.array([60, 60]), np.array([0.0, 1.0]), np.array([1.0, 2.0]), np.array([80, 90])),
                tmp_path)
    msgs = [(m.type, m.velocity) for m in mid.tracks[0] if m.type.startswith("note")]
    assert msgs == [("note_on", 80), ("note_off", 64), ("note_on", 90), ("note_off", 64)]


def test_out_of_range_data_bytes_are_refused():
    with pytest.raises(ValueError):
        midi_bytes(np.array([128]), np.array([0.0]), np.array([1.0]), np.array([64]))


def test_outputs_get_the_usual_permissions_not_temp_files_private_ones(tmp_path):
    # atomic writes go through tempfile (0600 files, 0700 folders); the results must not stay private
    import os

    import torch

    from dexter_cli.checkpoint import export_inference
    from dexter_cli.fileio import atomic_path

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "out.mid") as tmp:
            tmp.write_bytes(b"x")
        export_inference(tmp_path / "ckpt", {"w": torch.zeros(2)}, {"model": {}, "training": {}})
    finally:
        os.umask(old)
    assert (tmp_path / "out.mid").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "ckpt").stat().st_mode & 0o777 == 0o755
    assert all(f.stat().st_mode & 0o777 == 0o644 for f in (tmp_path / "ckpt").iterdir())
