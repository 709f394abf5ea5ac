"""Like-for-like ratios to the human-to-human value, with their bootstrap interval over pieces."""

from __future__ import annotations

import numpy as np
import pytest

from dexter_cli.evaluation import ratios_to_human


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
