"""Audio: a rendered MIDI file played through a SoundFont synthesizer into a WAV file.

The synthesizer is TinySoundFont (``tinysoundfont``): every note, its velocity and the sustain
pedal (CC64) as the MIDI file has them, on a grand piano (General MIDI program 0). The SoundFont
comes from ``--soundfont``, else ``$DEXTER_SOUNDFONT``, else the usual system locations
(Debian's ``fluid-soundfont-gm`` installs ``/usr/share/sounds/sf2/FluidR3_GM.sf2``).
"""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np

from .errors import DexterError

SAMPLE_RATE = 44100
TAIL_S = 2.0  # the release after the last note
SOUNDFONT_PLACES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2", "/usr/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/default.sf2", "/opt/homebrew/share/soundfonts/default.sf2",
    "~/.local/share/soundfonts/default.sf2",
)
AUDIO_SUFFIXES = (".wav",)


def find_soundfont(given: Path | None = None) -> Path:
    """The SoundFont to play with: ``given``, else ``$DEXTER_SOUNDFONT``, else the first of the
    usual system locations that exists.

    Raises
    ------
    DexterError
        The one given does not exist, or none is found (the message says how to get one).
    """
    if given is None and os.environ.get("DEXTER_SOUNDFONT"):
        given = Path(os.environ["DEXTER_SOUNDFONT"])
    if given is not None:
        if not Path(given).expanduser().is_file():
            raise DexterError(f"SoundFont not found: {given}")
        return Path(given).expanduser()
    for place in SOUNDFONT_PLACES:
        if Path(place).expanduser().is_file():
            return Path(place).expanduser()
    raise DexterError("no SoundFont found for audio: give --soundfont FILE.sf2 or set DEXTER_SOUNDFONT "
                      "(on Debian or Ubuntu: apt install fluid-soundfont-gm)")


def midi_events(midi: bytes) -> list[tuple[float, str, int, int]]:
    """(seconds, kind, a, b) of a MIDI file's notes and controllers, in time order:
    ``("on", key, velocity)``, ``("off", key, 0)``, ``("cc", number, value)``."""
    import io

    import mido

    events, t = [], 0.0
    for msg in mido.MidiFile(file=io.BytesIO(midi)):  # iterating gives delta times in seconds
        t += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            events.append((t, "on", msg.note, msg.velocity))
        elif msg.type in ("note_on", "note_off"):
            events.append((t, "off", msg.note, 0))
        elif msg.type == "control_change":
            events.append((t, "cc", msg.control, msg.value))
    return events


def synthesize(midi: bytes, soundfont: Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The MIDI performance as stereo float32 samples, (n, 2), on the SoundFont's grand piano."""
    try:
        import tinysoundfont
    except ImportError as exc:
        raise DexterError("audio needs the tinysoundfont package: pip install --no-deps tinysoundfont") from exc
    synth = tinysoundfont.Synth(samplerate=sample_rate)
    try:
        sfid = synth.sfload(str(soundfont))
    except Exception as exc:  # tinysoundfont raises its own type on a file it cannot read
        raise DexterError(f"cannot read SoundFont {soundfont}: {exc}") from exc
    synth.program_select(0, sfid, 0, 0)
    chunks, done = [], 0
    events = midi_events(midi)
    for t, kind, a, b in events + [((events[-1][0] if events else 0.0) + TAIL_S, "end", 0, 0)]:
        upto = int(round(t * sample_rate))
        if upto > done:
            chunks.append(np.frombuffer(synth.generate(upto - done), dtype=np.float32).reshape(-1, 2).copy())
            done = upto
        if kind == "on":
            synth.noteon(0, a, b)
        elif kind == "off":
            synth.noteoff(0, a)
        elif kind == "cc":
            synth.control_change(0, a, b)
    return np.concatenate(chunks) if chunks else np.zeros((0, 2), dtype=np.float32)


GAIN = 4.0  # +12 dB: the SoundFont's piano peaks near -16 dBFS; one fixed gain keeps takes comparable


def write_wav(path: Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """16-bit stereo WAV at a fixed gain (``GAIN``), written atomically; scaled down only if it would clip."""
    from .fileio import atomic_path

    samples = samples * GAIN
    peak = float(np.abs(samples).max()) if len(samples) else 0.0
    pcm = (samples / max(1.0, peak) * 32767).astype("<i2")
    with atomic_path(Path(path)) as tmp:
        with wave.open(str(tmp), "wb") as fh:
            fh.setnchannels(2)
            fh.setsampwidth(2)
            fh.setframerate(sample_rate)
            fh.writeframes(pcm.tobytes())


def render_audio(midi: bytes, path: Path, soundfont: Path | None = None) -> float:
    """Play ``midi`` into the WAV file ``path``; returns its length in seconds."""
    samples = synthesize(midi, find_soundfont(soundfont))
    write_wav(path, samples)
    return len(samples) / SAMPLE_RATE
