"""Small scores, performances and alignments built in code (no shared data needed)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import partitura as pt

STEPS = ["C", "D", "E", "F", "G", "A", "B"]


def make_score(path: Path, n_notes: int = 40, chord_every: int = 4) -> list[str]:
    """Write a one-part 4/4 MusicXML score of quarter notes (a two-note chord every few beats).

    Returns the score note ids in onset-then-pitch order.
    """
    part = pt.score.Part("P0", "Piano", quarter_duration=4)
    part.add(pt.score.TimeSignature(4, 4), start=0)
    ids, k, t = [], 0, 0
    while k < n_notes:
        step = STEPS[(t // 4) % 7]
        part.add(pt.score.Note(id=f"n{k}", step=step, octave=4, voice=1, staff=1), start=t * 4, end=t * 4 + 4)
        ids.append(f"n{k}")
        k += 1
        if t % chord_every == 0 and k < n_notes:
            part.add(pt.score.Note(id=f"n{k}", step=step, octave=3, voice=2, staff=2), start=t * 4, end=t * 4 + 4)
            ids.insert(len(ids) - 1, f"n{k}")  # lower pitch first in canonical order
            k += 1
        t += 1
    pt.score.add_measures(part)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pt.save_musicxml(part, str(path))
    return ids


def make_performance(score_path: Path, midi_path: Path, tsv_path: Path | None = None, seed: int = 0,
                     tempo_bpm: float = 100.0, skip: tuple[int, ...] = ()) -> dict:
    """Perform a score (tempo drift, random velocities, pedal) to MIDI and an ASAP-style alignment.

    Returns the ground truth: score id -> (onset, offset, velocity).
    """
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        part = pt.load_score(str(score_path)).parts[0]
    na = part.note_array()
    beat = 60.0 / tempo_bpm
    notes, truth = [], {}
    for i, n in enumerate(na):
        if i in skip:
            continue
        b = float(n["onset_beat"])
        # local beat period beat * (1 + 0.2 sin(b / 4)), integrated: a smooth, monotone tempo curve
        on = beat * (b + 0.8 * (1 - np.cos(b / 4))) + rng.normal(0, 0.005)
        off = on + n["duration_beat"] * beat * rng.uniform(0.3, 0.7)
        vel = int(rng.integers(40, 100))
        notes.append({"id": f"p{i}", "midi_pitch": int(n["pitch"]), "note_on": max(on, 0.0), "note_off": off,
                      "velocity": vel, "track": 0, "channel": 0})
        truth[str(n["id"])] = (max(on, 0.0), off, vel)
    controls = [{"number": 64, "time": 0.0, "value": 0, "track": 0, "channel": 0},
                {"number": 64, "time": 2.0, "value": 127, "track": 0, "channel": 0}]
    pp = pt.performance.PerformedPart(notes, controls=controls)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pt.save_performance_midi(pp, str(midi_path))
        loaded = pt.load_performance_midi(str(midi_path)).note_array()
    if tsv_path is not None:
        # match reloaded MIDI notes (ids n0..) to score notes by pitch and onset
        lines = ["xml_id\tmidi_id\ttrack\tchannel\tpitch\tonset"]
        used = set()
        for sid, (on, _, _) in truth.items():
            pitch = int(na["pitch"][na["id"] == sid][0])
            cand = [j for j in range(len(loaded)) if j not in used and loaded["pitch"][j] == pitch
                    and abs(loaded["onset_sec"][j] - on) < 0.01]
            j = cand[0]
            used.add(j)
            lines.append(f"{sid}\t{loaded['id'][j]}\t0\t0\t{pitch}\t{loaded['onset_sec'][j]}")
        for sid in na["id"]:
            if str(sid) not in truth:
                lines.append(f"{sid}\tdeletion")
        Path(tsv_path).parent.mkdir(parents=True, exist_ok=True)
        Path(tsv_path).write_text("\n".join(lines) + "\n")
    return truth


def make_asap_tree(root: Path, pieces: dict[str, int], perfs_per_piece: int = 2, n_notes: int = 40) -> Path:
    """An ASAP-layout folder: <Composer>/<group>/<piece>/xml_score.musicxml, <perf>.mid, alignments."""
    for j, (piece, n_perf) in enumerate(pieces.items()):
        folder = root / piece
        folder.mkdir(parents=True, exist_ok=True)
        make_score(folder / "xml_score.musicxml", n_notes=n_notes)
        for k in range(n_perf or perfs_per_piece):
            name = f"Perf{k:02d}"
            make_performance(folder / "xml_score.musicxml", folder / f"{name}.mid",
                             folder / f"{name}_note_alignments" / "note_alignment.tsv", seed=100 * j + k,
                             tempo_bpm=80 + 10 * k, skip=(3,) if k % 2 else ())
    return root
