"""Checks of user-given settings, shared by the commands: each fails with one line naming the setting."""

from __future__ import annotations

import math

from .errors import DexterError

SEED_MAX = 2 ** 63 - 1  # torch generators take a 64-bit seed


def check_seed(seed: int, name: str = "--seed") -> int:
    """``seed`` when it is an integer in [0, 2**63 - 1]."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise DexterError(f"{name} must be an integer from 0 to 2**63 - 1, got {seed}")
    return seed


def check_range(value: float, name: str, low: float, high: float, *, low_open: bool = False) -> float:
    """``value`` when it is a finite number within [low, high] (``(low, high]`` with ``low_open``)."""
    ok = isinstance(value, (int, float)) and math.isfinite(value) and value <= high and (
        value > low if low_open else value >= low)
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise DexterError(f"{name} must be a finite number in {interval}, got {value}")
    return float(value)
