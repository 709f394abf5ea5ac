"""dexter evaluate's runner (dexter_cli/evaluation/runner.py) on a tiny model trained in the test."""

from __future__ import annotations


import numpy as np
import pytest

from dexter_cli.data import CodecStore
from dexter_cli.errors import DexterError
from dexter_cli.data.perf_features import performance_features
from dexter_cli.data.vocab import S_CODEC_NAMES
from dexter_cli.evaluation.metrics import Performance, dynamics_levels
from dexter_cli.evaluation.runner import delivered, evaluate_store
from dexter_cli.evaluation.pieces import Selection, store_pieces


def test_several_samples_per_piece_are_scored_and_averaged(checkpoint):
    from dexter_cli.evaluation.levels import level_metrics
    from dexter_cli.evaluation.metrics import METRICS, score_against_humans
    from dexter_cli.evaluation.paper import paper_metrics
    from dexter_cli.render import sample_score

    store = checkpoint.parents[2] / "store"  # the tiny checkpoint's own store: every piece in train
    report = evaluate_store(store, ["dexter"], {"steps": 2, "num_samples": 3}, checkpoint=checkpoint,
                            selection=Selection("train", limit=1))
    row = next(r for r in report.per_piece if r["renderer"] == "dexter")
    # the same three interpretations, scored one by one here
    piece = store_pieces(CodecStore(store), "train", limit=1)[0]
    p = sample_score(piece.path, {"steps": 2, "num_samples": 3}, checkpoint=checkpoint,
                     unfold=piece.entry["unfolded"]).p_codec
    level = dynamics_levels(piece.onset_beat, piece.s_codec, S_CODEC_NAMES)
    for h in piece.humans:
        h.features = performance_features(piece.score, h.p_codec, h.mask)
    rows = []
    for pk in p:  # each scored from the MIDI file it makes, as the evaluation does
        perf = delivered(piece, Performance(pk, np.ones(len(pk), dtype=bool)))
        perf.features = performance_features(piece.score, perf.p_codec, perf.mask)
        rows.append({**score_against_humans(piece.onset_beat, perf, piece.humans, level),
                     **level_metrics(piece.onset_beat, perf, piece.humans),
                     **paper_metrics(piece.onset_beat, perf, piece.humans, piece.s_codec, S_CODEC_NAMES)})
    assert rows[0]["velocity_r"] != pytest.approx(rows[1]["velocity_r"])  # the samples differ
    # the report records what was sampled, the model's defaults resolved
    from dexter_cli.engine import load_expression
    from dexter_cli.sampling import SamplingOptions

    config = load_expression(checkpoint)[1]
    opts = SamplingOptions.for_model(config)
    assert report.settings["dexter"] == {"model": config["training"].get("name"), "sampler": "dpm++", "steps": 2,
                                         "guidance": opts.guidance, "temperature": opts.temperature,
                                         "spread": [1.0, 1.0, 1.0], "curves": "sample", "seed": 0, "overlap": 0.5,
                                         "strength": 0.5, "controls": {}, "num_samples": 3}  # no spread, no curve mode
    assert report.settings["split"] == "train" and report.settings["pieces"] == 1
    for k in METRICS:
        vals = [r[k] for r in rows if np.isfinite(r[k])]
        assert row[k] == pytest.approx(np.mean(vals) if vals else np.nan, nan_ok=True), k
    with pytest.raises(DexterError, match="num-samples"):
        evaluate_store(store, ["dexter"], {"num_samples": 0}, checkpoint=checkpoint, selection=Selection("train"))
