"""The spread of the rendered curves: gains on the tempo and velocity curves' deviations and the voicing.

At a low temperature a sample lies near the model's mean reading: its tempo and velocity curves
have the humans' shape (their r) but a fraction of their range (the bundled model at T 0.1: about
half the humans' velocity range). A gain g on each curve's deviation from the piece's mean gives
the range back:

    c'(o) = m + g (c(o) - m),    m = the mean of c over the piece's onsets,

with c(o) the curve at score onset o as ``dexter evaluate`` reads it: the mean velocity (MIDI) of
the onset's notes, and the log tempo 60 / (mean beat period) of the onset's notes. Every note moves
with its onset, so the voicing of a chord (unless its own gain says otherwise) and the note-level
rows (timing, articulation, pedal) stay as sampled. Being affine in c, the gain leaves a curve's correlation with any other curve exactly as
it was (up to velocities clipped to the MIDI range): it changes the range, not the shape.

The voicing of a chord, each note's velocity less its onset's mean, is narrowed by the temperature
as well (the bundled model at T 0.1: about 1/1.6 of the humans'); a third gain scales it about the
onset's mean, which leaves the curves as they are.
"""

from __future__ import annotations

import numpy as np

from .data.codec import Row
from .errors import DexterError
from .sampling import MAX_SPREAD


def parse_spread(text: str | None) -> tuple[float, float, float] | None:
    """Gains (tempo, velocity, voicing), each in [0, ``MAX_SPREAD``]: ``G`` (all three),
    ``TEMPO,VELOCITY`` (voicing 1) or ``TEMPO,VELOCITY,VOICING``; None for None (the model's own).

    Raises
    ------
    DexterError
        Not one to three numbers, or a gain out of range.
    """
    if text is None:
        return None
    parts = [x.strip() for x in str(text).split(",")]
    try:
        gains = [float(x) for x in parts]
    except ValueError:
        raise DexterError(f"--spread {text!r}: give a gain (e.g. 2) or TEMPO,VELOCITY[,VOICING] gains (e.g. 1,2.1,1.6)") from None
    if len(gains) not in (1, 2, 3):
        raise DexterError(f"--spread {text!r}: give one gain, or two or three (TEMPO,VELOCITY[,VOICING])")
    if not all(np.isfinite(g) and 0.0 <= g <= MAX_SPREAD for g in gains):
        raise DexterError(f"--spread {text!r}: each gain must be in [0, {MAX_SPREAD:g}] (1: the model's own range)")
    if len(gains) == 1:
        return (gains[0], gains[0], gains[0])
    return (gains[0], gains[1], gains[2] if len(gains) == 3 else 1.0)


def widen_curves(p: np.ndarray, onset_beat: np.ndarray, tempo: float = 1.0, velocity: float = 1.0,
                 voicing: float = 1.0) -> np.ndarray:
    """Scale the tempo and velocity curves of rendered p_codecs about their piece means.

    Parameters
    ----------
    p : ndarray, shape (n, 5) or (K, n, 5)
        Raw p_codecs of one score (every note played), rows ``beat_period`` (s/beat) and
        ``velocity`` (MIDI/127) first.
    onset_beat : ndarray, shape (n,)
        Score onset of each note (notes sharing an onset form one point of a curve).
    tempo, velocity : float
        The gains g on the curves (1: unchanged, 0: a flat curve at the mean).
    voicing : float
        The gain on each note's velocity less its onset's mean (0: every chord played evenly).

    Returns
    -------
    ndarray
        A scaled copy of ``p``; velocities clipped to MIDI 1..127.
    """
    p = np.array(p, dtype=np.float32, copy=True)
    if tempo == 1.0 and velocity == 1.0 and voicing == 1.0:
        return p
    flat = p.reshape(-1, *p.shape[-2:])
    _, group = np.unique(np.asarray(onset_beat), return_inverse=True)
    count = np.bincount(group).astype(np.float64)

    def onset_mean(x: np.ndarray) -> np.ndarray:
        return np.bincount(group, weights=x, minlength=len(count)) / count

    for k in range(len(flat)):
        if tempo != 1.0:
            bp = np.maximum(flat[k, :, Row.BEAT_PERIOD].astype(np.float64), 1e-6)
            # tempo in log BPM per onset: -log(mean beat period) up to a constant
            log_bp = np.log(onset_mean(bp))
            target = log_bp.mean() + tempo * (log_bp - log_bp.mean())
            flat[k, :, Row.BEAT_PERIOD] = bp * np.exp(target - log_bp)[group]
        if velocity != 1.0 or voicing != 1.0:
            vel = flat[k, :, Row.VELOCITY].astype(np.float64)
            v = onset_mean(vel)
            target = v.mean() + velocity * (v - v.mean())
            # the onset's mean moves to the widened curve, each note's offset from it by the voicing gain
            flat[k, :, Row.VELOCITY] = np.clip(target[group] + voicing * (vel - v[group]), 1 / 127, 1.0)
    return flat.reshape(p.shape)
