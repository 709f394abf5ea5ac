"""Whole sequences from a fixed-length denoiser (dexter_cli/diffusion/windows.py)."""

from __future__ import annotations

import pytest
import torch

from dexter_cli.diffusion.windows import WindowedDenoiser, window_edges, window_starts, window_weights


def test_windows_cover_the_sequence_and_merge_is_an_average():
    assert window_starts(10, 16, 8) == [0]
    assert window_starts(40, 16, 8) == [0, 8, 16, 24]
    assert window_starts(41, 16, 8) == [0, 8, 16, 24, 25]
    wd = WindowedDenoiser(lambda x, t, c: x * 0 + 3.0, n=41, window=16, stride=8, seq_keys=("s",))
    out = wd(torch.zeros(2, 41, 5), torch.tensor([1, 1]), {"s": torch.zeros(2, 41, 4), "drop": torch.zeros(2)})
    assert torch.allclose(out, torch.full_like(out, 3.0))
    ident = WindowedDenoiser(lambda x, t, c: x, n=41, window=16, stride=8, seq_keys=())
    x = torch.randn(1, 41, 5)
    assert torch.allclose(ident(x, torch.tensor([0]), {}), x, atol=1e-6)


def test_merge_is_the_ramp_weighted_average_of_position_dependent_windows():
    """Two windows of 16 over 24 items (overlap 8): each item's output is the hand-computed
    ramp-weighted mean of what the two windows said there, for a denoiser whose output depends on
    the position within its window and on the window; the windows may stream one call at a time."""

    calls = []

    def denoiser(x, t, c):  # window k says 100 k + position within the window at every item
        calls.append(len(x))
        pos = torch.arange(x.shape[1], dtype=x.dtype).reshape(1, -1, 1)
        return c["k"][:, :1].reshape(-1, 1, 1).to(x.dtype) * 100 + pos + 0 * x

    x = torch.zeros(1, 24, 1)
    ramp = [(j + 1) / 9 for j in range(8)]  # window_weights(16, 8): ramps of 8 at both ends
    w0, w1 = [1.0] * 8 + ramp[::-1], ramp + [1.0] * 8
    expected = [float(j) for j in range(8)]
    for j in range(8, 16):  # item j: window 0 at position j, window 1 at position j - 8
        a, b = w0[j], w1[j - 8]
        expected.append((a * j + b * (100 + j - 8)) / (a + b))
    expected += [100.0 + j - 8 for j in range(16, 24)]
    for max_batch in (1, 32):
        calls.clear()
        wd = WindowedDenoiser(denoiser, n=24, window=16, stride=8, seq_keys=("k",), max_batch=max_batch)
        out = wd(x, torch.tensor([5]), {"k": torch.tensor([[0.0] * 8 + [1.0] * 16])})
        # the per-item cond "k" windowed: window 0 sees k = 0 at its first item, window 1 sees 1
        assert calls == ([1, 1] if max_batch == 1 else [2])
        torch.testing.assert_close(out[0, :, 0], torch.tensor(expected, dtype=out.dtype))


def test_an_offset_moves_the_inner_window_edges_and_still_covers_the_sequence():

    assert window_starts(41, 16, 8, offset=4) == [0, 4, 12, 20, 25]
    assert window_starts(40, 16, 16, offset=8) == [0, 8, 24]
    assert window_starts(10, 16, 8, offset=4) == [0]
    with pytest.raises(ValueError, match="offset"):
        window_starts(41, 16, 8, offset=16)
    ident = WindowedDenoiser(lambda x, t, c: x, n=41, window=16, stride=8, seq_keys=(), offset=4)
    x = torch.randn(1, 41, 5)
    assert torch.allclose(ident(x, torch.tensor([0]), {}), x, atol=1e-6)


def test_window_layout_by_hand():
    assert window_starts(40, 16, 8) == [0, 8, 16, 24]
    assert window_starts(41, 16, 8) == [0, 8, 16, 24, 25]  # the last window ends at the sequence's end
    assert window_starts(41, 16, 8, offset=4) == [0, 4, 12, 20, 25]
    assert window_edges(40, 16, 8) == [8, 16, 24, 32]
    assert window_edges(41, 16, 8, offset=4) == [4, 12, 16, 20, 25, 28, 36]
    assert window_starts(16, 16, 8) == [0]
    assert window_starts(11, 4, 2) == [0, 2, 4, 6, 7]  # n - window + 1 on the stride: no start past n - window


def test_window_weights_by_hand():
    assert torch.allclose(window_weights(6, 2), torch.tensor([1 / 3, 2 / 3, 1, 1, 2 / 3, 1 / 3], dtype=torch.float64))
    assert torch.allclose(window_weights(4, 1), torch.tensor([0.5, 1, 1, 0.5], dtype=torch.float64))
    assert torch.equal(window_weights(4, 0), torch.ones(4, dtype=torch.float64))


def test_each_window_is_denoised_at_its_own_step_and_offset():
    """A denoiser that returns the step it was given: every position must get t (none lost or mixed), and
    the windowed denoiser must use the offset layout it was built with."""
    seen = []

    def den(x, t, cond):
        seen.append(x.shape[0])
        return t.to(x.dtype).reshape(-1, 1, 1).expand_as(x).clone()

    wd = WindowedDenoiser(den, n=41, window=16, stride=8, seq_keys=(), offset=4)
    assert wd.starts == window_starts(41, 16, 8, offset=4)
    x = torch.zeros(2, 41, 3)
    out = wd(x, torch.tensor([7, 900]), {})
    assert torch.allclose(out[0], torch.full((41, 3), 7.0)) and torch.allclose(out[1], torch.full((41, 3), 900.0))


def test_each_sequence_of_a_batch_gets_its_own_windows_back():
    """An identity denoiser over a batch of two different sequences returns each sequence itself:
    windows are cut, denoised and merged per sequence, never mixed between them."""
    x = torch.arange(2 * 11, dtype=torch.float64).reshape(2, 11, 1)
    wd = WindowedDenoiser(lambda x, t, cond: x.clone(), n=11, window=4, stride=2, seq_keys=())
    assert torch.allclose(wd(x, torch.zeros(2, dtype=torch.long), {}), x)
