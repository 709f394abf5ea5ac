"""The bad-input corpus through the other commands: `codec` and `evaluate` skip a bad item with its
reason and do the rest; `pair`, `train`, `test` and `evaluate` refuse a bad store in one line;
extreme scores (one note, 20,000 notes) render."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .conftest import TINY, record
from .synth import make_asap_tree, make_performance, make_score
from .test_robustness import BAD_SCORES


GOOD = "Gööd Composer/Piece with spaces é/1"  # the one good piece: odd characters in every path


def _one_line_error(code: int, err: str) -> bool:
    last = err.strip().splitlines()[-1] if err.strip() else ""
    return code == 1 and last.startswith("error:") and "Traceback" not in err


@pytest.fixture(scope="module")
def good_tree(tmp_path_factory) -> Path:
    return make_asap_tree(tmp_path_factory.mktemp("asap"), {GOOD: 2}, n_notes=24)


def _bad_piece_tree(good_tree: Path, root: Path) -> dict[str, str]:
    """The good piece plus one piece per bad score (its file content as xml_score.musicxml,
    with a valid performance of the good score beside it). Returns case -> piece key."""
    shutil.copytree(good_tree, root)
    good = root / GOOD
    keys = {}
    for i, (case, (name, write)) in enumerate(BAD_SCORES.items()):
        if case in ("a folder, not a file", "unknown extension"):
            continue  # the ASAP layout fixes the score's name: these cannot occur there
        folder = root / f"Bad/Case/{i}"
        folder.mkdir(parents=True)
        scratch = folder / name
        write(scratch)
        scratch.rename(folder / "xml_score.musicxml")
        shutil.copy(good / "Perf00.mid", folder / "P.mid")
        shutil.copytree(good / "Perf00_note_alignments", folder / "P_note_alignments")
        keys[case] = f"Bad/Case/{i}"
    return keys


def test_codec_skips_each_bad_score_with_its_reason(good_tree, tmp_path, cli, request):
    root = tmp_path / "asap"
    keys = _bad_piece_tree(good_tree, root)
    out = tmp_path / "store"
    code, _, err = cli(["codec", "--asap-root", str(root), "--datasets", "asap", "-N", "16", "-o", str(out), "-q"],
                       case="a dataset with every bad score")
    assert code == 0, err
    skipped = {json.loads(line)["piece"]: json.loads(line)["reason"]
               for line in (out / "errors.jsonl").read_text().splitlines()}
    for case, key in keys.items():
        assert key in skipped and skipped[key], case
        record(request, f"codec: {case}", "skipped", skipped[key].splitlines()[0])
    meta = json.loads((out / "meta.json").read_text())
    assert meta["counts"]["performances"] == 2  # the good piece's, encoded


def _pieces_list(tmp_path: Path, good_tree: Path, bad: list[str]) -> Path:
    good = good_tree / GOOD
    rows = ["score,performance,alignment"]
    if "good" in bad:
        rows += [f"{good / 'xml_score.musicxml'},{good / f'Perf0{k}.mid'},"
                 f"{good / f'Perf0{k}_note_alignments/note_alignment.tsv'}" for k in range(2)]
    for case in bad:
        if case == "good":
            continue
        name, write = BAD_SCORES[case]
        folder = tmp_path / case.replace(" ", "_").replace("(", "").replace(")", "").replace(",", "")
        folder.mkdir()
        write(folder / name)
        rows.append(f"{folder / name},{good / 'Perf00.mid'},{good / 'Perf00_note_alignments/note_alignment.tsv'}")
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "list.csv"


def test_evaluate_skips_each_bad_score_and_evaluates_the_rest(good_tree, checkpoint, tmp_path, cli, request):
    cases = [c for c in BAD_SCORES if c != "a folder, not a file"]
    listing = _pieces_list(tmp_path, good_tree, ["good", *cases])
    code, out, err = cli(["evaluate", "--pieces", str(listing), "-r", "dexter,deadpan", "--checkpoint", str(checkpoint),
                          "--steps", "2", "-o", str(tmp_path / "ev"), "-q"], case="a list with every bad score")
    assert code == 0, err
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert {r["piece"] for r in results["per_piece"]} == {"xml_score (xml_score.musicxml)"}
    assert results["settings"]["split"] is None and results["settings"]["dexter"]["steps"] == 2
    assert "dpm++ 2 steps" in " ".join(out.split())  # what the model renderer sampled with (rich may wrap)
    problems = results["problems"]
    for case in cases:
        name = BAD_SCORES[case][0]
        hit = [p for p in problems if p.startswith(f"{name}:")]
        assert hit and "not evaluated" in hit[0], (case, problems)
        record(request, f"evaluate --pieces: {case}", "skipped", hit[0])


def test_evaluate_with_no_readable_score_is_one_line(good_tree, checkpoint, tmp_path, cli):
    listing = _pieces_list(tmp_path, good_tree, ["malformed XML", "empty file"])
    code, _, err = cli(["evaluate", "--pieces", str(listing), "-r", "deadpan", "-o", str(tmp_path / "ev"), "-q"])
    assert _one_line_error(code, err) and "no piece could be evaluated" in err, err
    assert not (tmp_path / "ev" / "results.json").exists()


BAD_STORES = {
    "no such folder": lambda p: None,
    "a file, not a folder": lambda p: p.write_text("x"),
    "an empty folder": lambda p: p.mkdir(),
    "meta.json not JSON": lambda p: (p.mkdir(), (p / "meta.json").write_text("{not json")),
    "meta.json a JSON list": lambda p: (p.mkdir(), (p / "meta.json").write_text("[1, 2]")),
    "meta.json binary": lambda p: (p.mkdir(), (p / "meta.json").write_bytes(bytes(range(256)))),
}


def _damaged_store(store: Path, target: Path, how: str) -> None:
    shutil.copytree(store, target)
    if how == "truncated array file":
        f = sorted(target.glob("*.npy"))[0]
        f.write_bytes(f.read_bytes()[:100])
    elif how == "array file replaced by text":
        f = sorted(target.glob("*.npy"))[-1]
        f.write_text("hello")


@pytest.fixture(scope="module")
def small_store(good_tree, tmp_path_factory) -> Path:
    from dexter_cli.data import CodecOptions, run_codec

    out = tmp_path_factory.mktemp("store") / "codec"
    run_codec(out, CodecOptions(datasets_root=None, roots={"asap": good_tree}, max_note_seq=16, fractions=(1.0, 0.0, 0.0)))
    return out


COMMANDS = {
    "pair": lambda d, ck, o: ["pair", "--data", str(d)],
    "train": lambda d, ck, o: ["train", *TINY, "--data", str(d), "--max-steps", "2", "--run-dir", str(o), "-q"],
    "test": lambda d, ck, o: ["test", "--data", str(d), "--checkpoint", str(ck), "--steps", "2", "-o", str(o), "-q"],
    "evaluate": lambda d, ck, o: ["evaluate", "--data", str(d), "-r", "deadpan", "-o", str(o), "-q"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("damage", [*BAD_STORES, "truncated array file", "array file replaced by text"])
def test_bad_stores_are_refused_in_one_line(command, damage, small_store, checkpoint, tmp_path, cli):
    store = tmp_path / "store"
    if damage in BAD_STORES:
        BAD_STORES[damage](store)
    else:
        _damaged_store(small_store, store, damage)
    out = tmp_path / "out"
    code, _, err = cli(COMMANDS[command](store, checkpoint, out))
    assert _one_line_error(code, err), (command, damage, err)
    assert not out.exists() or not any(out.rglob("*.mid")) and not any(out.rglob("results.json"))


def test_a_checkpoint_that_is_not_one_is_refused_by_test_and_evaluate(small_store, tmp_path, cli):
    bogus = tmp_path / "ck"
    bogus.mkdir()
    (bogus / "model.safetensors").write_bytes(b"\x00" * 64)
    (bogus / "config.json").write_text("{}")
    for args in (["test", "--data", str(small_store), "--checkpoint", str(bogus), "-o", str(tmp_path / "t"), "-q"],
                 ["evaluate", "--data", str(small_store), "--split", "train", "-r", "dexter", "--checkpoint",
                  str(bogus), "-o", str(tmp_path / "e"), "-q"]):
        code, _, err = cli(args, case=f"{args[0]}: a damaged checkpoint")
        assert _one_line_error(code, err) and "checkpoint" in err and "damaged" in err, err


@pytest.mark.slow
def test_a_20000_note_score_renders_every_note(checkpoint, tmp_path, cli):
    import mido

    score = tmp_path / "long.musicxml"
    make_score(score, n_notes=20000)
    out = tmp_path / "long.mid"
    code, _, err = cli(["render", str(score), "-o", str(out), "--checkpoint", str(checkpoint), "--steps", "2", "-q"],
                       case="a 20,000-note score")
    assert code == 0, err
    notes = sum(1 for m in mido.MidiFile(str(out)) if m.type == "note_on" and m.velocity > 0)
    from dexter_cli.data.scores import load_score

    assert notes == len(load_score(score))


def test_a_performance_of_another_piece_is_refused_by_render_from(checkpoint, tmp_path, cli):
    a, b = tmp_path / "a.musicxml", tmp_path / "b.musicxml"
    make_score(a, n_notes=24)
    make_score(b, n_notes=60, chord_every=3)
    make_performance(b, tmp_path / "b.mid", tmp_path / "al" / "note_alignment.tsv")
    code, _, err = cli(["render", str(a), "-o", str(tmp_path / "o.mid"), "--checkpoint", str(checkpoint), "-q",
                        "--from", str(tmp_path / "b.mid"), "--alignment", str(tmp_path / "al" / "note_alignment.tsv")],
                       case="--from: an alignment of another score")
    assert _one_line_error(code, err), err
    assert not (tmp_path / "o.mid").exists()


def test_batch_render_skips_bad_scores_and_never_reads_or_overwrites_its_own_outputs(checkpoint, tmp_path, cli):
    import mido

    folder = tmp_path / "scores"
    (folder / "sub dir é").mkdir(parents=True)
    make_score(folder / "a.musicxml", n_notes=12)
    make_score(folder / "sub dir é" / "b.musicxml", n_notes=20)
    (folder / "broken.musicxml").write_text("<score-partwise><part-list>")
    out = folder / "out"
    args = ["render", str(folder), "-o", str(out), "--checkpoint", str(checkpoint), "--steps", "2", "-q"]
    for case in ("a folder with one bad score", "the same again (outputs inside the folder)"):
        code, _, err = cli(args, case=case)
        assert code == 1 and "1 of 3 scores could not be rendered" in err and "broken.musicxml" in err, err
        assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.mid")) == ["a.mid", "sub dir é/b.mid"]
    notes = [m for m in mido.MidiFile(str(out / "sub dir é" / "b.mid")) if m.type == "note_on" and m.velocity > 0]
    assert len(notes) == 20
    code, _, err = cli(["render", str(out), "-o", str(out), "--checkpoint", str(checkpoint), "-q"],
                       case="outputs that would overwrite the batch's scores")
    assert code == 1 and "would overwrite" in err
    assert len(list(out.rglob("*.mid"))) == 2
