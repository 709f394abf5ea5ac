"""The training loop's pure functions of the step: learning rate, EMA decay, batch and RNG.

Every random draw derives from (seed, step, rank) and the data order from (seed, epoch), so a
resumed run continues exactly as if it had not stopped.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def ema_decay_at(step: int, decay: float, warmup: bool) -> float:
    """The EMA decay for update ``step`` (0-based): ``decay``, or with warmup
    ``min(decay, (1 + step) / (10 + step))``, so that short runs do not keep the initial weights."""
    return min(decay, (1 + step) / (10 + step)) if warmup else decay


def get_lr(step: int, lr: float, warmup: int, max_steps: int, min_frac: float) -> float:
    """Linear warmup, then cosine decay to ``min_frac * lr``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, max_steps - warmup)
    return lr * (min_frac + (1 - min_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def batch_indices(step: int, n: int, batch_size: int, seed: int) -> np.ndarray:
    """Global batch of item positions for ``step``: epochs of a seeded permutation."""
    if n >= batch_size:
        per_epoch = n // batch_size
        epoch, pos = divmod(step, per_epoch)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        return perm[pos * batch_size:(pos + 1) * batch_size]
    return np.random.default_rng([seed, step]).integers(0, n, size=batch_size)


def example_generators(seed: int, step: int, start: int, n: int) -> list[torch.Generator]:
    """The RNGs of the examples at positions ``start .. start + n - 1`` of ``step``'s global batch
    (noise, t, condition dropout): an example draws the same whichever process or micro-batch has it.

    Parameters
    ----------
    seed, step : int
        The run's seed and the optimiser step.
    start, n : int
        The first example's position in the step's global batch, and how many.

    Returns
    -------
    list of torch.Generator
    """
    return [torch.Generator().manual_seed(int(np.random.SeedSequence([seed, step, start + i, 3]).generate_state(1)[0]))
            for i in range(n)]


def step_generator(seed: int, step: int, rank: int, offset: int = 0) -> torch.Generator:
    """The RNG of one step on one process (noise, t, condition dropout)."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, step, rank, offset]).generate_state(1)[0]))
