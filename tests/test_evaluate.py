"""Evaluation metrics, renderers and `dexter test` on the real Vienna 4x22 data."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from dexter_cli.data import CodecStore, pair_store, CodecOptions, run_codec
from dexter_cli.errors import DexterError
from dexter_cli.data.perf_features import performance_features
from dexter_cli.data.vocab import S_CODEC_NAMES
from dexter_cli.evaluation.metrics import Performance, compare, dynamics_levels, human_ceiling
from dexter_cli.evaluation.runner import evaluate_store
from dexter_cli.evaluation.report import write_report
from dexter_cli.evaluation.pieces import Selection, store_pieces
from dexter_cli.evaluation.baselines import LinearRenderer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vienna(shared_datasets, tmp_path_factory) -> Path:
    # Chopin op. 38 in train, Mozart K331 in test (the split is a hash of the piece key)
    out = tmp_path_factory.mktemp("vienna") / "store"
    run_codec(out, CodecOptions(datasets_root=shared_datasets, datasets=["vienna422"], max_note_seq=300, mixup=True,
              fractions=(0.3, 0.0, 0.7)))
    st = CodecStore(out)
    assert st.meta["pieces"]["test"] == ["Mozart_K331_1st-mov"] and st.meta["pieces"]["train"] == ["Chopin_op38"]
    pair_store(out, k=None, seed=0)
    return out


@pytest.fixture(scope="module")
def mozart(vienna):
    pieces = store_pieces(CodecStore(vienna), "test")
    assert len(pieces) == 1 and len(pieces[0].humans) == 22
    return pieces[0]


def test_a_human_against_itself_is_perfect(mozart):
    h = mozart.humans[0]
    m = compare(mozart.onset_beat, h, h)
    assert m["tempo_r"] == pytest.approx(1.0) and m["velocity_r"] == pytest.approx(1.0)
    assert m["tempo_dev"] == 0 and m["velocity_dev"] == 0
    for k in ("tempo_kl", "velocity_kl", "timing_kl", "articulation_kl", "pedal_kl", "voicing_kl"):
        assert m[k] == pytest.approx(0.0, abs=1e-12)
    assert m["voicing_r"] == pytest.approx(1.0) and m["voicing_dev"] == 0




def test_performance_features_of_a_human_against_itself_are_perfect(mozart):
    h = mozart.humans[0]
    h = Performance(h.p_codec, h.mask, performance_features(mozart.score, h.p_codec, h.mask))
    played = h.mask.astype(bool)
    for name in ("async_delta", "async_pitch_cor", "kor", "pedal_onset"):
        assert np.isfinite(h.features[name][played]).mean() > (0.5 if name == "kor" else 0.95), name
        assert not np.isfinite(h.features[name][~played]).any()
    assert h.features["async_delta"][played].max() > 0.0  # a pianist's chords are not perfectly together
    level = dynamics_levels(mozart.onset_beat, mozart.s_codec, S_CODEC_NAMES)
    assert set(np.unique(level[np.isfinite(level)])) == {2.0}  # this excerpt is marked p throughout
    m = compare(mozart.onset_beat, h, h, level)
    for name in ("async_delta", "kor", "pedal_onset"):
        assert m[f"{name}_r"] == pytest.approx(1.0), name
    for k in ("async_delta_dev", "async_pitch_cor_dev", "kor_dev", "pedal_onset_dev", "tempo_vel_dev",
              "async_delta_kl", "kor_kl", "pedal_onset_kl"):
        assert m[k] == pytest.approx(0.0, abs=1e-12), k
    assert np.isnan(m["dyn_agreement"])  # one marked level: agreement is undefined, not 0 and not a crash
    other = mozart.humans[1]
    other = Performance(other.p_codec, other.mask, performance_features(mozart.score, other.p_codec, other.mask))
    m2 = compare(mozart.onset_beat, h, other, level)
    assert m2["async_delta_dev"] > 0 and m2["kor_r"] < 1.0




def test_human_references_are_leave_one_out(mozart):
    a, b = mozart.humans[:2]
    ceiling = human_ceiling(mozart.onset_beat, [a, b])
    # with two humans each is scored against the other only (never against itself)
    assert ceiling["velocity_r"] == pytest.approx(compare(mozart.onset_beat, a, b)["velocity_r"])
    assert human_ceiling(mozart.onset_beat, [a]) is None


def test_deadpan_is_the_floor_and_linear_is_fitted_on_train_only(vienna, mozart, tmp_path):
    st = CodecStore(vienna)
    lin = LinearRenderer(st)
    from dexter_cli.config import TaskConfig
    from dexter_cli.prior import CONTEXT_WIDTHS, fit_within

    # the prior alone, fitted on the real train segments: not on the test split, not on mixup
    alpha = TaskConfig().prior_alpha
    train_real = np.flatnonzero((np.asarray(st.seg_split) == 0) & (np.asarray(st.seg_synthetic) == 0))
    assert np.allclose(lin.prior.weights.numpy(), fit_within(st, alpha, CONTEXT_WIDTHS, segments=train_real), atol=1e-6)
    everything = np.arange(len(st.seg_split))
    assert not np.allclose(lin.prior.weights.numpy(), fit_within(st, alpha, CONTEXT_WIDTHS, segments=everything),
                           atol=1e-4)
    report = evaluate_store(vienna, ["deadpan", "linear"])
    s = report.summary
    assert s["deadpan"]["tempo_r"] == 0.0 and s["deadpan"]["velocity_r"] == 0.0
    assert s["human"]["velocity_r"] > 0.3 and s["human"]["tempo_r"] > 0.3
    for k in ("tempo_kl", "velocity_kl", "timing_kl"):
        assert s["deadpan"][k] > s["human"][k]
    assert s["linear"]["velocity_r"] > s["deadpan"]["velocity_r"]
    files = write_report(report, tmp_path / "ev")
    assert {f.name for f in files} >= {"results.json", "results.csv", "summary.png"}
    assert all(f.read_bytes()[:4] == b"\x89PNG" for f in files if f.suffix == ".png")
    data = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert set(data["summary"]) == {"human", "deadpan", "linear"}
    assert set(data["ratios"]) == {"deadpan", "linear"}  # like-for-like ratios (empty with under two pieces)
    assert data["settings"] == {"split": "test", "pieces": report.settings["pieces"]}  # no model renderer
    # the quality bar piece by piece: linear against deadpan (deadpan against nothing, nothing against itself)
    assert set(data["paired"]) == {"linear"} and set(data["paired"]["linear"]) == {"deadpan"}
    lin_v = {r["piece"]: r["velocity_r"] for r in report.per_piece if r["renderer"] == "linear"}
    dead_v = {r["piece"]: r["velocity_r"] for r in report.per_piece if r["renderer"] == "deadpan"}
    diffs = [lin_v[k] - dead_v[k] for k in lin_v if np.isfinite(lin_v[k]) and np.isfinite(dead_v[k])]
    got = data["paired"]["linear"]["deadpan"]["velocity_r"]
    assert got["pieces"] == len(diffs) and got["better"] == sum(d > 0 for d in diffs)
    assert got["median"] == pytest.approx(float(np.median(diffs)))
    # partitura's performance features: deadpan plays every chord together and never pedals
    assert s["deadpan"]["async_delta_dev"] > s["human"]["async_delta_dev"]
    assert s["deadpan"]["pedal_onset_r"] == 0.0 and s["human"]["pedal_onset_r"] > 0.0
    assert s["deadpan"]["tempo_vel_r"] == 0.0 and np.isfinite(s["human"]["tempo_vel_r"])
    assert s["deadpan"]["voicing_r"] == 0.0 and s["human"]["voicing_r"] > 0.0  # every chord even: no voicing
    # two processes give the same numbers as one
    again = evaluate_store(vienna, ["deadpan", "linear"], workers=2)
    for r in ("human", "deadpan", "linear"):
        for k, v in s[r].items():
            assert again.summary[r][k] == pytest.approx(v, nan_ok=True), (r, k)


def test_pieces_list_with_a_bad_row_and_a_lone_performance(vienna, shared_datasets, tmp_path):
    v = shared_datasets / "vienna4x22"
    rows = [f"{v}/musicxml/Mozart_K331_1st-mov.musicxml,{v}/match/Mozart_K331_1st-mov_p0{i}.match" for i in (1, 2, 3)]
    rows.append(f"{v}/musicxml/Mozart_K331_1st-mov.musicxml,{tmp_path}/missing.match")
    rows.append(f"{v}/musicxml/Chopin_op38.musicxml,{v}/match/Chopin_op38_p01.match")
    (tmp_path / "pieces.csv").write_text("score,performance\n" + "\n".join(rows) + "\n")
    report = evaluate_store(vienna, ["deadpan"], selection=Selection(pieces_list=tmp_path / "pieces.csv"))
    mozart = [r for r in report.per_piece if r["piece"].startswith("Mozart") and r["renderer"] == "human"]
    assert mozart[0]["n_humans"] == 3 and mozart[0]["velocity_r"] > 0.3
    assert any("missing.match" in p and "not found" in p for p in report.problems)
    assert any("Chopin_op38" in p and "one human performance only" in p for p in report.problems)
    assert report.summary["deadpan"]["pieces"] == 2  # the lone performance is still a reference


def test_external_renderer_is_aligned_and_scored(vienna, shared_datasets, tmp_path):
    import partitura as pt

    ext = tmp_path / "ext"
    ext.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        perf, _ = pt.load_match(str(shared_datasets / "vienna4x22/match/Mozart_K331_1st-mov_p05.match"))
        pt.save_performance_midi(perf, str(ext / "Mozart_K331_1st-mov.mid"))
    report = evaluate_store(vienna, [f"external:{ext}"])
    row = report.summary[f"external:{ext}"]
    assert row["pieces"] == 1 and row["velocity_r"] > 0.5 and row["tempo_r"] > 0.3
    # a MIDI of another piece under the right name: reported for that piece, not a crash
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other, _ = pt.load_match(str(shared_datasets / "vienna4x22/match/Chopin_op38_p01.match"))
        pt.save_performance_midi(other, str(ext / "Mozart_K331_1st-mov.mid"))
    with pytest.raises(DexterError, match="could not be scored on any of the 1 pieces.*is it a performance of this piece"):
        evaluate_store(vienna, [f"external:{ext}"])


def test_dexter_test_and_transfer_movement(vienna, tmp_path):
    from dexter_cli.config import load_config
    from dexter_cli.evaluation.segments import TestPlan, run_test
    from dexter_cli.train import train

    tiny = ["model.residual_channels=16", "model.residual_layers=3", "model.dilation_cycle=3",
            "model.attention_every=0", "model.step_embed_dim=16", f"data.path={vienna}", "optim.batch_size=4",
            "optim.max_steps=10", "eval.every=100", "eval.log_every=5"]
    train(load_config(None, tiny + [f"run_dir={tmp_path / 'g'}"]))
    rep = run_test(vienna, tmp_path / "s", {"steps": 3}, checkpoint=tmp_path / "g/checkpoints/last",
                   plan=TestPlan(limit=3))
    assert rep.segments == 3 and {"tempo_r", "velocity_r", "mse_norm_velocity"} <= set(rep.metrics)
    assert len(list((tmp_path / "s").glob("*_pred.mid"))) == 3 and len(list((tmp_path / "s").glob("*_label.mid"))) == 3
    written = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert written["steps"] == 3 and written["sampler"] == "dpm++" and written["seed"] == 0  # what was sampled
    train(load_config(None, tiny + [f"run_dir={tmp_path / 't'}", "task.target=transfer"]))
    rep = run_test(vienna, tmp_path / "x", {"steps": 3, "strength": 0.75}, checkpoint=tmp_path / "t/checkpoints/last",
                   plan=TestPlan(limit=2, transfer=True))
    assert np.isfinite(rep.metrics["transfer_movement"])
    assert len(list((tmp_path / "x").glob("*_source.mid"))) == 2




