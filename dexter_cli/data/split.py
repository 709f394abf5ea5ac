"""Deterministic train/valid/test split by piece.

A piece's split depends only on its key (a hash), so adding data never moves
an existing piece, and all performances of a piece share a split.
"""

from __future__ import annotations

import hashlib

SPLITS: tuple[str, ...] = ("train", "valid", "test")


def parse_fractions(text: str) -> tuple[float, float, float]:
    """Parse ``"85/5/10"`` (percentages adding up to 100, or fractions to 1) into fractions summing to 1."""
    from ..errors import DexterError

    try:
        parts = [float(x) for x in text.split("/")]
    except ValueError:
        parts = []
    if len(parts) != 3 or any(not p >= 0 for p in parts) or sum(parts) <= 0:
        raise DexterError(f"--split must look like 85/5/10 (train/valid/test), got {text!r}")
    total = sum(parts)
    if abs(total - 100) > 1e-6 and abs(total - 1) > 1e-9:
        raise DexterError(f"--split percentages must add up to 100 (or fractions to 1), got {text!r} = {total:g}")
    if parts[0] == 0:
        raise DexterError(f"--split {text!r} leaves no piece for training")
    return parts[0] / total, parts[1] / total, parts[2] / total


def piece_hash(piece: str) -> float:
    """Map a piece key to a number in [0, 1), uniformly and stably."""
    digest = hashlib.sha1(piece.strip().lower().encode("utf-8")).hexdigest()
    return int(digest[:13], 16) / float(16 ** 13)


def assign_split(piece: str, fractions: tuple[float, float, float] = (0.85, 0.05, 0.10)) -> str:
    """Split of a piece: ``train``, ``valid`` or ``test``.

    Parameters
    ----------
    piece : str
        Piece key (composer/title).
    fractions : tuple of float
        Train, valid, test fractions (summing to 1).
    """
    h = piece_hash(piece)
    if h < fractions[0]:
        return "train"
    if h < fractions[0] + fractions[1]:
        return "valid"
    return "test"


def assign_splits(pieces: list[str] | set[str], fractions: tuple[float, float, float] = (0.85, 0.05, 0.10)
                  ) -> tuple[dict[str, str], bool]:
    """The split of every piece, and whether the small-data rule gave it.

    Each piece goes where its hash puts it (:func:`assign_split`). On a few pieces that can leave a
    split with a non-zero fraction empty (four pieces, ``85/5/10``: often all four in train). Then,
    and only then, the pieces are dealt out in hash order by quota: ``round(fraction x pieces)``
    each, at least one for every split with a non-zero fraction while there are pieces enough
    (train keeps one; valid gives way before test), the rest in train.
    """
    pieces = sorted(set(pieces))
    by_hash = {p: assign_split(p, fractions) for p in pieces}
    wanted = [i for i, f in enumerate(fractions) if f > 0]
    if len(pieces) < 2 or all(SPLITS[i] in by_hash.values() for i in wanted):
        return by_hash, False
    counts = [max(1, round(f * len(pieces))) if f > 0 else 0 for f in fractions]
    for i in (1, 2):  # too few pieces for all: valid gives way first, then test; train keeps one
        while counts[i] and counts[1] + counts[2] > len(pieces) - 1:
            counts[i] -= 1
    counts[0] = len(pieces) - counts[1] - counts[2]
    order = sorted(pieces, key=piece_hash)
    labels = [SPLITS[i] for i, c in enumerate(counts) for _ in range(c)]
    return dict(zip(order, labels)), True
