"""``dexter test`` (dexter_cli/evaluation/segments.py): the transfer test on pairs with either kind of model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dexter_cli.data import CodecOptions, pair_store, run_codec
from dexter_cli.evaluation.segments import TestPlan, run_test
from dexter_cli.train import train

from .conftest import cfg_for
from .synth import make_asap_tree


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    base = tmp_path_factory.mktemp("paired")
    root = make_asap_tree(base / "asap", {"A/B/1": 3, "A/B/2": 3, "C/D/1": 3}, n_notes=40)
    run_codec(base / "store", CodecOptions(roots={"asap": root}, max_note_seq=16, fractions=(0.34, 0.33, 0.33)))
    pair_store(base / "store", k=None, seed=0)
    return base


@pytest.mark.parametrize("target, ran", [("gen_noise", "dpm++"), ("transfer", "ddim")])
def test_the_transfer_test_runs_with_either_model_and_records_its_sampler(paired, target, ran):
    run = paired / target
    train(cfg_for(paired / "store", run, f"task.target={target}", "optim.max_steps=3"))
    out = run / "test"
    rep = run_test(paired / "store", out, {"steps": 3, "strength": 0.75}, checkpoint=run / "checkpoints" / "last",
                   plan=TestPlan(limit=2, transfer=True))
    written = json.loads((out / "metrics.json").read_text())
    assert written["sampler"] == ran and written["sample_steps_frac"] == 0.75
    assert np.isfinite(rep.metrics["transfer_movement"]) and len(list(out.glob("*_source.mid"))) == 2
