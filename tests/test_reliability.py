"""Never destroy a user's file, never write nonsense with exit 0, and say when a run did nothing.

Every case goes through the ``cli`` fixture, so it is recorded in docs/robustness.md.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from .synth import make_asap_tree, make_performance, make_score


@pytest.fixture
def score(tmp_path) -> Path:
    path = tmp_path / "a.musicxml"
    make_score(path, n_notes=24)
    return path


def _one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 1, err
    lines = [ln for ln in err.strip().splitlines() if "━" not in ln]  # progress bars aside
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "unexpected" not in lines[0], err
    for w in words:
        assert w in lines[0], (w, err)


# --- 1. files destroyed silently --------------------------------------------------------------------

@pytest.mark.parametrize("case", ["output is the score", "plot is the score", "plot is the MIDI output",
                                  "numbered take is the --from input", "save-codec is the plot"])
def test_no_output_may_replace_an_input_or_another_output(cli, tmp_path, score, case):
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    perf = tmp_path / "pf_1.mid"
    if case == "numbered take is the --from input":
        make_performance(score, perf)
        before[perf] = perf.read_bytes()
    args = {
        "output is the score": [str(score), "-o", str(score)],
        "plot is the score": [str(score), "-o", str(tmp_path / "a.mid"), "--plot", str(score)],
        "plot is the MIDI output": [str(score), "-o", str(tmp_path / "a.mid"), "--plot", str(tmp_path / "a.mid")],
        "numbered take is the --from input": [str(score), "-n", "2", "-o", str(tmp_path / "pf.mid"), "--from", str(perf)],
        "save-codec is the plot": [str(score), "-o", str(tmp_path / "b.mid"), "--plot", str(tmp_path / "c.npz"),
                                   "--save-codec", str(tmp_path / "c.npz")],
    }[case]
    code, _, err = cli(["render", *args], case)
    _one_line_error(code, err)
    assert "overwrite" in err or "same file" in err
    for p, data in before.items():
        assert p.read_bytes() == data  # nothing an input held was touched
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in before)  # and nothing written


@pytest.mark.parametrize("case", ["parent is a file", "read-only folder", "output is a folder"])
def test_unwritable_outputs_are_refused_before_any_work(cli, tmp_path, score, case):
    out = {"parent is a file": score / "out.mid", "read-only folder": Path("/sys/out.mid"),
           "output is a folder": tmp_path}[case]
    code, _, err = cli(["render", str(score), "-o", str(out)], case)
    _one_line_error(code, err, "cannot write")


def test_atomic_writes_into_an_unwritable_place_are_user_errors():
    from dexter_cli.errors import DexterError
    from dexter_cli.fileio import write_text

    with pytest.raises(DexterError, match="cannot write /sys/x.txt"):
        write_text("/sys/x.txt", "x")


# --- 2. nonsense written with exit 0 ---------------------------------------------------------------

@pytest.mark.parametrize("value", ["nan", "inf", "-1e6", "-1", "21"])
def test_guidance_is_range_checked(cli, tmp_path, score, value):
    code, _, err = cli(["render", str(score), "-o", str(tmp_path / "x.mid"), "--guidance", value], f"render --guidance {value}")
    _one_line_error(code, err, "--guidance")
    assert not (tmp_path / "x.mid").exists()


def _store_of(checkpoint: Path) -> Path:
    return checkpoint.parents[2] / "store"


def test_guidance_is_range_checked_in_test_and_evaluate(cli, tmp_path, checkpoint):
    store = _store_of(checkpoint)
    code, _, err = cli(["test", "--data", str(store), "--checkpoint", str(checkpoint), "--guidance", "nan",
                        "--out", str(tmp_path / "t")], "test --guidance nan")
    _one_line_error(code, err, "--guidance")
    code, _, err = cli(["evaluate", "--data", str(store), "--checkpoint", str(checkpoint), "--split", "train",
                        "-r", "dexter", "--guidance", "inf", "--out", str(tmp_path / "e")], "evaluate --guidance inf")
    _one_line_error(code, err, "--guidance")
    assert not (tmp_path / "e").exists()


def _tiny_store(tmp_path: Path) -> Path:
    from dexter_cli.data import CodecOptions, run_codec

    root = make_asap_tree(tmp_path / "asap", {"A/B/1": 2}, n_notes=24)
    run_codec(tmp_path / "store", CodecOptions(datasets_root=None, roots={"asap": root}, max_note_seq=16, fractions=(1.0, 0.0, 0.0)))
    return tmp_path / "store"


def test_training_refuses_a_store_with_non_finite_codecs(cli, tmp_path):
    store = _tiny_store(tmp_path)
    p = np.load(store / "p_codec.npy")
    p[:] = np.nan
    np.save(store / "p_codec.npy", p)
    code, _, err = cli(["train", "--data", str(store), "--run-dir", str(tmp_path / "run"), "--max-steps", "2",
                        "-q"], "store p_codec all NaN")
    _one_line_error(code, err, "p_codec.npy", f"{p.size} non-finite")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_checkpoints_with_non_finite_weights_are_neither_written_nor_read(tmp_path, checkpoint):
    import torch
    from safetensors.torch import save_file

    from dexter_cli.checkpoint import export_inference, load_inference, tensors_sha256
    from dexter_cli.errors import DexterError

    state, config = load_inference(checkpoint)
    bad = {k: v.clone() for k, v in state.items()}
    name = next(k for k, v in bad.items() if v.is_floating_point())
    bad[name][...] = float("nan")
    with pytest.raises(DexterError, match="non-finite"):
        export_inference(tmp_path / "out", bad, config)
    assert not (tmp_path / "out").exists()
    # a file written by hand, checksum and all: loading refuses it
    folder = tmp_path / "hand"
    folder.mkdir()
    cfg = {**config, "sha256": tensors_sha256(bad)}
    save_file({k: v.contiguous() for k, v in bad.items()}, str(folder / "model.safetensors"),
              metadata={"config": json.dumps(cfg)})
    with pytest.raises(DexterError, match="non-finite"):
        load_inference(folder)
    # NaN in the codec statistics (the prior's weights live there) is refused too
    stats = json.loads(json.dumps(config["codec"]["stats"]))
    stats["p_log_mean"][0] = float("nan")
    with pytest.raises(DexterError, match="statistics hold 1 non-finite"):
        export_inference(tmp_path / "out2", state, {**config, "codec": {**config["codec"], "stats": stats}})
    assert torch.isfinite(state[name]).all()


def test_a_model_that_plays_nonsense_is_an_error_not_a_file(cli, tmp_path, score, checkpoint):
    """Finite weights whose normalisation puts the tempo at e^40 s per beat: render refuses to write."""
    from dexter_cli.checkpoint import export_inference, load_inference

    state, config = load_inference(checkpoint)
    stats = json.loads(json.dumps(config["codec"]["stats"]))
    stats["p_log_mean"][0] = -40.0  # seconds per beat of e^-40: millions of BPM
    export_inference(tmp_path / "broken", state, {**config, "codec": {**config["codec"], "stats": stats}})
    out = tmp_path / "x.mid"
    code, _, err = cli(["render", str(score), "-o", str(out), "--checkpoint", str(tmp_path / "broken")],
                       "model producing an impossible tempo")
    _one_line_error(code, err, "median tempo", "nothing was written")
    assert not out.exists()


def test_check_performance_refuses_non_finite_codecs(score):
    from dexter_cli.data.decode import decode_performance
    from dexter_cli.data.scores import load_score
    from dexter_cli.errors import DexterError
    from dexter_cli.render import check_performance

    s = load_score(score)
    p = np.full((len(s), 5), 0.5)
    assert check_performance(s, p, decode_performance(s, p)) > 0
    p[3, 1] = np.nan
    with pytest.raises(DexterError, match="1 codec entries"):
        check_performance(s, p, decode_performance(s, p))


def test_from_a_longer_performance_of_another_piece_is_refused(cli, tmp_path):
    """The score's notes all match a part of the performance, but most of the performance matches nothing."""
    short, long = tmp_path / "short.musicxml", tmp_path / "long.musicxml"
    make_score(short, n_notes=24)
    make_score(long, n_notes=120)
    perf = tmp_path / "long.mid"
    make_performance(long, perf)
    code, _, err = cli(["render", str(short), "-o", str(tmp_path / "x.mid"), "--from", str(perf)],
                       "--from a performance 5x longer than the score")
    _one_line_error(code, err, "of the notes of long.mid match the score")
    assert not (tmp_path / "x.mid").exists()


# --- 3. a run that did nothing says so -------------------------------------------------------------

def _listed_piece(tmp_path: Path) -> Path:
    s = tmp_path / "piece.musicxml"
    make_score(s, n_notes=24)
    make_performance(s, tmp_path / "h1.mid", tmp_path / "h1.tsv", seed=1)
    make_performance(s, tmp_path / "h2.mid", tmp_path / "h2.tsv", seed=2)
    listing = tmp_path / "pieces.csv"
    listing.write_text("piece.musicxml,h1.mid,h1.tsv\npiece.musicxml,h2.mid,h2.tsv\n")
    return listing


@pytest.mark.parametrize("case", ["empty folder", "garbage MIDI", "another piece"])
def test_evaluate_refuses_when_no_piece_could_be_scored(cli, tmp_path, case):
    listing = _listed_piece(tmp_path)
    ext = tmp_path / "ext"
    ext.mkdir()
    if case == "garbage MIDI":
        (ext / "piece.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    elif case == "another piece":
        other = tmp_path / "other.musicxml"
        make_score(other, n_notes=60, chord_every=3)
        shutil.copy(other, tmp_path / "o.musicxml")
        make_performance(other, ext / "piece.mid", seed=5, tempo_bpm=180)
    code, _, err = cli(["evaluate", "--pieces", str(listing), "-r", f"external:{ext}", "--out", str(tmp_path / "res")],
                       f"external renderer, {case}")
    _one_line_error(code, err, "could not be scored on any of the 1 pieces")
    assert not (tmp_path / "res" / "results.json").exists()


@pytest.mark.parametrize("case,args,words", [
    ("--max-steps 0", ["train", "--max-steps", "0"], ["--max-steps", "at least 1"]),
    ("--batch-size 0", ["train", "--batch-size", "0"], ["--batch-size", "at least 1"]),
    ("--lr -1", ["train", "--lr", "-1"], ["--lr"]),
    ("--lr nan", ["train", "--lr", "nan"], ["optim.lr"]),
    ("train --seed -1", ["train", "--seed", "-1"], ["--seed"]),
    ("pair --k 0", ["pair", "--k", "0"], ["--k must be at least 1"]),
    ("pair --seed -1", ["pair", "--seed", "-1"], ["--seed"]),
    ("codec --split 50/50/50", ["codec", "--split", "50/50/50"], ["add up to 100"]),
    ("codec --split 0/50/50", ["codec", "--split", "0/50/50"], ["no piece for training"]),
    ("render --seed 2**70", ["render", "SCORE", "--seed", str(2 ** 70)], ["--seed"]),
])
def test_settings_that_would_do_nothing_or_fail_late_are_one_line_errors(cli, tmp_path, case, args, words):
    store = _tiny_store(tmp_path)
    args = [a.replace("SCORE", str(next(store.parent.rglob("xml_score.musicxml")))) for a in args]
    if args[0] in ("train", "pair"):
        args += ["--data", str(store)] + (["--run-dir", str(tmp_path / "run")] if args[0] == "train" else [])
    if args[0] == "codec":
        args += ["--datasets-root", str(tmp_path), "--out", str(tmp_path / "store2")]
    if args[0] == "render":
        args += ["-o", str(tmp_path / "x.mid")]
    code, _, err = cli(args, case)
    _one_line_error(code, err, *words)
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "x.mid").exists()


# --- 7. a stray temporary file of a killed assembly is cleaned up ----------------------------------

def test_assembly_removes_temporary_files_left_by_a_killed_run(tmp_path):
    from dexter_cli.data import CodecOptions, run_codec

    store = _tiny_store(tmp_path)
    stray = store / ".scores.json.k3j2.tmp"
    stray.write_text("{")
    run_codec(store, CodecOptions(datasets_root=None, roots={"asap": tmp_path / "asap"}, max_note_seq=16, fractions=(1.0, 0.0, 0.0)))
    assert not stray.exists() and (store / "scores.json").is_file()


def test_a_performance_of_absurd_length_is_an_error_not_a_file(score, monkeypatch):
    """Notes held 2^10 times their notated length: a performance longer than the cap (lowered here
    from half a day to 100 s, as a score note of absurd duration would exceed it) is refused."""
    import dexter_cli.render as render
    from dexter_cli.data.decode import decode_performance
    from dexter_cli.data.scores import load_score
    from dexter_cli.errors import DexterError
    from dexter_cli.render import check_performance

    s = load_score(score)
    p = np.full((len(s), 5), 0.5)
    assert check_performance(s, p, decode_performance(s, p)) < 100
    p[:, 3] = 10.0
    monkeypatch.setattr(render, "MAX_PERFORMANCE_S", 100.0)
    with pytest.raises(DexterError, match="absurd duration"):
        check_performance(s, p, decode_performance(s, p))


def test_a_binary_metadata_csv_is_one_line(cli, tmp_path):
    root = make_asap_tree(tmp_path / "asap", {"A/B/1": 2}, n_notes=16)
    (root / "metadata.csv").write_bytes(bytes(range(256)) * 8)
    code, _, err = cli(["codec", "--asap-root", str(root), "--datasets", "asap", "--out", str(tmp_path / "s")],
                       "binary metadata.csv")
    _one_line_error(code, err, "metadata.csv is not a UTF-8 CSV")


@pytest.mark.parametrize("what", ["codec", "pair"])
def test_unwritable_stores_are_refused_before_any_work(cli, tmp_path, what):
    if what == "codec":
        root = make_asap_tree(tmp_path / "asap", {"A/B/1": 2}, n_notes=16)
        args = ["codec", "--asap-root", str(root), "--datasets", "asap", "--out", "/sys/store"]
    else:  # root writes into a chmod-555 folder, so a read-only store is checked at the function below
        args = ["pair", "--data", "/sys"]
    code, _, err = cli(args, f"{what} into a read-only place" if what == "codec" else "pair --data /sys (no store)")
    _one_line_error(code, err, "cannot write codec store" if what == "codec" else "no codec store")


def test_pair_checks_that_its_store_takes_new_files(tmp_path, monkeypatch):
    """A store that cannot take pairs.npy fails before the pairing, naming the file (a read-only
    folder, simulated where the tests run as root by a folder that refuses new files)."""
    import tempfile as tf

    from dexter_cli.data.pairs import pair_store
    from dexter_cli.errors import DexterError

    store = _tiny_store(tmp_path)
    real = tf.mkstemp

    def refuse(*args, dir=None, **kwargs):  # noqa: A002
        if dir is not None and Path(dir) == store:
            raise PermissionError(13, "Permission denied")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tf, "mkstemp", refuse)
    with pytest.raises(DexterError, match="cannot write pairs .*pairs.npy: .* is not writable"):
        pair_store(store)
    assert not (store / "pairs.npy").exists()


@pytest.mark.parametrize("case", ["stats missing", "stats of the wrong type", "stats too short"])
def test_a_store_whose_meta_json_stats_are_broken_is_one_line(cli, tmp_path, case):
    store = _tiny_store(tmp_path)
    meta = json.loads((store / "meta.json").read_text())
    if case == "stats missing":
        del meta["stats"]
    elif case == "stats of the wrong type":
        meta["stats"]["p_mean"] = "zero"
    else:
        meta["stats"]["s_std"] = meta["stats"]["s_std"][:3]
    (store / "meta.json").write_text(json.dumps(meta))
    code, _, err = cli(["pair", "--data", str(store)], f"meta.json: {case}")
    _one_line_error(code, err, "meta.json", "re-run `dexter codec`")


def test_a_checkpoint_config_with_max_note_seq_0_is_one_line(cli, tmp_path, score, checkpoint):
    from dexter_cli.checkpoint import export_inference, load_inference

    state, config = load_inference(checkpoint)
    export_inference(tmp_path / "ck", state, {**config, "codec": {**config["codec"], "max_note_seq": 0}})
    code, _, err = cli(["render", str(score), "-o", str(tmp_path / "x.mid"), "--checkpoint", str(tmp_path / "ck")],
                       "checkpoint config with max_note_seq 0")
    _one_line_error(code, err, "max_note_seq 0")


@pytest.mark.parametrize("what", ["evaluate", "train"])
def test_unwritable_results_and_runs_are_refused_before_any_work(cli, tmp_path, checkpoint, what):
    store = _store_of(checkpoint)
    if what == "evaluate":
        args = ["evaluate", "--data", str(store), "--checkpoint", str(checkpoint), "--split", "train", "-r", "dexter",
                "--out", "/sys/results"]
    else:
        args = ["train", "--data", str(store), "--run-dir", "/sys/run", "--max-steps", "1", "-q"]
    code, _, err = cli(args, f"{what} into a read-only place")
    _one_line_error(code, err, "cannot write", "/sys is not writable")


def test_training_that_makes_no_finite_step_exports_nothing(tmp_path, monkeypatch):
    """Every loss non-finite: the run ends with an error and neither checkpoints/last nor best exists."""
    import torch

    from dexter_cli.config import load_config
    from dexter_cli.engine import Expression
    from dexter_cli.errors import DexterError
    from dexter_cli.train import train

    from .conftest import TINY

    store = _tiny_store(tmp_path)
    real = Expression.loss

    def nan_loss(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        return {**out, "loss": out["loss"] * torch.tensor(float("nan"))}

    monkeypatch.setattr(Expression, "loss", nan_loss)
    cfg = load_config(None, TINY + [f"data.path={store}", f"run_dir={tmp_path / 'run'}", "optim.batch_size=4",
                                    "optim.max_steps=3", "eval.every=1", "eval.log_every=1"])
    with pytest.raises(DexterError, match="no training step had a finite loss"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints" / "last").exists()
    assert not (tmp_path / "run" / "checkpoints" / "best").exists()
