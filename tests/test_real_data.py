"""The data layer on the real shared datasets (ASAP, Vienna 4x22, the ATEPP/parangonada layout)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dexter_cli.data import CodecStore, S_CODEC_NAMES, CodecOptions, run_codec
from dexter_cli.data.encode import load_performance_and_alignment, matched_pairs
from dexter_cli.data.layouts import discover, resolve_roots
from dexter_cli.data.scores import load_score, score_features

pytestmark = pytest.mark.slow
BWV848 = "Bach/Fugue/bwv_848"  # folder
BWV848_PIECE = "Bach/Fugue_bwv_848"  # piece key (ASAP metadata: composer/title)


@pytest.fixture(scope="module")
def asap_store(shared_datasets, tmp_path_factory) -> CodecStore:
    out = tmp_path_factory.mktemp("asap") / "store"
    run = run_codec(out, CodecOptions(datasets_root=shared_datasets, datasets=["asap"], pieces=[BWV848_PIECE], max_note_seq=300))
    assert run.assembled.performances == 9 and not run.assembled.skipped
    return CodecStore(out)


@pytest.fixture(scope="module")
def atepp_store(shared_datasets, tmp_path_factory) -> CodecStore:
    out = tmp_path_factory.mktemp("atepp") / "store"
    run_codec(out, CodecOptions(datasets_root=None, roots={"atepp": shared_datasets / "asap" / BWV848}, max_note_seq=300))
    return CodecStore(out)


def test_discovery_reports_each_dataset(shared_datasets):
    found = {d.dataset: d for d in discover(resolve_roots(shared_datasets, None, {}))}
    assert set(found) == {"asap", "vienna422"}  # no ATEPP folder in the shared data
    assert len(found["asap"].sources) >= 500 and len(found["vienna422"].sources) == 44
    d = discover(resolve_roots(shared_datasets, ["atepp"], {}))[0]
    assert d.root is None and "not found" in d.note


def test_asap_layout_unfolds_scores_and_matches_partitura(asap_store, shared_datasets):
    assert asap_store.scores[0]["unfolded"]
    assert any("-2" in i for i in asap_store.scores[0]["note_ids"]) or all(i.endswith("-1") for i in asap_store.scores[0]["note_ids"])
    # the stored p_codec equals partitura's own encode_performance for one performance
    import partitura as pt

    src = next(s for d in discover(resolve_roots(shared_datasets, ["asap"], {})) for s in d.sources
               if s.piece == BWV848_PIECE and s.name == "Denisova06M")
    perf, alignment = load_performance_and_alignment(src)
    score = load_score(src.score, unfold=True)
    params, ids = pt.musicanalysis.encode_performance(score.part, perf, [
        {"label": "match", "score_id": s, "performance_id": p} for s, p in matched_pairs(alignment)])[:2]
    row = {str(i): k for k, i in enumerate(ids)}
    idx = asap_store.index
    segs = [i for i, r in enumerate(idx) if r["performance"] == "Denisova06M"]
    note_ids = np.array(asap_store.scores[0]["note_ids"])
    checked = 0
    for s in segs:
        ni, m = np.asarray(asap_store.note_index[s]), np.asarray(asap_store.mask[s])
        for j in np.flatnonzero(m):
            k = row[note_ids[ni[j]]]
            got = asap_store.p_codec[s, j]
            np.testing.assert_allclose(got[:4], [params["beat_period"][k], params["velocity"][k],
                                                 params["timing"][k], params["articulation_log"][k]], rtol=1e-5, atol=1e-6)
            checked += 1
    assert checked > 1000
    # performances of one piece line up note for note
    groups = {}
    for i, r in enumerate(idx):
        groups.setdefault(r["segment"], []).append(i)
    for segs in groups.values():
        ref = np.asarray(asap_store.note_index[segs[0]])
        assert all((np.asarray(asap_store.note_index[s]) == ref).all() for s in segs)


def test_pedal_row_comes_from_cc64(asap_store):
    ped = np.asarray(asap_store.p_codec[..., 4])[np.asarray(asap_store.mask)]
    assert ped.min() >= 0 and ped.max() <= 1 and (ped > 0).mean() > 0.01


def test_atepp_parangonada_layout_gives_the_same_codec_as_asap(asap_store, atepp_store):
    assert len(atepp_store) == len(asap_store)
    a = {(r["performance"], r["segment"]): i for i, r in enumerate(asap_store.index)}
    for j, r in enumerate(atepp_store.index):
        i = a[(r["performance"], r["segment"])]
        np.testing.assert_array_equal(np.asarray(atepp_store.mask[j]), np.asarray(asap_store.mask[i]))
        np.testing.assert_allclose(np.asarray(atepp_store.p_codec[j]), np.asarray(asap_store.p_codec[i]), atol=1e-6)


def test_vienna_layout(shared_datasets, tmp_path):
    run = run_codec(tmp_path / "s", CodecOptions(datasets_root=shared_datasets, datasets=["vienna422"],
                    pieces=["Mozart_K331_1st-mov"], max_note_seq=200))
    assert run.assembled.performances == 22 and not run.assembled.skipped
    st = CodecStore(run.store)
    assert not st.scores[0]["unfolded"]  # the Vienna MusicXML carries unfolded ids already
    m = np.asarray(st.mask)
    real = np.asarray(st.note_index) >= 0
    assert m[real].mean() > 0.9 and not m[~real].any()
    bp = np.asarray(st.p_codec[..., 0])[m]
    assert 0.2 < np.median(bp) < 2.0  # seconds per beat of a plausible tempo


def test_s_codec_vocabulary_is_fixed_and_rows_follow_canonical_order(shared_datasets):
    a = load_score(shared_datasets / "vienna4x22/musicxml/Mozart_K331_1st-mov.musicxml")  # 6/8
    b = load_score(shared_datasets / "asap" / BWV848 / "xml_score.musicxml")  # 4/4
    fa, fb = score_features(a), score_features(b)
    assert fa.shape[1] == fb.shape[1] == len(S_CODEC_NAMES)
    names = list(S_CODEC_NAMES)
    # partitura's pitch feature (pitch/127) must line up with our note order
    np.testing.assert_allclose(fa[:, names.index("pitch")], a.note_array["pitch"] / 127, atol=1e-6)
    np.testing.assert_allclose(fb[:, names.index("pitch")], b.note_array["pitch"] / 127, atol=1e-6)
    assert fa[:, names.index("ts_beats")].max() != fb[:, names.index("ts_beats")].max()
    assert np.isfinite(fa).all() and np.isfinite(fb).all()
    dyn = [i for i, n in enumerate(names) if n.startswith("dyn_") or n in ("cresc", "dim")]
    assert fa[:, dyn].any()  # K331 has dynamics markings


def _atepp_tree(shared_datasets: Path, root: Path, with_metadata: bool) -> Path:
    """ATEPP's own layout, <piece>/<perf_id>.mid and <piece>/<perf_id>/align.csv, made of links to
    the shared parangonada files; 00103's alignment is made weak (two thirds of its matches undone).
    With the metadata, a second score file in the piece folder leaves only the metadata to say which."""
    src = shared_datasets / "asap" / BWV848
    piece = root / "Johann_Sebastian_Bach" / "Fugue_in_C-sharp_BWV_848"
    piece.mkdir(parents=True)
    os.symlink(src / "xml_score.musicxml", piece / "musicxml_cleaned.musicxml")
    for perf_id, name in (("00101", "Lee01M"), ("00102", "Lin04M"), ("00103", "Denisova06M")):
        os.symlink(src / f"{name}.mid", piece / f"{perf_id}.mid")
        (piece / perf_id).mkdir()
        align = src / f"{name}_note_alignments" / "parangonada_data" / "align.csv"
        if perf_id == "00103":
            lines = align.read_text().splitlines()
            weak = [ln.replace(",0,", ",1,", 1) if i % 3 else ln for i, ln in enumerate(lines[1:])]
            (piece / perf_id / "align.csv").write_text("\n".join([lines[0], *weak]) + "\n")
        else:
            os.symlink(align, piece / perf_id / "align.csv")
    (piece / "00101" / "zalign.csv").write_text("not an alignment\n")  # the original's pattern skips z*
    if with_metadata:
        os.symlink(src / "xml_score.musicxml", piece / "musicxml_original.musicxml")
        rel = piece.relative_to(root).as_posix()
        (root / "ATEPP-metadata-1.1.csv").write_text(
            "artist,midi_path,score_path\n"
            f"Lee,{rel}/00101.mid,{rel}/musicxml_cleaned.musicxml\n"
            f"Denisova,{rel}/00103.mid,{rel}/musicxml_cleaned.musicxml\n"
            f"Nobody,{rel}/00102.mid,\n")  # a transcription without a score
    return piece


@pytest.mark.parametrize("with_metadata", [False, True])
def test_atepp_in_its_own_layout(shared_datasets, asap_store, tmp_path, with_metadata):
    import json

    _atepp_tree(shared_datasets, tmp_path / "ATEPP-1.1", with_metadata)
    d = discover(resolve_roots(tmp_path, ["atepp"], {}))[0]
    found = {s.name: s for s in d.sources}
    assert set(found) == ({"00101", "00103"} if with_metadata else {"00101", "00102", "00103"})
    assert {s.piece for s in d.sources} == {"Johann_Sebastian_Bach/Fugue_in_C-sharp_BWV_848"}
    assert {s.score.name for s in d.sources} == {"musicxml_cleaned.musicxml"}
    if with_metadata:
        assert d.problems == [] or all("no score" in p for p in d.problems)
        assert any("00102" in p for p in d.problems)
    run = run_codec(tmp_path / "s", CodecOptions(datasets_root=tmp_path, datasets=["atepp"], max_note_seq=300))
    st = CodecStore(run.store)
    assert {r["performance"] for r in st.index} == {"00101"} | (set() if with_metadata else {"00102"})
    errors = [json.loads(ln) for ln in (run.store / "errors.jsonl").read_text().splitlines()]
    assert [e["performance"] for e in errors] == ["00103"] and "weak alignment" in errors[0]["reason"]
    # the same codec as the ASAP layout gives the same performance
    lee = [i for i, r in enumerate(asap_store.index) if r["performance"] == "Lee01M"]
    mine = [i for i, r in enumerate(st.index) if r["performance"] == "00101"]
    np.testing.assert_allclose(np.asarray(st.p_codec[mine]), np.asarray(asap_store.p_codec[lee]), atol=1e-6)


def test_cep_features_at_the_vienna_location(shared_datasets, tmp_path):
    from dexter_cli.data.layouts import PerformanceSource

    root = tmp_path / "vienna4x22"
    (root / "cep_features").mkdir(parents=True)
    match = shared_datasets / "vienna4x22" / "match" / "Mozart_K331_1st-mov_p01.match"
    src = PerformanceSource("vienna422", "Mozart_K331_1st-mov", "p01", match, match, None, root)
    assert src.cep_csv.name == "Mozart_K331_1st-mov_p01_cep_features.csv"  # none yet: dexter's own place
    (root / "cep_features" / "Mozart_K331_1st-mov_p01.csv").write_text("frame_start_time\n")
    assert src.cep_csv == root / "cep_features" / "Mozart_K331_1st-mov_p01.csv"


def test_cep_features_are_read_when_the_csv_exists(shared_datasets, tmp_path):
    piece = shared_datasets / "asap" / BWV848
    root = tmp_path / "atepp" / "Bach" / "bwv_848"
    root.mkdir(parents=True)
    for name in ("xml_score.musicxml", "Lee01M.mid"):
        os.symlink(piece / name, root / name)
    os.symlink(piece / "Lee01M_note_alignments", root / "Lee01M_note_alignments")
    t = np.arange(0, 200, 0.5)
    cols = ["frame_start_time", "melodiousness", "articulation", "rhythm_complexity", "rhythm_stability",
            "dissonance", "tonal_stability", "minorness"]
    rows = [",".join(cols)] + [",".join([f"{x:.2f}"] + [f"{np.sin(x + k):.4f}" for k in range(7)]) for x in t]
    (root / "Lee01M_cep_features.csv").write_text("\n".join(rows) + "\n")
    run = run_codec(tmp_path / "s", CodecOptions(datasets_root=None, roots={"atepp": tmp_path / "atepp"}, max_note_seq=300))
    st = CodecStore(run.store)
    assert all(r["has_cep"] == "1" for r in st.index)
    names = st.meta["c_codec_names"]
    cep = np.asarray(st.c_codec)[..., names.index("cep_melodiousness")][np.asarray(st.mask)]
    assert np.abs(cep).max() > 0.5


def _dexter(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dexter_cli", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_cli_codec_and_pair_end_to_end(shared_datasets, tmp_path):
    out = tmp_path / "store"
    r = _dexter("codec", "--max-note-seq", "300", "--mixup", "--datasets-root", str(shared_datasets),
                "--pieces", f"{BWV848_PIECE},Mozart_K331_1st-mov", "--out", str(out), "--workers", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "asap: " in r.stdout and "vienna422: " in r.stdout and "total" in r.stdout  # the full report
    r = _dexter("pair", "--data", str(out), "--k", "1000", "--seed", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    pairs = np.load(out / "pairs.npy")
    assert 0 < len(pairs) <= 1000
    st = CodecStore(out)
    assert (np.asarray(st.seg_synthetic)[pairs] == 0).all()


def test_cli_bad_arguments_give_one_line_and_nonzero_exit(tmp_path):
    for args, needle in [
        (("codec", "--datasets-root", str(tmp_path / "nope"), "--out", str(tmp_path / "s")), "not a folder"),
        (("codec", "--datasets", "foo", "--out", str(tmp_path / "s")), "unknown dataset"),
        (("codec", "--shard", "3/2", "--out", str(tmp_path / "s")), "--shard"),
        (("pair", "--data", str(tmp_path / "missing")), "no codec store"),
        (("train", "--data", str(tmp_path / "missing")), "no codec store"),
        (("render", str(tmp_path / "missing.musicxml"), "--checkpoint", str(tmp_path)), "no checkpoint"),
        (("evaluate", "--data", str(tmp_path / "missing")), "no codec store"),
        (("test", "--data", str(tmp_path / "missing"), "--checkpoint", str(tmp_path)), "no codec store"),
    ]:
        r = _dexter(*args, cwd=tmp_path)
        assert r.returncode != 0
        assert needle in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_cli_train_on_real_data_end_to_end(shared_datasets, tmp_path):
    store = tmp_path / "store"
    run_codec(store, CodecOptions(datasets_root=shared_datasets, datasets=["vienna422"], pieces=["Mozart_K331_1st-mov"],
              max_note_seq=300, fractions=(1.0, 0.0, 0.0)))
    r = _dexter("train", "-c", str(Path(__file__).parents[1] / "configs" / "train.yaml"), "--data", str(store),
                "--max-steps", "6", "--batch-size", "4", "--run-dir", str(tmp_path / "run"), "eval.every=3",
                "eval.log_every=3", "eval.steps=3", "eval.sample_segments=2", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "done: 6 steps" in r.stderr
    assert (tmp_path / "run" / "checkpoints" / "best" / "model.safetensors").is_file()


def test_fast_note_array_equals_partituras(shared_datasets):
    # scores.note_array evaluates partitura's time maps once per distinct time, not once per note:
    # the array must be partitura's own, field for field (grace notes, unfolded repeats, 6/8)
    import partitura as pt

    from dexter_cli.data.scores import note_array, parse_score

    for path, unfold in [(shared_datasets / "vienna4x22/musicxml/Mozart_K331_1st-mov.musicxml", False),
                         (shared_datasets / "asap" / BWV848 / "xml_score.musicxml", True)]:
        part = parse_score(path)
        if unfold:
            part = pt.score.unfold_part_maximal(part, update_ids=True)
        ref = part.note_array(include_staff=True, include_time_signature=True, include_metrical_position=True,
                              include_grace_notes=True)
        new = note_array(part)
        assert new.dtype == ref.dtype and len(new) == len(ref) > 100
        for field in ref.dtype.names:
            np.testing.assert_array_equal(new[field], ref[field], err_msg=f"{path.name}: {field}")
