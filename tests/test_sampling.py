"""SamplingOptions: one place that resolves how a model is sampled."""

from __future__ import annotations

import dataclasses

import pytest

from dexter_cli.errors import DexterError
from dexter_cli.sampling import DEFAULT_GUIDANCE, DEFAULT_STEPS, NO_SPREAD, SamplingOptions, resolve

RECORDED = {"sampling": {"guidance": 1.0, "temperature": 0.1, "steps": 10, "curves": "mean",
                         "spread": {"tempo": 1.0, "velocity": 2.2, "voicing": 1.7}}}


def test_precedence_is_package_then_model_then_caller():
    plain = SamplingOptions.for_model({})
    assert (plain.guidance, plain.steps, plain.temperature, plain.curves, plain.spread) == (
        DEFAULT_GUIDANCE, DEFAULT_STEPS, 1.0, "sample", NO_SPREAD)
    model = SamplingOptions.for_model(RECORDED)
    assert (model.guidance, model.steps, model.temperature, model.curves, model.spread) == (
        1.0, 10, 0.1, "mean", (1.0, 2.2, 1.7))
    mine = SamplingOptions.for_model(RECORDED, guidance=3.0, steps=None, seed=5)  # None: not chosen
    assert (mine.guidance, mine.steps, mine.seed, mine.curves) == (3.0, 10, 5, "mean")


def test_a_recorded_step_count_belongs_to_dpm_solver():
    assert SamplingOptions.for_model(RECORDED, sampler="ddim").steps == DEFAULT_STEPS
    assert SamplingOptions.for_model(RECORDED, sampler="ddim", steps=7).steps == 7
    assert SamplingOptions.for_model(RECORDED, sampler="dpm++").steps == 10


def test_a_spread_recorded_before_the_voicing_gain_keeps_voicing_1():
    old = {"sampling": {"spread": {"tempo": 1.0, "velocity": 2.1}}}
    assert SamplingOptions.for_model(old).spread == (1.0, 2.1, 1.0)


def test_a_source_keeps_its_own_curves():
    opts = SamplingOptions.for_model(RECORDED).from_source()
    assert opts.curves == "sample" and opts.spread == NO_SPREAD and opts.steps == 10


def test_resolve_takes_options_as_they_are_and_choices_over_the_model():
    given = SamplingOptions(steps=3)
    assert resolve(RECORDED, given) is given
    assert resolve(RECORDED, {"steps": 3}).temperature == 0.1
    assert resolve(RECORDED, None) == SamplingOptions.for_model(RECORDED)


def test_controls_are_parsed_and_checked():
    opts = SamplingOptions.for_model({}, controls=["loudness=+1", "rubato=-0.5"])
    assert opts.control_values() == {"loudness": 1.0, "rubato": -0.5}
    for bad, why in (("loudness", "NAME=VALUE"), ("volume=1", "unknown control"), ("loudness=x", "not a number"),
                     ("loudness=9", "within")):
        with pytest.raises(DexterError, match=why):
            SamplingOptions.for_model({}, controls=[bad])


@pytest.mark.parametrize("field, value, message", [
    ("sampler", "euler", "unknown sampler"), ("steps", 0, "--steps must be at least 1"),
    ("guidance", -1.0, "--guidance"), ("guidance", float("nan"), "--guidance"), ("seed", -1, "seed"),
    ("num_samples", 0, "--num-samples"), ("overlap", 1.0, "--overlap"), ("strength", 0.0, "--strength"),
    ("temperature", 2.5, "temperature"), ("curves", "average", "curves"), ("spread", (1.0, 9.0, 1.0), "spread"),
])
def test_every_option_is_checked_when_built(field, value, message):
    with pytest.raises(DexterError, match=message):
        SamplingOptions(**{field: value})
    with pytest.raises(DexterError, match=message):  # a bad recorded or chosen value alike
        SamplingOptions.for_model({}, **{field: value})


def test_options_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SamplingOptions().steps = 3  # type: ignore[misc]


STATS = {"c_mean": [150.0, 0.2, 63.0] + [0.0] * 11, "c_std": [100.0, 0.2, 12.0] + [1.0] * 11,
         "c_min": [7.0, 0.0, 18.0] + [0.0] * 11, "c_max": [6000.0, 4.0, 115.0] + [1.0] * 4 + [0.0] * 7}


def test_controls_in_plain_units_become_standard_deviations():
    got = SamplingOptions.for_model({"codec": {"stats": STATS}},
                                    controls=["tempo_level=90bpm", "loudness=mf", "rubato=+1"]).control_values()
    assert got == pytest.approx({"tempo_level": (90 - 150) / 100, "loudness": (80 - 63) / 12, "rubato": 1.0})
    assert SamplingOptions.for_model({"codec": {"stats": STATS}}, controls=["loudness=75vel"]).control_values() == \
        pytest.approx({"loudness": 1.0})
    for bad, why in (("loudness=+1mf", "dynamic marking alone"), ("tempo_level=fastbpm", "not a number of bpm"),
                     ("loudness=9000vel", "within"), ("rubato=1bpm", "not a number of standard deviations")):
        with pytest.raises(DexterError, match=why):
            SamplingOptions.for_model({"codec": {"stats": STATS}}, controls=[bad])


def test_a_control_the_training_data_never_varied_is_refused():
    with pytest.raises(DexterError, match="never varied it"):
        SamplingOptions.for_model({"codec": {"stats": STATS}}, controls=["cep_minorness=+3"])
