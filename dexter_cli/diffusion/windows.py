"""Whole sequences from a fixed-length denoiser: overlapping windows reconciled at every step.

MultiDiffusion (Bar-Tal et al., 2023): the sequence is cut into overlapping
windows, the windows go through the denoiser in batches of bounded size, and the outputs are
averaged where windows overlap (weighted so that each window counts least at
its edges). Wrapped this way, a sequence-level denoiser is an ordinary
denoiser callable, so every sampler runs on whole pieces unchanged.
"""

from __future__ import annotations

from typing import Callable

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor, dict], torch.Tensor]
MAX_WINDOWS_PER_CALL = 32  # windows (x samples) per denoiser call: peak memory independent of the piece's length


def window_starts(n: int, window: int, stride: int, offset: int = 0) -> list[int]:
    """Start positions covering ``n`` items with windows of ``window`` at ``stride``.

    With ``offset`` (0 < offset < window), the first window starts at 0 and the others at
    ``offset + k * stride``: the same cover with its inner edges moved (a paired seam check
    renders a piece with both layouts).
    """
    if n <= window:
        return [0]
    if not 0 <= offset < window:
        raise ValueError(f"window offset must be in [0, {window}), got {offset}")
    starts = sorted({0, *range(offset, n - window + 1, stride)})
    if starts[-1] + window < n:
        starts.append(n - window)
    return starts


def window_edges(n: int, window: int, stride: int, offset: int = 0) -> list[int]:
    """Inner item positions where a window of :func:`window_starts` begins or ends."""
    starts = window_starts(n, window, stride, offset)
    return sorted({e for s in starts for e in (s, min(n, s + window))} - {0, n})


def window_weights(window: int, overlap: int) -> torch.Tensor:
    """Linear ramps over ``overlap`` items at both ends (never 0), flat 1 in the middle."""
    w = torch.ones(window, dtype=torch.float64)
    if overlap > 0:
        ramp = (torch.arange(overlap, dtype=torch.float64) + 1) / (overlap + 1)
        w[:overlap] = ramp
        w[window - overlap:] = torch.minimum(w[window - overlap:], ramp.flip(0))
    return w


class WindowedDenoiser:
    """A denoiser over sequences of any length built from one of fixed ``window`` length.

    Parameters
    ----------
    denoiser : callable
        ``denoiser(x, t, cond)`` over (B, window, D) with per-note cond entries (B, window, ...).
    n : int
        Sequence length.
    window : int
        The denoiser's segment length.
    stride : int
        Distance between window starts (``window // 2``: every item in two windows).
    offset : int, optional
        Where the second window starts when not at ``stride`` (:func:`window_starts`).
    max_batch : int, optional
        At most this many windows go through ``denoiser`` in one call (the windows of a long
        piece stream through it; the result is the same as one call).
    seq_keys : tuple of str
        Entries of ``cond`` that are per item (windowed); the others are per sequence (repeated).
        A ``cond`` dict is cut into windows once and reused while the same dict comes back:
        do not change one in place between calls.
    """

    def __init__(self, denoiser: Denoiser, n: int, window: int, stride: int, seq_keys: tuple[str, ...],
                 offset: int = 0, max_batch: int = MAX_WINDOWS_PER_CALL):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.denoiser, self.n, self.window, self.max_batch = denoiser, n, window, max_batch
        self.seq_keys = seq_keys
        self.starts = window_starts(n, window, stride, offset)
        self.width = min(window, n)
        w = window_weights(self.width, max(0, self.width - stride) if len(self.starts) > 1 else 0)
        total = torch.zeros(n, dtype=torch.float64)
        for s in self.starts:
            total[s:s + self.width] += w
        self.weights = w
        self.norm = total
        self._cond: dict | None = None  # the last cond dict seen, and its windows' batches
        self._batches: list[dict] = []

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n, ...) -> (B * W, width, ...), windows of each sequence consecutive."""
        return torch.stack([x[:, s:s + self.width] for s in self.starts], dim=1).flatten(0, 1)

    def merge(self, y: torch.Tensor, B: int) -> torch.Tensor:
        """(B * W, width, D) -> (B, n, D), weighted average over overlaps."""
        y = y.reshape(B, len(self.starts), self.width, *y.shape[2:])
        out = torch.zeros(B, self.n, *y.shape[3:], dtype=y.dtype, device=y.device)
        w = self.weights.to(y.dtype).to(y.device).reshape(1, -1, *([1] * (y.dim() - 3)))
        for k, s in enumerate(self.starts):
            out[:, s:s + self.width] += w * y[:, k]
        return out / self.norm.to(y.dtype).to(y.device).reshape(1, -1, *([1] * (y.dim() - 3)))

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        B, W = x.shape[0], len(self.starts)
        if cond is not self._cond:  # samplers pass the same (unchanged) dict at every step: cut it once
            self._cond = cond
            windows = {k: (self.split(v) if k in self.seq_keys else v.repeat_interleave(W, dim=0))
                       for k, v in cond.items()}
            # the batches' cond dicts, cut once: the wrapped denoiser sees the same dict for the
            # same batch at every step (and may cache what it derives from it)
            self._batches = [{k: v[i:i + self.max_batch] for k, v in windows.items()}
                             for i in range(0, B * W, self.max_batch)]
        xs, ts = self.split(x), t.repeat_interleave(W)
        # at most max_batch windows per call: the network's activations stay bounded however long the piece
        out = torch.cat([self.denoiser(xs[i:i + self.max_batch], ts[i:i + self.max_batch], c)
                         for i, c in zip(range(0, len(xs), self.max_batch), self._batches)])
        return self.merge(out, B)
