"""Inputs that dexter used to misread or explain badly (Reliability II, sections 5 and 6).

Each bad input is built here and run through ``dexter``: it is refused with one line that names
the file and the problem (exit 1), or rendered with a one-line warning that says what dexter
does instead of what the file asks (exit 0); the test name and the case say which. Every command
is recorded for ``docs/robustness.md`` (see conftest).
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
import zipfile
from pathlib import Path

import pytest

from dexter_cli.errors import DexterWarning

from .conftest import TINY
from .synth import make_asap_tree


def _example(kind: str = "MUSICXML") -> str:
    import partitura as pt

    return Path(getattr(pt, f"EXAMPLE_{kind}")).read_text()


def _one_line_error(code: int, err: str, *words: str) -> bool:
    lines = err.strip().splitlines()
    return (code == 1 and len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err
            and all(w in lines[0] for w in words))


def _render(cli, score: Path, checkpoint: Path, case: str) -> tuple[int, str, list[str]]:
    """``dexter render`` of one score: (exit status, stderr, the DexterWarnings it gave, as printed
    by the CLI or issued to Python's warnings)."""
    out = score.with_suffix(".out.mid")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DexterWarning)
        code, _, err = cli(["render", str(score), "-o", str(out), "--checkpoint", str(checkpoint), "-q",
                            "--steps", "2"], case=case)
    said = [str(w.message) for w in caught if issubclass(w.category, DexterWarning)]
    said += [ln for ln in err.splitlines() if "warning" in ln.lower()]
    return code, err, said


def _midi_pitches(path: Path) -> list[int]:
    import mido

    return sorted(m.note for m in mido.MidiFile(str(path)) if m.type == "note_on" and m.velocity > 0)


# --- section 5: messages that name the problem ---------------------------------------------------

def test_an_mei_file_without_xml_ids_renders(checkpoint, tmp_path, cli):
    score = tmp_path / "no ids.mei"
    score.write_text(re.sub(r'\s+xml:id="[^"]*"', "", _example("MEI")))
    code, err, _ = _render(cli, score, checkpoint, "MEI without xml:id attributes (ids given, renders)")
    assert code == 0, err
    assert _midi_pitches(score.with_suffix(".out.mid")) == [69, 72, 76]


def _grace_only(x: str) -> str:
    x = re.sub(r'\s*<note id="r01">.*?</note>', "", x, flags=re.S)  # the rest
    x = re.sub(r"\s*<backup>.*?</backup>", "", x, flags=re.S)
    x = re.sub(r"\s*<duration>\d+</duration>", "", x)
    return re.sub(r'(<note id="n\d+">)', r"\1<grace/>", x)


NO_TIME = {
    "grace notes only": _grace_only,
    "every duration 0": lambda x: re.sub(r"<duration>\d+</duration>", "<duration>0</duration>", x),
}


@pytest.mark.parametrize("case", list(NO_TIME))
def test_a_score_that_lasts_no_time_is_refused(case, checkpoint, tmp_path, cli):
    score = tmp_path / "timeless.musicxml"
    score.write_text(NO_TIME[case](_example()))
    code, err, _ = _render(cli, score, checkpoint, f"MusicXML, {case}")
    assert _one_line_error(code, err, "timeless.musicxml", "lasts any time"), err


def test_the_mei_check_never_reads_an_external_entity(tmp_path):
    # dexter's own MEI pre-check parses the file before partitura does, and its document (with the
    # ids it gives) is what partitura then reads: an entity naming a local file must stay a
    # reference there, never the file's text
    from dexter_cli.data.score_checks import check_mei

    secret = tmp_path / "secret.txt"
    secret.write_text("DEXTER-SECRET-7f3a")
    text = re.sub(r'\s+xml:id="[^"]*"', "", _example("MEI"))  # without ids: the checked document is returned
    head, body = text.split("?>", 1)
    doc = f'{head}?>\n<!DOCTYPE mei [\n<!ENTITY x SYSTEM "file://{secret}">\n]>{body}'
    doc = re.sub(r"(<title[^>]*>)", r"\1&x;", doc, count=1)
    assert "&x;" in doc
    score = tmp_path / "xxe.mei"
    score.write_text(doc)
    checked = check_mei(score)
    assert checked is not None and b"DEXTER-SECRET" not in checked


BAD_MEI = {
    "pname='banana' (was KeyError 'banana')": (lambda x: x.replace('pname="c"', 'pname="banana"'), "pname 'banana'"),
    "a note without oct": (lambda x: x.replace('oct="5" pname="c"', 'pname="c"'), "has no oct"),
    "dur='3'": (lambda x: x.replace('dur="1" ', 'dur="3" '), "dur='3'"),
    "a tie to no note (was KeyError)": (lambda x: x.replace(
        "</measure>", '<tie xml:id="t1" startid="#nope" endid="#n1txt37q"/></measure>'), "#nope"),
    "no MEI namespace (was KeyError: None)": (lambda x: x.replace(' xmlns="http://www.music-encoding.org/ns/mei"', ""),
                                              "declares no default namespace"),
    "a clef without its line (KeyError: 'line')": (lambda x: x.replace(
        'shape="G" line="2" />\n                           <keySig xml:id="ki5anqv"',
        'shape="G" />\n                           <keySig xml:id="ki5anqv"'), "'line' is missing"),
}


@pytest.mark.parametrize("case", list(BAD_MEI))
def test_bad_mei_is_refused_naming_the_problem(case, checkpoint, tmp_path, cli):
    damage, words = BAD_MEI[case]
    score = tmp_path / "bad.mei"
    text = damage(_example("MEI"))
    assert text != _example("MEI")
    score.write_text(text)
    code, err, _ = _render(cli, score, checkpoint, f"MEI: {case}")
    assert _one_line_error(code, err, "bad.mei", words), err
    assert "KeyError: '" not in err


KERN = ["**kern\t**kern", "*staff2\t*staff1", "*clefF4\t*clefG2", "*M4/4\t*M4/4"] + [
    ln for m in range(1, 9) for ln in [f"={m}\t={m}"] + [f"4{s.upper()}\t4{s}" for s in "cdef"]] + ["==\t=="]
BAD_KERN = {
    "a line with one field too few (was IndexError)": (KERN[:7] + ["4c"] + KERN[7:] + ["*-\t*-"], "line 8 has 1 field"),
    "no **kern spine (was UFuncTypeError)": (KERN[1:] + ["*-\t*-"], "no **kern spine"),
}


@pytest.mark.parametrize("case", list(BAD_KERN))
def test_bad_kern_is_refused_naming_the_line(case, checkpoint, tmp_path, cli):
    lines, words = BAD_KERN[case]
    score = tmp_path / "bad.krn"
    score.write_text("\n".join(lines) + "\n")
    code, err, _ = _render(cli, score, checkpoint, f"kern: {case}")
    assert _one_line_error(code, err, "bad.krn", words), err


def test_a_musicxml_part_missing_from_the_part_list_is_refused(checkpoint, tmp_path, cli):
    score = tmp_path / "orphan.musicxml"
    score.write_text(_example().replace('<part id="P1">', '<part id="P2">'))
    code, err, _ = _render(cli, score, checkpoint, "MusicXML part P2 not in the part-list (was AttributeError)")
    assert _one_line_error(code, err, "orphan.musicxml", "'P2' is not in its <part-list>"), err


def test_a_huge_mxl_is_refused_in_one_line(checkpoint, tmp_path, cli):
    score = tmp_path / "huge.mxl"
    with zipfile.ZipFile(score, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("META-INF/container.xml",
                   '<container><rootfiles><rootfile full-path="score.xml"/></rootfiles></container>')
        z.writestr("score.xml", _example().replace('<part id="P1">', '<part id="P1" x="' + "a" * 12_000_000 + '">'))
    code, err, _ = _render(cli, score, checkpoint, "MXL with a 12 MB attribute (was two lines)")
    assert _one_line_error(code, err, "huge.mxl", "Resource limit exceeded"), err
    assert "XML_PARSE_HUGE" not in err


def test_a_checkpoint_whose_weights_do_not_fit_its_config_is_summed_up(checkpoint, tmp_path, cli):
    from dexter_cli.checkpoint import export_inference, load_inference

    state, config = load_inference(checkpoint)
    config["model"]["residual_layers"] += 1
    export_inference(tmp_path / "ck", state, config)
    score = tmp_path / "s.musicxml"
    score.write_text(_example())
    code, err, _ = _render(cli, score, tmp_path / "ck", "a checkpoint whose weights do not fit its config")
    assert _one_line_error(code, err, "ck", "does not fit its config", "weights missing (first: "), err


def test_bad_yaml_config_is_one_line_with_line_and_column(tmp_path, cli):
    config = tmp_path / "bad.yaml"
    config.write_text("model:\n  residual_layers: 4\n optim:\n  lr: 1\n")
    code, _, err = cli(["train", "--config", str(config), "-q"], case="train --config: YAML indented wrongly")
    assert _one_line_error(code, err, "bad.yaml", "line 3, column 2"), err


def _run_folder(checkpoint: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the ``checkpoint`` fixture's run folder, and its store."""
    base = checkpoint.parents[2]
    run = tmp_path / "run"
    shutil.copytree(base / "run", run)
    return run, base / "store"


def test_an_optimizer_state_that_would_run_code_is_refused_without_torch_advice(checkpoint, tmp_path, cli):
    import os

    import torch

    marker = tmp_path / "owned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch '{marker}'",))

    run, store = _run_folder(checkpoint, tmp_path)
    torch.save({"state": {}, "param_groups": [], "x": Payload()}, run / "state" / "optimizer.pt")
    code, _, err = cli(["train", *TINY, "--data", str(store), "--run-dir", str(run), "--batch-size", "4",
                          "--max-steps", "31", "--resume", "-q"], case="--resume with an optimizer.pt that runs code")
    assert _one_line_error(code, err, "optimizer.pt", "not a plain tensor file", "refused"), err
    assert "weights_only" not in err and not marker.exists()


# --- section 6: inputs changed without a word -> warned or refused ------------------------------

def test_pitches_outside_midi_range_render_clamped_with_a_warning(checkpoint, tmp_path, cli):
    score = tmp_path / "wide.musicxml"
    score.write_text(_example().replace("<octave>5</octave>", "<octave>11</octave>", 1))  # C11 = MIDI 144
    code, err, said = _render(cli, score, checkpoint, "a pitch of 144 (warns; played as 127)")
    assert code == 0, err
    assert any("wide.musicxml" in s and "outside MIDI's range 0-127" in s for s in said), said
    assert _midi_pitches(score.with_suffix(".out.mid")) == [69, 76, 127]


def test_a_kern_file_without_its_terminator_is_refused(checkpoint, tmp_path, cli):
    score = tmp_path / "cut.krn"
    score.write_text("\n".join(KERN[: len(KERN) // 2]) + "\n")  # the first half: no *- at the end
    code, err, _ = _render(cli, score, checkpoint, "kern without its *- terminator, cut in half (refused)")
    assert _one_line_error(code, err, "cut.krn", "without the spine terminator *-"), err


def _repeat(times: str) -> str:
    """The example score with a second measure (its notes again) that ends with a backward repeat."""
    x = _example()
    notes = x[x.index('      <note id="n01">'): x.index("    </measure>")].replace('id="', 'id="b')
    m2 = (f'    <measure number="2">\n{notes}      <barline location="right"><bar-style>light-heavy</bar-style>'
          f'<repeat direction="backward"{times}/></barline>\n    </measure>\n')
    return x.replace("  </part>", m2 + "  </part>")


def test_a_repeat_played_50_times_is_played_twice_with_a_warning(checkpoint, tmp_path, cli):
    score = tmp_path / "fifty.musicxml"
    score.write_text(_repeat(' times="50"'))
    code, err, said = _render(cli, score, checkpoint, 'repeat times="50" (warns; played twice)')
    assert code == 0, err
    assert any("fifty.musicxml" in s and "50" in s and "twice" in s for s in said), said
    assert len(_midi_pitches(score.with_suffix(".out.mid"))) == 12  # two measures of 3 notes, each played twice
    plain = tmp_path / "two.musicxml"
    plain.write_text(_repeat(' times="2"'))
    code, err, said = _render(cli, plain, checkpoint, 'repeat times="2" (no warning)')
    assert code == 0 and not said, (err, said)


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> Path:
    from dexter_cli.data import CodecOptions, run_codec

    base = tmp_path_factory.mktemp("inputs_store")
    tree = make_asap_tree(base / "asap", {"A/B/1": 2}, n_notes=24)
    run_codec(base / "codec", CodecOptions(datasets_root=None, roots={"asap": tree}, max_note_seq=16, fractions=(1.0, 0.0, 0.0)))
    return base / "codec"


@pytest.mark.parametrize("command", ["pair", "train"])
def test_a_store_whose_meta_json_disagrees_with_its_arrays_is_refused(command, small_store, tmp_path, cli):
    store = tmp_path / "store"
    shutil.copytree(small_store, store)
    meta = json.loads((store / "meta.json").read_text())
    meta["max_note_seq"] = 32  # the arrays hold segments of 16
    (store / "meta.json").write_text(json.dumps(meta))
    run = tmp_path / "run"
    args = {"pair": ["pair", "--data", str(store)],
            "train": ["train", *TINY, "--data", str(store), "--max-steps", "2", "--run-dir", str(run), "-q"]}
    code, _, err = cli(args[command], case=f"{command}: meta.json says N=32, the arrays hold 16")
    assert _one_line_error(code, err, "store", "segments of 32 notes", "segments of 16"), err
    assert not (run / "checkpoints").exists()
