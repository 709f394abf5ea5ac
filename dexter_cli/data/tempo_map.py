"""A tempo-mapped MIDI file: the performance on the score's bars and beats.

The real-time file (:func:`dexter_cli.data.decode.performance_midi`) puts every event at its time
in seconds on a 120 BPM grid, so a DAW's bar lines mean nothing. This file puts each score onset
on its place in the score (ticks of quarter notes, ``PPQ`` per quarter) and carries a tempo map
that moves from onset to onset as the performance does; every note keeps its own offset from its
onset (chord asynchrony), and note-offs and pedal changes are placed through the same map. It plays
as the real-time file does, within a tick (tested), and it holds the score's time and key
signatures where they change.

Anchors: the mean performed time of each score onset's notes against the onset's place in
quarters. A performance that starts before its first onset's mean (a chord's earliest note)
gets a lead-in bar before the score's first bar.
"""

from __future__ import annotations

import struct

import numpy as np

from ._partitura import pt
from .midi import _varlen
from .scores import LoadedScore

PPQ = 960  # ticks per quarter: at 30 BPM a tick is 2 ms
MIN_LEAD_S = 1e-3  # a first onset later than this gets a lead-in bar
MAX_MPQ = 2 ** 24 - 1  # the largest tempo a MIDI file holds (microseconds per quarter)


def signatures(score: LoadedScore) -> tuple[list[tuple[float, int, int]], list[tuple[float, int, int]]]:
    """The score's time signatures ``(quarter, beats, beat_type)`` and key signatures
    ``(quarter, fifths, minor)``, where each starts, in score order."""
    part = score.part
    times = [(float(part.quarter_map(ts.start.t)), int(ts.beats), int(ts.beat_type))
             for ts in part.iter_all(pt.score.TimeSignature)]
    keys = [(float(part.quarter_map(ks.start.t)), int(ks.fifths), int(str(ks.mode).lower() == "minor"))
            for ks in part.iter_all(pt.score.KeySignature)]
    return _changes(times), _changes(keys)


def _changes(items: list[tuple]) -> list[tuple]:
    """Items sorted by position, each kept only where it differs from the one before."""
    out: list[tuple] = []
    for item in sorted(items):
        if not out or item[1:] != out[-1][1:]:
            out.append(item)
    return out


def anchors(onset_quarter: np.ndarray, note_on: np.ndarray, lead_quarters: float) -> tuple[np.ndarray, np.ndarray, int]:
    """(ticks, seconds, lead) of the tempo map: each score onset's place against its notes' mean time,
    strictly increasing in both, after a lead-in of ``lead`` ticks (one bar, anchored at 0 s) when
    the performance starts before its first onset's mean; else ``lead`` is 0."""
    q, group = np.unique(onset_quarter, return_inverse=True)
    t = np.bincount(group, weights=note_on) / np.bincount(group)
    lead = int(round(lead_quarters * PPQ)) if t[0] >= MIN_LEAD_S else 0
    ticks = lead + np.rint((q - q[0]) * PPQ).astype(np.int64)
    if lead:
        ticks, t = np.r_[0, ticks], np.r_[0.0, t]
    keep = np.r_[True, (np.diff(ticks) > 0) & (np.diff(t) > 0)]  # tuplet rounding or a zero gap: one anchor
    while not keep.all():
        ticks, t = ticks[keep], t[keep]
        keep = np.r_[True, (np.diff(ticks) > 0) & (np.diff(t) > 0)]
    return ticks, t, lead


def seconds_to_ticks(x: np.ndarray, ticks: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Performance times through the tempo map (the last tempo continues after the last anchor)."""
    if len(ticks) == 1:
        return np.rint(ticks[0] + (np.asarray(x) - seconds[0]) * PPQ * 2.0).astype(np.int64)  # 120 BPM
    k = np.clip(np.searchsorted(seconds, x, side="right") - 1, 0, len(ticks) - 2)
    rate = (ticks[k + 1] - ticks[k]) / (seconds[k + 1] - seconds[k])
    return np.maximum(np.rint(ticks[k] + (np.asarray(x) - seconds[k]) * rate), 0).astype(np.int64)


def tempo_mapped_midi(score: LoadedScore, performed_part: object) -> bytes:
    """The bytes of the tempo-mapped MIDI file of a performance of ``score`` (format 0).

    Parameters
    ----------
    score : LoadedScore
        The score the performance plays (its notes carry the score note ids).
    performed_part : partitura PerformedPart
        As :func:`dexter_cli.data.decode.decode_performance` makes it.
    """
    notes = {n["id"]: n for n in performed_part.notes}
    rows = [notes[i] for i in score.note_ids.tolist()]
    on = np.array([n["note_on"] for n in rows], dtype=np.float64)
    off = np.array([n["note_off"] for n in rows], dtype=np.float64)
    times, keys = signatures(score)
    first = times[0] if times else (0.0, 4, 4)
    q = score.note_array["onset_quarter"].astype(np.float64)
    ticks, seconds, lead = anchors(q, on, first[1] * 4.0 / first[2])  # the lead-in: one bar of the first meter
    events: list[tuple[int, int, bytes]] = []  # (tick, order at one tick, bytes)
    for k in range(len(ticks)):  # the tempo from each anchor to the next; the last one continues
        j = min(k, len(ticks) - 2)
        mpq = ((seconds[j + 1] - seconds[j]) / (ticks[j + 1] - ticks[j]) * PPQ * 1e6) if len(ticks) > 1 else 5e5
        events.append((int(ticks[k]), 0, b"\xff\x51\x03" + int(np.clip(round(mpq), 1, MAX_MPQ)).to_bytes(3, "big")))
    place = lambda quarter: max(0, lead + int(round((quarter - q.min()) * PPQ)))  # noqa: E731
    for quarter, beats, beat_type in times:
        events.append((place(quarter), 0, b"\xff\x58\x04" + bytes([beats, int(np.log2(beat_type)), 24, 8])))
    for quarter, fifths, minor in keys:
        events.append((place(quarter), 0, b"\xff\x59\x02" + struct.pack("bB", fifths, minor)))
    pitch = np.clip(score.note_array["pitch"], 0, 127).astype(int)
    velocity = np.array([n["velocity"] for n in rows], dtype=int)
    for t_off, p in zip(seconds_to_ticks(off, ticks, seconds), pitch):
        events.append((int(t_off), 1, bytes([0x80, p, 64])))
    for cc in performed_part.controls:
        t_cc = int(seconds_to_ticks(np.array([cc["time"]]), ticks, seconds)[0])
        events.append((t_cc, 2, bytes([0xB0, int(cc["number"]), int(cc["value"])])))
    for t_on, p, v in zip(seconds_to_ticks(on, ticks, seconds), pitch, velocity):
        events.append((int(t_on), 3, bytes([0x90, p, int(v)])))
    events.sort(key=lambda e: (e[0], e[1]))
    stamps = np.array([e[0] for e in events], dtype=np.int64)
    delta = np.diff(stamps, prepend=0)
    body = b"".join(d + e[2] for d, e in zip(_varlen(delta), events))
    track = body + b"\x00\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, PPQ) + b"MTrk" + struct.pack(">I", len(track)) + track
