"""A Standard MIDI File writer for rendered performances (format 0, one track), in numpy.

partitura's ``save_performance_midi`` builds and validates one mido message per event: about a
second for a 5,000-note piece, a fifth of a whole render. A performance needs only note-ons,
note-offs and sustain changes on one channel, so the bytes are written directly; the files are
read back by partitura and mido in the tests. Times use partitura's defaults: 480 ticks per
quarter at 120 BPM (960 ticks per second).
"""

from __future__ import annotations

import struct

import numpy as np

PPQ = 480
MPQ = 500_000  # microseconds per quarter note (120 BPM)
TICKS_PER_SECOND = PPQ * 1_000_000 / MPQ
# events at the same tick: note-offs first (a re-struck key is released before it sounds again),
# then pedal changes, then note-ons
_OFF, _CC, _ON = 0, 1, 2


def _varlen(values: np.ndarray) -> list[bytes]:
    """MIDI variable-length quantities (7 bits per byte, high bit = more bytes follow)."""
    out = []
    for v in values.tolist():
        b = [v & 0x7F]
        v >>= 7
        while v:
            b.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(bytes(reversed(b)))
    return out


def midi_bytes(pitch: np.ndarray, onset: np.ndarray, offset: np.ndarray, velocity: np.ndarray,
               cc_time: np.ndarray | None = None, cc_number: np.ndarray | None = None,
               cc_value: np.ndarray | None = None, channel: int = 0) -> bytes:
    """The bytes of a format-0 MIDI file holding the given notes and control changes.

    Parameters
    ----------
    pitch, velocity : int arrays (n,)
        MIDI pitch 0..127, velocity 1..127.
    onset, offset : float arrays (n,)
        Seconds, ``offset > onset``.
    cc_time : float array (m,), optional
        Seconds of each control change, with its ``cc_number`` and ``cc_value`` (0..127).
    channel : int

    Returns
    -------
    bytes
    """
    cc_time = np.zeros(0) if cc_time is None else np.asarray(cc_time, dtype=np.float64)
    cc_number = np.zeros(0, dtype=int) if cc_number is None else np.asarray(cc_number)
    cc_value = np.zeros(0, dtype=int) if cc_value is None else np.asarray(cc_value)
    n, m = len(pitch), len(cc_time)
    ticks = np.rint(np.concatenate([np.asarray(offset, dtype=np.float64), cc_time,
                                    np.asarray(onset, dtype=np.float64)]) * TICKS_PER_SECOND).astype(np.int64)
    kind = np.concatenate([np.full(n, _OFF), np.full(m, _CC), np.full(n, _ON)])
    status = np.concatenate([np.full(n, 0x80 | channel), np.full(m, 0xB0 | channel), np.full(n, 0x90 | channel)])
    data1 = np.concatenate([pitch, cc_number, pitch]).astype(np.int64)
    data2 = np.concatenate([np.full(n, 64), cc_value, velocity]).astype(np.int64)
    if np.any((data1 < 0) | (data1 > 127) | (data2 < 0) | (data2 > 127)):
        raise ValueError("MIDI data bytes must lie in 0..127")
    order = np.lexsort((np.arange(len(ticks)), kind, ticks))
    ticks = np.maximum(ticks[order], 0)
    delta = np.diff(ticks, prepend=0)
    events = np.stack([status[order], data1[order], data2[order]], axis=1).astype(np.uint8)
    body = b"".join(d + e for d, e in zip(_varlen(delta), map(bytes, events)))
    tempo = b"\x00\xff\x51\x03" + MPQ.to_bytes(3, "big")
    track = tempo + body + b"\x00\xff\x2f\x00"  # end of track
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, PPQ)
    return header + b"MTrk" + struct.pack(">I", len(track)) + track
