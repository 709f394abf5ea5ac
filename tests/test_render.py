"""`dexter render` with a checkpoint trained in the test on data built in code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mido
import numpy as np
import pytest

from dexter_cli.errors import DexterError
from dexter_cli.render import Extras, Source, render_score

from .synth import make_score

@pytest.fixture(scope="module")
def score(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("score") / "piece with spaces é.musicxml"
    make_score(path, n_notes=70)
    return path


def read_midi(path: Path) -> list[tuple[int, int, float, float]]:
    mid = mido.MidiFile(str(path))
    t, on, notes = 0.0, {}, []
    for msg in mido.merge_tracks(mid.tracks):
        t += mido.tick2second(msg.time, mid.ticks_per_beat, 500000)
        if msg.type == "note_on" and msg.velocity > 0:
            on[(msg.note, msg.channel)] = (t, msg.velocity)
        elif msg.type in ("note_off", "note_on"):
            start, vel = on.pop((msg.note, msg.channel))
            notes.append((msg.note, vel, start, t))
    return notes


def test_render_writes_a_valid_midi_with_every_note_once(checkpoint, score, tmp_path):
    out = tmp_path / "out.mid"
    res = render_score(score, out, {"steps": 8, "seed": 1}, checkpoint=checkpoint)
    notes = read_midi(out)
    assert len(notes) == res.n_notes == 70
    assert all(1 <= v <= 127 for _, v, _, _ in notes)
    assert all(end > start >= 0 for _, _, start, end in notes)
    import partitura as pt
    assert len(pt.load_performance_midi(str(out)).note_array()) == 70
    assert sorted(p for p, *_ in notes) == sorted(int(x) for x in pt.load_score(str(score)).note_array()["pitch"])


def test_same_seed_same_output_other_seed_other_output(checkpoint, score, tmp_path):
    a = render_score(score, tmp_path / "a.mid", {"steps": 6, "seed": 3}, checkpoint=checkpoint)
    b = render_score(score, tmp_path / "b.mid", {"steps": 6, "seed": 3}, checkpoint=checkpoint)
    c = render_score(score, tmp_path / "c.mid", {"steps": 6, "seed": 4}, checkpoint=checkpoint)
    assert (tmp_path / "a.mid").read_bytes() == (tmp_path / "b.mid").read_bytes()
    assert np.array_equal(a.p_codec, b.p_codec) and not np.array_equal(a.p_codec, c.p_codec)


def _recording(checkpoint, tmp_path: Path, sampling: dict) -> Path:
    """The test checkpoint re-exported with ``sampling`` as its recorded decoding."""
    from dexter_cli.checkpoint import export_inference, load_inference

    state, config = load_inference(checkpoint)
    config["sampling"] = sampling
    for k in ("format", "sha256"):
        config.pop(k, None)
    export_inference(tmp_path / "ck", state, config)
    return tmp_path / "ck"


def test_the_recorded_decoding_applies_unless_the_caller_chooses(checkpoint, score, tmp_path):
    ck = _recording(checkpoint, tmp_path, {"temperature": 0.0, "guidance": 1.0})
    # temperature 0 recorded: it is what a render that does not choose one uses
    a = render_score(score, tmp_path / "a.mid", {"steps": 4, "seed": 2}, checkpoint=ck)
    b = render_score(score, tmp_path / "b.mid", {"steps": 4, "seed": 2, "temperature": 0.0, "guidance": 1.0},
                     checkpoint=ck)
    assert np.array_equal(a.p_codec, b.p_codec) and a.options.temperature == 0.0
    # the caller's choice wins over the recorded one
    c = render_score(score, tmp_path / "c.mid", {"steps": 4, "seed": 2, "temperature": 1.0}, checkpoint=ck)
    assert not np.array_equal(b.p_codec, c.p_codec)
    d = render_score(score, tmp_path / "d.mid", {"steps": 4, "seed": 2, "temperature": 1.0, "guidance": 1.0},
                     checkpoint=ck)
    assert np.array_equal(c.p_codec, d.p_codec)  # guidance 1 was the recorded one
    with pytest.raises(DexterError, match="temperature"):
        render_score(score, tmp_path / "e.mid", {"temperature": 3.0}, checkpoint=ck)
    assert not (tmp_path / "e.mid").exists()


def test_the_recorded_spread_widens_the_curves(checkpoint, score, tmp_path, cli):
    from dexter_cli.data.scores import load_score
    from dexter_cli.spread import widen_curves

    ck = _recording(checkpoint, tmp_path, {"temperature": 0.5, "spread": {"tempo": 1.0, "velocity": 2.0}})
    onset = load_score(score, unfold=True).note_array["onset_beat"]
    a = render_score(score, tmp_path / "a.mid", {"steps": 4, "seed": 2}, checkpoint=ck)
    own = render_score(score, tmp_path / "b.mid", {"steps": 4, "seed": 2, "spread": (1.0, 1.0, 1.0)}, checkpoint=ck)
    assert not np.allclose(a.p_codec, own.p_codec)
    assert np.allclose(a.p_codec, widen_curves(own.p_codec, onset, 1.0, 2.0), atol=1e-6)
    code, out, _ = cli(["render", "--info", "--checkpoint", str(ck)])
    assert code == 0 and "x2 (velocity)" in " ".join(out.replace("│", " ").split())


def test_the_recorded_curve_mode_renders_the_mean_reading(checkpoint, score, tmp_path, cli):
    ck = _recording(checkpoint, tmp_path, {"temperature": 0.5, "curves": "mean"})
    a = render_score(score, tmp_path / "a.mid", {"steps": 4, "seed": 2}, checkpoint=ck)
    drawn = render_score(score, tmp_path / "c.mid", {"steps": 4, "seed": 2, "curves": "sample"}, checkpoint=ck)
    assert a.options.curves == "mean"
    assert not np.allclose(a.p_codec[..., :2], drawn.p_codec[..., :2])
    assert np.array_equal(a.p_codec[..., 2:], drawn.p_codec[..., 2:])  # the note-level rows are sampled either way
    code, out, _ = cli(["render", "--info", "--checkpoint", str(ck)])
    assert code == 0 and "first-step reading" in " ".join(out.replace("│", " ").split())


def test_the_decoding_is_not_a_command_line_option(checkpoint, score, tmp_path, cli):
    for flag, value in (("--temperature", "0.5"), ("--spread", "2"), ("--curves", "mean")):
        code, _, err = cli(["render", str(score), "-o", str(tmp_path / "e.mid"), "--checkpoint", str(checkpoint),
                            flag, value])
        assert code != 0 and "No such option" in err and not (tmp_path / "e.mid").exists()


def test_recorded_steps_apply_to_dpmpp_unless_overridden(checkpoint, score, tmp_path):
    ck = _recording(checkpoint, tmp_path, {"steps": 3})
    seen = []

    def progress(stage, done, total):
        if stage == "sample" and done == 0:
            seen.append(total)

    a = render_score(score, tmp_path / "a.mid", {"seed": 1}, checkpoint=ck, progress=progress)
    b = render_score(score, tmp_path / "b.mid", {"seed": 1, "steps": 3}, checkpoint=ck)
    render_score(score, tmp_path / "c.mid", {"seed": 1, "steps": 2}, checkpoint=ck, progress=progress)
    assert seen == [3, 2] and np.array_equal(a.p_codec, b.p_codec)
    ddim = render_score(score, tmp_path / "d.mid", {"seed": 1, "sampler": "ddim"}, checkpoint=ck)
    assert ddim.options.steps == 20  # the recorded count was judged with dpm++ only


def test_num_samples_codec_and_plot_outputs(checkpoint, score, tmp_path):
    res = render_score(score, tmp_path / "o.mid", {"steps": 4, "num_samples": 3, "controls": ["loudness=1"]},
                       checkpoint=checkpoint, extras=Extras(save_codec=tmp_path / "c.npz", plot=tmp_path / "p.png"))
    assert [p.name for p in res.outputs] == ["o_1.mid", "o_2.mid", "o_3.mid"]
    assert all(p.is_file() for p in res.outputs)
    z = np.load(tmp_path / "c.npz")
    assert z["p_codec"].shape == (3, 70, 5) and len(z["note_ids"]) == 70
    assert z["note_ids"].dtype.itemsize == 4 * max(len(i) for i in z["note_ids"])  # ids stored no wider than they are
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    render_score(score, tmp_path / "o.mid", {"steps": 2}, checkpoint=checkpoint,
                 extras=Extras(save_codec=tmp_path / "c.csv"))
    assert (tmp_path / "c.csv").read_text().splitlines()[0].startswith("sample,note_id,beat_period")








@pytest.mark.parametrize("args, needle", [
    (["--control", "loudnes=1"], "unknown control"),
    (["--control", "loudness=abc"], "not a number"),
    (["--control", "loudness=nan"], "finite value"),
    (["--steps", "0"], "--steps"),
    (["--sampler", "euler"], "is not one of"),
])
def test_bad_render_arguments(checkpoint, score, tmp_path, args, needle):
    out = tmp_path / "x.mid"
    r = subprocess.run([sys.executable, "-m", "dexter_cli", "render", str(score), "-o", str(out),
                        "--checkpoint", str(checkpoint), "-q", *args], capture_output=True, text=True, timeout=300)
    usage = args[0] == "--sampler"  # a choice the command line checks itself: a usage error
    assert r.returncode == (2 if usage else 1) and needle in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def test_bad_render_inputs(checkpoint, tmp_path):
    with pytest.raises(DexterError, match="score not found"):
        render_score(tmp_path / "missing.musicxml", tmp_path / "o.mid", checkpoint=checkpoint)
    bad = tmp_path / "bad.musicxml"
    bad.write_text("<score-partwise><part-list>")
    with pytest.raises(DexterError, match="cannot read score"):
        render_score(bad, tmp_path / "o.mid", checkpoint=checkpoint)
    with pytest.raises(DexterError, match="no checkpoint"):
        render_score(bad, tmp_path / "o.mid", checkpoint=tmp_path)
    assert not (tmp_path / "o.mid").exists()


def test_a_score_with_no_notes_is_refused_on_the_command_line(checkpoint, tmp_path):
    import partitura as pt

    part = pt.score.Part("P0", "Piano", quarter_duration=4)
    part.add(pt.score.TimeSignature(4, 4), start=0)
    part.add(pt.score.Rest(voice=1, staff=1), start=0, end=16)
    pt.score.add_measures(part)
    empty = tmp_path / "rests only.musicxml"
    pt.save_musicxml(part, str(empty))
    out = tmp_path / "o.mid"
    r = subprocess.run([sys.executable, "-m", "dexter_cli", "render", str(empty), "-o", str(out),
                        "--checkpoint", str(checkpoint), "-q"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "no notes" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not out.exists()


def test_a_checkpoint_that_does_not_fit_is_refused(checkpoint, score, tmp_path):
    from safetensors.torch import load_file

    from dexter_cli.checkpoint import export_inference
    state = load_file(str(checkpoint / "model.safetensors"))
    config = json.loads((checkpoint / "config.json").read_text())
    # weights of another shape than the config's model, with a valid checksum: refused when loading them
    cut = dict(state)
    name = next(k for k, v in cut.items() if v.ndim == 2)
    cut[name] = cut[name][:, :-1].clone()
    export_inference(tmp_path / "misfit", cut, config)
    with pytest.raises(DexterError, match="does not fit its config"):
        render_score(score, tmp_path / "o.mid", checkpoint=tmp_path / "misfit")
    # a checkpoint of another codec vocabulary (an older s_codec, say)
    other = {**config, "codec": {**config["codec"], "s_codec_names": config["codec"]["s_codec_names"][:-1]}}
    export_inference(tmp_path / "other", state, other)
    r = subprocess.run([sys.executable, "-m", "dexter_cli", "render", str(score), "-o", str(tmp_path / "o.mid"),
                        "--checkpoint", str(tmp_path / "other"), "-q"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "another codec" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o.mid").exists()


def test_render_of_partituras_example_score(checkpoint, tmp_path):
    import partitura as pt
    res = render_score(Path(pt.EXAMPLE_MUSICXML), tmp_path / "ex.mid", {"steps": 4}, checkpoint=checkpoint)
    assert len(read_midi(tmp_path / "ex.mid")) == res.n_notes > 0


BWV848 = "asap/Bach/Fugue/bwv_848"


@pytest.mark.slow
def test_variation_from_a_real_performance_stays_close_at_low_strength(checkpoint, shared_datasets, tmp_path):
    piece = shared_datasets / BWV848
    tsv = piece / "Lee01M_note_alignments" / "note_alignment.tsv"
    source = Source(piece / "Lee01M.mid", tsv)
    near = render_score(piece / "xml_score.musicxml", tmp_path / "near.mid", {"steps": 5, "strength": 0.05},
                        checkpoint=checkpoint, source=source)
    far = render_score(piece / "xml_score.musicxml", tmp_path / "far.mid", {"steps": 5, "strength": 1.0},
                       checkpoint=checkpoint, source=source)
    from dexter_cli.data.align import load_performance
    from dexter_cli.data.encode import encode_performance
    from dexter_cli.data.layouts import PerformanceSource
    from dexter_cli.data.scores import load_score

    score = load_score(piece / "xml_score.musicxml", unfold=True)
    perf, al = load_performance(piece / "Lee01M.mid", tsv)
    enc = encode_performance(PerformanceSource("x", "", "Lee01M", piece, piece / "Lee01M.mid", tsv, piece), score, perf, al)
    m = enc.mask
    r_near = np.corrcoef(near.p_codec[0][m, 1], enc.p_codec[m, 1])[0, 1]
    r_far = np.corrcoef(far.p_codec[0][m, 1], enc.p_codec[m, 1])[0, 1]
    assert r_near > 0.9 and r_near > r_far


@pytest.mark.slow
def test_from_with_automatic_alignment_and_from_another_piece(checkpoint, shared_datasets, tmp_path, caplog):
    piece = shared_datasets / BWV848
    with caplog.at_level("INFO"):
        res = render_score(piece / "xml_score.musicxml", tmp_path / "auto.mid", {"steps": 3, "strength": 0.2},
                           checkpoint=checkpoint, source=Source(piece / "Lee01M.mid"))
    assert not [r for r in caplog.records if r.name.startswith("parangonar")]  # its chatter stays quiet
    assert res.outputs[0].is_file() and res.n_notes > 1000
    # the same seed gives the same output through the automatic alignment too (parangonar samples
    # from numpy's global generator), and the caller's numpy state is left as it was
    np.random.seed(7)
    before = np.random.get_state()[1].copy()
    again = render_score(piece / "xml_score.musicxml", tmp_path / "again.mid", {"steps": 3, "strength": 0.2},
                         checkpoint=checkpoint, source=Source(piece / "Lee01M.mid"))
    assert again.outputs[0].read_bytes() == res.outputs[0].read_bytes()
    assert (np.random.get_state()[1] == before).all()
    with pytest.raises(DexterError, match="is it a performance of this piece"):
        render_score(piece / "xml_score.musicxml", tmp_path / "other.mid", checkpoint=checkpoint,
                     source=Source(shared_datasets / "vienna4x22/match/Mozart_K331_1st-mov_p01.match"))
    assert not (tmp_path / "other.mid").exists()




