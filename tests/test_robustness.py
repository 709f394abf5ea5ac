"""Bad input to `dexter render`: a corpus generated here; each gets one clear line, exit 1, no output.

Every command run through the ``cli`` fixture is recorded for ``docs/robustness.md``
(``make robustness-table``; see conftest).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from .synth import make_performance, make_score

SECRET = "DEXTER-SECRET-7f3a"


def _example() -> str:
    import partitura as pt

    return Path(pt.EXAMPLE_MUSICXML).read_text()


def _body() -> str:
    src = _example()
    return src[src.index("<score-partwise"):]


def _laughs() -> str:
    ents = "".join(f'<!ENTITY l{i} "' + (f"&l{i - 1};" * 10 if i else "lol") + '">\n' for i in range(10))
    return f'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n{ents}]>\n' + _body().replace("<part-name>Piano", "<part-name>&l9;", 1)


def _xxe(secret_file: Path) -> str:
    return (f'<?xml version="1.0"?>\n<!DOCTYPE score-partwise [\n<!ENTITY x SYSTEM "file://{secret_file}">\n]>\n'
            + _body().replace("<part-name>Piano", "<part-name>&x;", 1))


def _mxl(path: Path, container: str, score: str | None) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("META-INF/container.xml", container)
        if score is not None:
            z.writestr("score.xml", score)


# (case, file name, writer) -> every one must be refused with one line, exit 1, no output
BAD_SCORES = {
    "truncated MusicXML": ("half.musicxml", lambda p: p.write_text(_example()[: len(_example()) // 2])),
    "malformed XML": ("bad.musicxml", lambda p: p.write_text("<score-partwise><part-list><part></score-partwise>")),
    "billion laughs (entity expansion)": ("laughs.musicxml", lambda p: p.write_text(_laughs())),
    "not XML, score extension": ("noise.musicxml", lambda p: p.write_bytes(bytes(range(256)) * 40)),
    "empty file": ("empty.musicxml", lambda p: p.write_bytes(b"")),
    "truncated MXL (cut zip)": ("cut.mxl", lambda p: (_mxl(p, '<container><rootfiles><rootfile full-path="score.xml"/>'
                                                        "</rootfiles></container>", _example()),
                                                   p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]))),
    "MXL without its score": ("hollow.mxl", lambda p: _mxl(p, '<container><rootfiles><rootfile full-path="s.xml"/>'
                                                             "</rootfiles></container>", None)),
    "truncated MIDI as score": ("cut.mid", lambda p: p.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk"
                                                                   b"\x00\x00\x01\x00\x90\x3c")),
    "empty MIDI as score": ("empty.mid", lambda p: p.write_bytes(b"")),
    "unknown extension": ("score.txt", lambda p: p.write_text("C D E F G")),
    "a folder, not a file": ("folder.musicxml", lambda p: p.mkdir()),
}


@pytest.mark.parametrize("case", list(BAD_SCORES))
def test_bad_scores_are_refused_by_render(case, checkpoint, tmp_path, cli):
    name, write = BAD_SCORES[case]
    path = tmp_path / name
    write(path)
    out = tmp_path / "out.mid"
    code, _, err = cli(["render", str(path), "-o", str(out), "--checkpoint", str(checkpoint), "-q"])
    assert code == 1, (case, err)
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (case, err)
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))


def test_external_entities_are_never_read(checkpoint, tmp_path, cli):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    for path in (tmp_path / "xxe.musicxml", tmp_path / "xxe.mxl"):
        if path.suffix == ".mxl":
            _mxl(path, f'<?xml version="1.0"?>\n<!DOCTYPE c [\n<!ENTITY x SYSTEM "file://{secret}">\n]>\n'
                       '<container><rootfiles><rootfile full-path="&x;"/></rootfiles></container>', _example())
        else:
            path.write_text(_xxe(secret))
        out = tmp_path / f"{path.suffix[1:]}.mid"
        code, stdout, err = cli(["render", str(path), "-o", str(out), "--checkpoint", str(checkpoint), "-q",
                                     "--save-codec", str(out.with_suffix(".csv"))])
        assert SECRET not in stdout + err
        for f in tmp_path.iterdir():
            if f.is_file() and f != secret:
                assert SECRET.encode() not in f.read_bytes(), f
        assert code in (0, 1) and "Traceback" not in err
    # where the entity stands, the part's name, nothing of the file arrives: the score as dexter's loader
    # reads it (partitura's), before its parts are merged (an XML reader that resolved entities would
    # put the secret there: lxml with resolve_entities=True reads "part-name" as the secret)
    import partitura as pt

    names = [getattr(part, "part_name", None) for part in pt.load_score(str(tmp_path / "xxe.musicxml")).parts]
    assert names and not any(SECRET in str(n) for n in names), names


@pytest.mark.parametrize("value, needle", [("nan", "finite"), ("inf", "finite"), ("-inf", "finite"),
                                           ("1e300", "within"), ("6", "within"), ("", "not a number"),
                                           ("1,5", "not a number")])
def test_bad_control_values(value, needle, checkpoint, tmp_path, cli):
    score = tmp_path / "s.musicxml"
    make_score(score, n_notes=8)
    code, _, err = cli(["render", str(score), "-o", str(tmp_path / "o.mid"), "--checkpoint", str(checkpoint),
                            "-q", "--control", f"loudness={value}"])
    assert code == 1 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o.mid").exists()


def test_one_note_score_and_odd_paths_render(checkpoint, tmp_path, cli):
    import mido

    folder = tmp_path / "dossier à espaces ünïcode"
    folder.mkdir()
    score = folder / "une note é.musicxml"
    make_score(score, n_notes=1)
    out = folder / "sortie ü.mid"
    code, _, err = cli(["render", str(score), "-o", str(out), "--checkpoint", str(checkpoint), "-q"])
    assert code == 0, err
    notes = [m for m in mido.MidiFile(str(out)) if m.type == "note_on" and m.velocity > 0]
    assert len(notes) == 1


def _performance_case(tmp_path: Path, case: str) -> tuple[Path, Path, Path | None]:
    """A score, a performance and an alignment with one defect."""
    score = tmp_path / "s.musicxml"
    make_score(score, n_notes=24)
    midi, tsv = tmp_path / "p.mid", tmp_path / "al" / "note_alignment.tsv"
    make_performance(score, midi, tsv)
    lines = tsv.read_text().splitlines()
    if case == "truncated MIDI":
        midi.write_bytes(midi.read_bytes()[:40])
    elif case == "empty MIDI":
        midi.write_bytes(b"")
    elif case == "alignment with unknown ids":
        tsv.write_text("\n".join([lines[0]] + ["unknown" + ln for ln in lines[1:]]) + "\n")
    elif case == "alignment with duplicated ids":
        first = lines[1].split("\t")[0]
        tsv.write_text("\n".join([lines[0]] + [first + "\t" + ln.split("\t", 1)[1] for ln in lines[1:]]) + "\n")
    elif case == "alignment with wrong columns":
        tsv.write_text("a,b,c\n1,2,3\n")
    elif case == "alignment that is not text":
        tsv.write_bytes(bytes(range(256)) * 8)
    return score, midi, tsv


PERF_CASES = ["truncated MIDI", "empty MIDI", "alignment with unknown ids", "alignment with duplicated ids",
              "alignment with wrong columns", "alignment that is not text"]


@pytest.mark.parametrize("case", PERF_CASES)
def test_bad_performances_are_refused_by_render_from(case, checkpoint, tmp_path, cli):
    score, midi, tsv = _performance_case(tmp_path, case)
    out = tmp_path / "o.mid"
    code, _, err = cli(["render", str(score), "-o", str(out), "--checkpoint", str(checkpoint), "-q",
                            "--from", str(midi), "--alignment", str(tsv)])
    assert code == 1, (case, err)
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (case, err)
    assert not out.exists()


def test_overlapping_and_zero_length_notes_in_a_performance_are_survived(checkpoint, tmp_path, cli):
    import mido

    score = tmp_path / "s.musicxml"
    make_score(score, n_notes=24)
    midi, tsv = tmp_path / "p.mid", tmp_path / "al" / "note_alignment.tsv"
    make_performance(score, midi, tsv)
    mid = mido.MidiFile(str(midi))
    track = mid.tracks[-1]
    # a zero-length note and an overlapping re-strike of the first pitch, appended
    track.insert(len(track) - 1, mido.Message("note_on", note=60, velocity=50, time=0))
    track.insert(len(track) - 1, mido.Message("note_off", note=60, velocity=0, time=0))
    track.insert(len(track) - 1, mido.Message("note_on", note=61, velocity=50, time=0))
    track.insert(len(track) - 1, mido.Message("note_on", note=61, velocity=60, time=10))
    track.insert(len(track) - 1, mido.Message("note_off", note=61, velocity=0, time=10))
    mid.save(str(midi))
    out = tmp_path / "o.mid"
    code, _, err = cli(["render", str(score), "-o", str(out), "--checkpoint", str(checkpoint), "-q",
                            "--from", str(midi), "--alignment", str(tsv), "--strength", "0.3"])
    assert code == 0, err
    assert len([m for m in mido.MidiFile(str(out)) if m.type == "note_on" and m.velocity > 0]) == 24


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(monkeypatch, tmp_path, cli):
    import dexter_cli.render as render

    def boom(*a, **k):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(render, "render_score", boom)
    score = tmp_path / "s.musicxml"
    make_score(score, n_notes=4)
    code, _, err = cli(["render", str(score), "-o", str(tmp_path / "o.mid")])
    assert code == 1 and "unexpected ZeroDivisionError: a bug" in err and "Traceback" not in err
    code, _, err = cli(["--debug", "render", str(score), "-o", str(tmp_path / "o.mid")])
    assert code == 1 and "Traceback" in err
