"""The piece split and the pairing arithmetic."""

import numpy as np
import pytest

from dexter_cli.data.pairs import make_pairs
from dexter_cli.data.split import assign_split, parse_fractions
from dexter_cli.errors import DexterError


def test_split_is_deterministic_and_stable_under_added_pieces():
    pieces = [f"Composer{i % 7}/Piece_{i}" for i in range(500)]
    first = {p: assign_split(p) for p in pieces}
    more = pieces + [f"New/Piece_{i}" for i in range(300)]
    second = {p: assign_split(p) for p in reversed(more)}
    assert all(first[p] == second[p] for p in pieces)


def test_split_fractions_are_respected():
    pieces = [f"C/P{i}" for i in range(4000)]
    splits = [assign_split(p, (0.85, 0.05, 0.10)) for p in pieces]
    frac = {s: splits.count(s) / len(splits) for s in ("train", "valid", "test")}
    assert abs(frac["train"] - 0.85) < 0.03 and abs(frac["valid"] - 0.05) < 0.02 and abs(frac["test"] - 0.10) < 0.02


def test_parse_fractions():
    assert parse_fractions("85/5/10") == pytest.approx((0.85, 0.05, 0.10))
    with pytest.raises(DexterError):
        parse_fractions("85/15")
    with pytest.raises(DexterError):
        parse_fractions("a/b/c")


def _groups():
    # groups of sizes 3, 1, 4, 2; segment 9 is synthetic (not eligible)
    group = np.array([0, 0, 0, 1, 2, 2, 2, 2, 3, 3, 3])
    eligible = np.ones(len(group), bool)
    eligible[10] = False
    return group, eligible


def test_make_pairs_all_pairs():
    group, eligible = _groups()
    pairs, unpaired = make_pairs(group, eligible, None, seed=0)
    expected = {(a, b) for a in range(11) for b in range(11)
                if a != b and eligible[a] and eligible[b] and group[a] == group[b]}
    assert {tuple(p) for p in pairs.tolist()} == expected
    assert len(pairs) == 3 * 2 + 4 * 3 + 2 * 1
    assert unpaired.tolist() == [3]


def test_make_pairs_k_subset_is_distinct_and_valid():
    rng = np.random.default_rng(1)
    group = rng.integers(0, 500, size=20000)
    eligible = rng.random(20000) > 0.1
    pairs, _ = make_pairs(group, eligible, 100000, seed=3)
    assert len(pairs) == 100000
    assert len({tuple(p) for p in pairs.tolist()}) == 100000
    assert (pairs[:, 0] != pairs[:, 1]).all()
    assert (group[pairs[:, 0]] == group[pairs[:, 1]]).all()
    assert eligible[pairs].all()
    again, _ = make_pairs(group, eligible, 100000, seed=3)
    np.testing.assert_array_equal(pairs, again)


def test_make_pairs_empty():
    pairs, unpaired = make_pairs(np.array([0, 1]), np.array([True, True]), None, 0)
    assert pairs.shape == (0, 2) and unpaired.tolist() == [0, 1]


def test_a_few_pieces_are_dealt_into_every_wanted_split():
    from dexter_cli.data.split import assign_splits, piece_hash

    four = ["Mozart_K331_1st-mov", "Chopin_op10_no3", "Chopin_op38", "Schubert_D783_no15"]
    hashed = {p: assign_split(p) for p in four}
    split, dealt = assign_splits(four)
    if set(hashed.values()) >= {"train", "valid", "test"}:
        assert not dealt and split == hashed
    else:  # the hash alone leaves a split empty: quota in hash order, one valid and one test piece
        order = sorted(four, key=piece_hash)
        assert dealt and [split[p] for p in order] == ["train", "train", "valid", "test"]
    split, dealt = assign_splits(four, (0.5, 0.0, 0.5))
    assert sorted(split.values()) == ["test", "test", "train", "train"]
    two = ["Mozart_K331_1st-mov", "Chopin_op38"]  # Vienna 4x22: two pieces, one to train and one to test
    assert sorted(assign_splits(two, (0.5, 0.0, 0.5))[0].values()) == ["test", "train"]
    assert sorted(assign_splits(two)[0].values()) == ["test", "train"]  # 85/5/10: valid gives way
    # enough pieces: the hash split as it is, so adding data never moves a piece
    many = [f"composer/piece_{i}" for i in range(300)]
    split, dealt = assign_splits(many)
    assert not dealt and split == {p: assign_split(p) for p in many}


def test_a_dataset_is_named_by_its_folder_too(tmp_path):
    from dexter_cli.data.layouts import resolve_roots

    assert "vienna422" in resolve_roots(tmp_path, ["vienna4x22"], {})
