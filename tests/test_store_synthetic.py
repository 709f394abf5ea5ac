"""The codec store end to end on small data built in code: layout, segments, masks,
mixup, resume, sharding, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dexter_cli.data import CodecStore, pair_store, CodecOptions, run_codec
from dexter_cli.data.parts import Parts
from dexter_cli.data.split import assign_split
from dexter_cli.errors import DexterError

from .synth import make_asap_tree

# three pieces: the default split deals them out one per split (checked below)
PIECES = {"Comp/Sonatas/1": 3, "Comp/Sonatas/2": 2, "Other/Etudes/3": 1}
N = 16


@pytest.fixture(scope="module")
def asap_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("asap")
    make_asap_tree(root, PIECES, n_notes=40)
    return root


def codec(asap_root: Path, out: Path, **kw):
    kw.setdefault("max_note_seq", N)
    return run_codec(out, CodecOptions(datasets_root=None, roots={"asap": asap_root}, **kw))


@pytest.fixture(scope="module")
def store(asap_tree, tmp_path_factory) -> CodecStore:
    out = tmp_path_factory.mktemp("store") / "codec"
    codec(asap_tree, out, mixup=True, fractions=(1.0, 0.0, 0.0))
    return CodecStore(out)


def test_store_layout_and_counts(store):
    meta = store.meta
    assert meta["codec_version"] == 1 and meta["max_note_seq"] == N
    assert meta["p_codec_names"] == ["beat_period", "velocity", "timing", "articulation_log", "pedal"]
    S, F, C = len(store), len(meta["s_codec_names"]), len(meta["c_codec_names"])
    assert store.p_codec.shape == (S, N, 5) and store.c_codec.shape == (S, N, C)
    assert store.mask.shape == (S, N) and store.s_codec.shape[1] == F
    assert meta["counts"]["performances"] == sum(PIECES.values())
    # 40 notes, N=16: 3 segments per performance (16, 16, 8 notes)
    assert meta["counts"]["real_segments"] == 3 * sum(PIECES.values())
    for name in ("p", "c", "s"):
        assert all(np.isfinite(meta["stats"][f"{name}_mean"])) and all(s > 0 for s in meta["stats"][f"{name}_std"])
    assert np.isfinite(store.p_codec).all() and np.isfinite(store.c_codec).all() and np.isfinite(store.s_codec).all()


def test_segments_line_up_across_performances_by_score_position(store):
    idx = store.index
    real = [i for i, r in enumerate(idx) if r["synthetic"] == "0"]
    by_key: dict = {}
    for i in real:
        by_key.setdefault((idx[i]["piece"], idx[i]["segment"]), []).append(i)
    for (piece, k), segs in by_key.items():
        ref = np.asarray(store.note_index[segs[0]])
        for s in segs[1:]:
            np.testing.assert_array_equal(np.asarray(store.note_index[s]), ref)
            np.testing.assert_array_equal(np.asarray(store.s_index[s]), np.asarray(store.s_index[segs[0]]))
        k = int(k)
        assert ref[0] == k * N
    # the last segment holds 8 real notes and 8 padding notes, masked out
    last = [i for i in real if idx[i]["segment"] == "2"][0]
    assert (np.asarray(store.note_index[last])[8:] == -1).all()
    assert not np.asarray(store.mask[last])[8:].any()
    assert (np.asarray(store.p_codec[last])[8:] == 0).all()


def test_unplayed_score_note_is_masked(store):
    # odd-numbered performances skip score note index 3 (see synth.make_asap_tree)
    idx = store.index
    seg = next(i for i, r in enumerate(idx) if r["performance"] == "Perf01" and r["segment"] == "0" and r["synthetic"] == "0")
    m = np.asarray(store.mask[seg])
    assert int(idx[seg]["n_played"]) == 15
    assert m.sum() == 15 and (store.p_codec[seg][~m] == 0).all()


def test_mixup_is_mean_over_notes_both_played(store):
    idx = store.index
    synth = [i for i, r in enumerate(idx) if r["synthetic"] == "1"]
    # pairs: piece 1 has 3 performances -> 3 pairs, piece 2 has 2 -> 1, piece 3 has 1 -> 0; 3 segments each
    assert len(synth) == (3 + 1) * 3
    assert all(idx[i]["split"] == "train" for i in synth)
    i = next(i for i in synth if idx[i]["performance"] == "Perf00+Perf01" and idx[i]["segment"] == "0"
             and idx[i]["piece"] == "Comp/Sonatas/1")
    a = next(j for j, r in enumerate(idx) if r["performance"] == "Perf00" and r["segment"] == "0"
             and r["piece"] == "Comp/Sonatas/1" and r["synthetic"] == "0")
    b = next(j for j, r in enumerate(idx) if r["performance"] == "Perf01" and r["segment"] == "0"
             and r["piece"] == "Comp/Sonatas/1" and r["synthetic"] == "0")
    both = np.asarray(store.mask[a]) & np.asarray(store.mask[b])
    np.testing.assert_array_equal(np.asarray(store.mask[i]), both)
    np.testing.assert_allclose(store.p_codec[i][both], (store.p_codec[a][both] + store.p_codec[b][both]) / 2, rtol=1e-6)
    assert (store.p_codec[i][~both] == 0).all()


def test_mixup_never_in_valid_or_test(asap_tree, tmp_path):
    run = codec(asap_tree, tmp_path / "s", mixup=True, fractions=(0.0, 0.0, 1.0))
    st = CodecStore(run.store)
    assert run.assembled.synthetic_segments == 0 and (np.asarray(st.seg_synthetic) == 0).all()


def test_pairs_never_use_synthetic_segments(store):
    report = pair_store(store.path, k=None, seed=0)
    pairs = np.load(store.path / "pairs.npy")
    assert len(pairs) == report.pairs > 0
    assert (np.asarray(store.seg_synthetic)[pairs] == 0).all()
    assert (np.asarray(store.seg_group)[pairs[:, 0]] == np.asarray(store.seg_group)[pairs[:, 1]]).all()
    # piece 3 has a single performance: its 3 segments have no partner
    assert report.unpaired == 3
    # group sizes 3 and 2 over 3 segments each: 3*(3*2) + 3*(2*1) ordered pairs
    assert report.pairs == 3 * 6 + 3 * 2


def test_resume_after_interruption_redoes_nothing_finished(asap_tree, tmp_path):
    out = tmp_path / "s"
    full = codec(asap_tree, out)
    parts = Parts(out)
    # simulate a run killed after some performances: drop two results and the assembled store
    keys = sorted(r.key for r in full.encoded.results)
    for k in keys[:2]:
        parts.perf_path(k).unlink()
    (out / "meta.json").unlink()
    with pytest.raises(DexterError, match="incomplete"):
        CodecStore(out)
    again = codec(asap_tree, out)
    assert again.encoded.count("encoded") == 2
    assert again.encoded.count("cached") == len(keys) - 2
    ref = CodecStore(codec(asap_tree, tmp_path / "fresh").store)
    st = CodecStore(out)
    np.testing.assert_array_equal(np.asarray(st.p_codec), np.asarray(ref.p_codec))


def test_shards_then_merge_equal_unsharded(asap_tree, tmp_path):
    out = tmp_path / "sharded"
    r0 = codec(asap_tree, out, shard=(0, 2), mixup=True)
    assert r0.assembled is None and not (out / "meta.json").exists()
    r1 = codec(asap_tree, out, shard=(1, 2), mixup=True)
    assert r0.encoded.count("encoded") + r1.encoded.count("encoded") == sum(PIECES.values())
    assert r0.encoded.count("encoded") > 0 and r1.encoded.count("encoded") > 0
    codec(asap_tree, out, merge_only=True, mixup=True)
    ref = codec(asap_tree, tmp_path / "plain", mixup=True)
    a, b = CodecStore(out), CodecStore(ref.store)
    for name in ("p_codec", "c_codec", "mask", "s_index", "note_index", "s_codec", "seg_split", "seg_group"):
        np.testing.assert_array_equal(np.asarray(getattr(a, name)), np.asarray(getattr(b, name)), err_msg=name)
    assert (out / "index.csv").read_text() == (ref.store / "index.csv").read_text()


def test_two_workers_equal_one(asap_tree, tmp_path):
    a = CodecStore(codec(asap_tree, tmp_path / "a", workers=1).store)
    b = CodecStore(codec(asap_tree, tmp_path / "b", workers=2).store)
    np.testing.assert_array_equal(np.asarray(a.p_codec), np.asarray(b.p_codec))
    np.testing.assert_array_equal(np.asarray(a.c_codec), np.asarray(b.c_codec))


def test_bad_inputs_are_skipped_with_reasons(asap_tree, tmp_path):
    root = tmp_path / "asap"
    shutil.copytree(asap_tree, root)
    piece = root / "Comp/Sonatas/1"
    (piece / "Perf00.mid").write_bytes(b"MThd\x00\x00garbage")  # truncated MIDI
    tsv = piece / "Perf01_note_alignments/note_alignment.tsv"
    lines = tsv.read_text().splitlines()
    tsv.write_text("\n".join([lines[0]] + ["nzz" + l[1:] for l in lines[1:]]) + "\n")  # unknown score ids
    bad = root / "Bad/Piece/9"
    bad.mkdir(parents=True)
    (bad / "xml_score.musicxml").write_text("<score-partwise><part-list>")  # malformed XML
    shutil.copy(piece / "Perf02.mid", bad / "P.mid")
    shutil.copytree(piece / "Perf02_note_alignments", bad / "P_note_alignments")
    run = codec(root, tmp_path / "s")
    reasons = {e["performance"] + "@" + e["piece"]: e["reason"] for e in run.assembled.skipped}
    assert "unreadable performance" in reasons["Perf00@Comp/Sonatas/1"]
    assert "not in the score" in reasons["Perf01@Comp/Sonatas/1"]
    assert "cannot read score" in reasons["P@Bad/Piece/9"]
    lines = (tmp_path / "s" / "errors.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(l)["reason"] for l in lines)
    assert run.assembled.performances == sum(PIECES.values()) - 2


def test_nothing_encodable_is_an_error(tmp_path):
    root = tmp_path / "asap" / "A" / "B" / "C"
    (root / "X_note_alignments").mkdir(parents=True)
    (root / "X_note_alignments" / "note_alignment.tsv").write_text("xml_id\tmidi_id\n")
    (root / "X.mid").write_bytes(b"")
    (root / "xml_score.musicxml").write_text("not xml")
    with pytest.raises(DexterError, match="nothing could be encoded"):
        codec(tmp_path / "asap", tmp_path / "s")
    assert not (tmp_path / "s" / "meta.json").exists()


def test_no_dataset_found_is_an_error(tmp_path):
    with pytest.raises(DexterError, match="no aligned performance found"):
        run_codec(tmp_path / "s", CodecOptions(datasets_root=tmp_path))


def test_the_default_split_of_these_pieces_and_of_their_mixup(asap_tree, tmp_path):
    """The three pieces are too few for the hash split to fill every split of 85/5/10 (it puts two in
    train and one in test), so they are dealt out one to each; mixup segments are train only."""
    from dexter_cli.data.split import assign_splits

    assert {p: assign_split(p) for p in PIECES} == {"Comp/Sonatas/1": "train", "Comp/Sonatas/2": "test",
                                                    "Other/Etudes/3": "train"}
    assert assign_splits(PIECES) == ({"Other/Etudes/3": "train", "Comp/Sonatas/1": "valid", "Comp/Sonatas/2": "test"},
                                     True)
    st = CodecStore(codec(asap_tree, tmp_path / "s", mixup=True).store)
    assert st.meta["pieces"] == {"train": ["Other/Etudes/3"], "valid": ["Comp/Sonatas/1"], "test": ["Comp/Sonatas/2"]}
    synth = np.asarray(st.seg_synthetic) == 1
    assert not synth.any() or (np.asarray(st.seg_split)[synth] == 0).all()
