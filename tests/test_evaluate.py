"""Evaluation metrics, renderers and `dexter test` on the real Vienna 4x22 data."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from dexter_cli.data import CodecStore, pair_store, run_codec
from dexter_cli.evaluate import METRICS, Performance, compare, human_ceiling, score_against_humans
from dexter_cli.evaluation import LinearRenderer, evaluate_store, store_pieces, write_report

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vienna(shared_datasets, tmp_path_factory) -> Path:
    # Chopin op. 38 in train, Mozart K331 in test (the split is a hash of the piece key)
    out = tmp_path_factory.mktemp("vienna") / "store"
    run_codec(out, datasets_root=shared_datasets, datasets=["vienna422"], max_note_seq=300, mixup=True,
              fractions=(0.3, 0.0, 0.7))
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
    for k in ("tempo_kl", "velocity_kl", "timing_kl", "articulation_kl", "pedal_kl"):
        assert m[k] == pytest.approx(0.0, abs=1e-12)


def test_human_references_are_leave_one_out(mozart):
    a, b = mozart.humans[:2]
    ceiling = human_ceiling(mozart.onset_beat, [a, b])
    # with two humans each is scored against the other only (never against itself)
    assert ceiling["velocity_r"] == pytest.approx(compare(mozart.onset_beat, a, b)["velocity_r"])
    assert human_ceiling(mozart.onset_beat, [a]) is None


def test_deadpan_is_the_floor_and_linear_is_fitted_on_train_only(vienna, mozart, tmp_path):
    st = CodecStore(vienna)
    lin = LinearRenderer(st)
    assert (np.asarray(st.seg_split)[lin.fitted_on] == 0).all()
    assert (np.asarray(st.seg_synthetic)[lin.fitted_on] == 0).all()
    report = evaluate_store(vienna, ["deadpan", "linear"], split="test")
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


def test_external_renderer_is_aligned_and_scored(vienna, shared_datasets, tmp_path):
    import partitura as pt

    ext = tmp_path / "ext"
    ext.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        perf, _ = pt.load_match(str(shared_datasets / "vienna4x22/match/Mozart_K331_1st-mov_p05.match"))
        pt.save_performance_midi(perf, str(ext / "Mozart_K331_1st-mov.mid"))
    report = evaluate_store(vienna, [f"external:{ext}"], split="test")
    row = report.summary[f"external:{ext}"]
    assert row["pieces"] == 1 and row["velocity_r"] > 0.5 and row["tempo_r"] > 0.3
    # a MIDI of another piece under the right name: reported for that piece, not a crash
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other, _ = pt.load_match(str(shared_datasets / "vienna4x22/match/Chopin_op38_p01.match"))
        pt.save_performance_midi(other, str(ext / "Mozart_K331_1st-mov.mid"))
    report = evaluate_store(vienna, [f"external:{ext}"], split="test")
    assert any("is it a performance of this piece" in p for p in report.problems)
    assert not np.isfinite(report.summary[f"external:{ext}"]["velocity_r"])


def test_dexter_test_and_transfer_movement(vienna, tmp_path):
    from dexter_cli.config import load_config
    from dexter_cli.testing import run_test
    from dexter_cli.train import train

    tiny = ["model.residual_channels=16", "model.residual_layers=3", "model.dilation_cycle=3",
            "model.attention_every=0", "model.step_embed_dim=16", f"data.path={vienna}", "optim.batch_size=4",
            "optim.max_steps=10", "eval.every=100", "eval.log_every=5"]
    train(load_config(None, tiny + [f"run_dir={tmp_path / 'g'}"]))
    rep = run_test(vienna, tmp_path / "s", checkpoint=tmp_path / "g/checkpoints/last", limit=3, steps=3)
    assert rep.segments == 3 and {"tempo_r", "velocity_r", "mse_norm_velocity"} <= set(rep.metrics)
    assert len(list((tmp_path / "s").glob("*_pred.mid"))) == 3 and len(list((tmp_path / "s").glob("*_label.mid"))) == 3
    train(load_config(None, tiny + [f"run_dir={tmp_path / 't'}", "task.target=transfer"]))
    rep = run_test(vienna, tmp_path / "x", checkpoint=tmp_path / "t/checkpoints/last", limit=2, steps=3,
                   transfer=True, sample_steps_frac=0.75)
    assert np.isfinite(rep.metrics["transfer_movement"])
    assert len(list((tmp_path / "x").glob("*_source.mid"))) == 2
