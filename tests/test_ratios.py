"""Like-for-like ratios to the human-to-human value, with their bootstrap interval over pieces."""

from __future__ import annotations

import numpy as np
import pytest

from dexter_cli.evaluation.statistics import ratios_to_human


def _rows(human: list, model: list) -> list[dict]:
    rows = []
    for k, (h, m) in enumerate(zip(human, model)):
        if h is not None:
            rows.append({"piece": f"p{k}", "renderer": "human", "tempo_r": h, "velocity_r": h})
        rows.append({"piece": f"p{k}", "renderer": "dexter", "tempo_r": m, "velocity_r": m})
    return rows


def test_only_pieces_with_a_human_value_count_for_both_medians():
    # p3 has no human-to-human value: its model value (high) must not enter the model's median
    rows = _rows([0.5, 0.6, 0.4, None], [0.25, 0.3, 0.2, 0.9])
    r = ratios_to_human(rows, "dexter")["velocity_r"]
    assert r["pieces"] == 3
    assert r["model"] == pytest.approx(0.25) and r["human"] == pytest.approx(0.5)
    assert r["ratio"] == pytest.approx(0.5)
    # the model is exactly half of the human on every piece: every resample gives 0.5
    assert r["low"] == pytest.approx(0.5) and r["high"] == pytest.approx(0.5)


def test_interval_covers_the_ratio_and_narrows_with_more_pieces():
    rng = np.random.default_rng(1)
    widths = []
    for n in (8, 200):
        human = rng.uniform(0.3, 0.7, n)
        model = human * 0.7 + rng.normal(0, 0.1, n)
        r = ratios_to_human(_rows(list(human), list(model)), "dexter", seed=3)["tempo_r"]
        assert r["low"] <= r["ratio"] <= r["high"]
        widths.append(r["high"] - r["low"])
    assert widths[1] < widths[0] / 2
    # the interval is reproducible with the seed
    again = ratios_to_human(_rows(list(human), list(model)), "dexter", seed=3)["tempo_r"]
    assert again == r


def test_missing_values_and_too_few_pieces():
    rows = _rows([0.5, float("nan"), None], [0.2, 0.3, 0.4])
    assert ratios_to_human(rows, "dexter") == {}  # one usable piece: no ratio
    rows = _rows([0.5, 0.5], [0.2, None])  # JSON null read back from results.json
    assert ratios_to_human(rows, "dexter") == {}


def test_paired_comparison_sign_test_and_interval():
    from dexter_cli.evaluation.statistics import paired_comparison

    b = [{"piece": f"p{k}", "velocity_r": 0.3} for k in range(10)]
    a = [{"piece": f"p{k}", "velocity_r": 0.3 + (0.1 if k < 8 else -0.05)} for k in range(10)]
    c = paired_comparison(a, b, "velocity_r")
    assert c["pieces"] == 10 and c["better"] == 8
    assert c["p_sign"] == pytest.approx((45 + 10 + 1) / 1024)  # P(X >= 8), X ~ Bin(10, 1/2)
    assert c["median"] == pytest.approx(0.1) and c["low"] <= c["median"] <= c["high"]
    assert c["mean"] == pytest.approx((8 * 0.1 - 2 * 0.05) / 10)
    # swapped, the same differences with the sign flipped: A higher on 2, p near 1
    d = paired_comparison(b, a, "velocity_r")
    assert d["better"] == 2 and d["median"] == pytest.approx(-0.1) and d["p_sign"] > 0.98
    # pieces missing on one side or NaN do not count; nothing in common gives NaN, not an error
    a.append({"piece": "extra", "velocity_r": 1.0})
    a[0]["velocity_r"] = float("nan")
    assert paired_comparison(a, b, "velocity_r")["pieces"] == 9
    assert np.isnan(paired_comparison(a, [{"piece": "zz", "velocity_r": 0.1}], "velocity_r")["median"])


def test_every_renderer_is_compared_with_the_references_evaluated_with_it():
    from dexter_cli.evaluation.statistics import against_references

    rows = [{"piece": f"p{k}", "renderer": name, "tempo_r": t, "velocity_r": v}
            for k in range(6) for name, t, v in (("deadpan", 0.0, 0.0), ("linear", 0.1, 0.3 + 0.01 * k),
                                                  ("dexter", 0.2, 0.35 if k < 4 else 0.2))]
    out = against_references(rows, ["dexter", "deadpan", "linear"])
    assert set(out) == {"dexter", "linear"} and set(out["dexter"]) == {"deadpan", "linear"}
    assert set(out["linear"]) == {"deadpan"}  # a reference against the ones before it, never itself
    v = out["dexter"]["linear"]["velocity_r"]
    assert v["pieces"] == 6 and v["better"] == 4 and out["dexter"]["linear"]["tempo_r"]["better"] == 6
    assert against_references(rows, ["dexter"]) == {}  # no reference evaluated: nothing to compare with
