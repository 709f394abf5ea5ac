"""Audio (dexter_cli/audio.py): the rendered MIDI played through a SoundFont into a WAV file."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from dexter_cli.audio import SAMPLE_RATE, TAIL_S, find_soundfont, midi_events
from dexter_cli.errors import DexterError
from dexter_cli.render import Extras, render_score

from .synth import make_score


def _soundfont():
    try:
        return find_soundfont()
    except DexterError as exc:
        pytest.skip(f"no SoundFont on this machine ({exc}); make install adds one where apt-get is available")


def _wav(path) -> np.ndarray:
    with wave.open(str(path)) as fh:
        assert fh.getnchannels() == 2 and fh.getsampwidth() == 2 and fh.getframerate() == SAMPLE_RATE
        return np.frombuffer(fh.readframes(fh.getnframes()), dtype="<i2").reshape(-1, 2)


def test_a_render_to_wav_lasts_as_long_as_its_midi_and_is_not_silence(tmp_path):
    """With the bundled model (a trained one plays a short score in seconds)."""
    from dexter_cli.engine import DEFAULT_CHECKPOINT

    pytest.importorskip("tinysoundfont")
    _soundfont()
    if not (DEFAULT_CHECKPOINT / "model.safetensors").is_file():
        pytest.skip("no bundled model")
    checkpoint = None
    score = tmp_path / "s.musicxml"
    make_score(score, n_notes=24)
    res = render_score(score, tmp_path / "take.mid", {"steps": 3}, checkpoint=checkpoint,
                       extras=Extras(audio=tmp_path / "take.wav"))
    assert [p.name for p in res.outputs] == ["take.mid", "take.wav"]
    events = midi_events((tmp_path / "take.mid").read_bytes())
    samples = _wav(tmp_path / "take.wav")
    assert len(samples) / SAMPLE_RATE == pytest.approx(events[-1][0] + TAIL_S, abs=0.01)
    first_on = min(t for t, kind, *_ in events if kind == "on")
    sounding = samples[int((first_on + 0.05) * SAMPLE_RATE):int((events[-1][0]) * SAMPLE_RATE)]
    assert np.abs(sounding.astype(float)).mean() > 50  # sound while the notes play
    assert np.abs(samples[: max(1, int(first_on * SAMPLE_RATE) - 10)].astype(float)).max() < 2  # silence before
    # -o out.wav writes the audio alone
    only = render_score(score, tmp_path / "only.wav", {"steps": 3}, checkpoint=checkpoint)
    assert [p.name for p in only.outputs] == ["only.wav"] and not (tmp_path / "only.mid").exists()


def test_without_a_soundfont_the_error_says_how_to_get_one(checkpoint, tmp_path, monkeypatch):
    import dexter_cli.audio as audio

    monkeypatch.setattr(audio, "SOUNDFONT_PLACES", ())
    monkeypatch.delenv("DEXTER_SOUNDFONT", raising=False)
    score = tmp_path / "s.musicxml"
    make_score(score, n_notes=8)
    with pytest.raises(DexterError, match="apt install fluid-soundfont-gm"):
        render_score(score, tmp_path / "o.wav", {"steps": 2}, checkpoint=checkpoint)
    assert not (tmp_path / "o.wav").exists()
    with pytest.raises(DexterError, match="SoundFont not found"):
        find_soundfont(tmp_path / "missing.sf2")
    with pytest.raises(DexterError, match="not .mp3"):
        render_score(score, tmp_path / "o.mp3", {"steps": 2}, checkpoint=checkpoint)
