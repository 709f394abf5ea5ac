"""The linear prior: ridge regression from the score to the performance codec.

A ridge regression from the normalised s_codec (clipped to +-10, plus a bias) to
each normalised p_codec row, fitted on the real train segments of a codec store
only (synthetic mixup segments and the valid and test splits are left out), in
the spirit of the Basis Mixer. It is two things:

- ``dexter evaluate``'s *linear* reference renderer;
- the optional prior mean mu(s) of the diffusion (``task.prior: linear``): the
  model then denoises the residual x0 = p - mu(s) and sampling returns
  mu(s) + x0_hat, so the network spends its capacity on what the linear reading of
  the score misses. The weights travel in the checkpoint's codec statistics
  (``stats["prior_weights"]``, (s_dim + 1) x p_dim numbers).

``task.prior: context`` adds regressors that see past the note: the centred moving
averages of the score features over 8, 32 and 128 notes (``CONTEXT_WIDTHS``; the
local dynamics marking, density, register, ...), so mu(s) follows the phrase as well
as the note. Its widths travel with the weights (``stats["prior_context"]``). The
reference renderer stays the per-note regression. Measured (MODEL_CARD.md, candidate
v4): better than the per-note prior on the valid split, worse on the test split's
velocity curves; an option, not the bundled model's recipe.
"""

from __future__ import annotations

import numpy as np

from .data.store import CodecStore
from .errors import DexterError

CONTEXT_WIDTHS = (8, 32, 128)  # task.prior: context: moving averages over 8, 32 and 128 notes


def fit_linear_prior(store: CodecStore, alpha: float = 1.0, max_rows: int | None = 400_000,
                     seed: int = 0, context: tuple[int, ...] = (),
                     segments: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fit the ridge weights on a store's real train segments (or on ``segments``).

    Parameters
    ----------
    store : CodecStore
        Its own normalisation statistics define the space the weights live in.
    alpha : float
        Ridge penalty (the bias is not penalised).
    max_rows : int or None
        At most this many played notes, drawn with ``seed`` (None: all).
    seed : int
    context : tuple of int
        Widths (in notes) of the moving averages of the score features added as regressors
        (:func:`dexter_cli.model.normalize.prior_features`), computed within each segment over
        its played notes, as the training loss sees them; () fits the per-note regression.
    segments : ndarray of int, optional
        Segment indices to fit on instead of the real train segments (e.g. a cross-validation fold).

    Returns
    -------
    weights : ndarray, shape (s_dim (1 + len(context)) + 1, p_dim), float64
        Last row: the bias.
    fitted_on : ndarray of int
        The store's segment indices used.

    Raises
    ------
    DexterError
        The store has no real train segments.
    """
    import torch

    from .model.normalize import CodecNormalizer, prior_features

    norm = CodecNormalizer(store.meta["stats"])
    idx = store.split_indices("train", synthetic=False) if segments is None else np.asarray(segments)
    if len(idx) == 0:
        raise DexterError("the linear prior needs a non-empty train split")
    m = torch.from_numpy(np.asarray(store.mask)[idx])
    s_rows = np.asarray(store.s_index)[idx]
    n = int(m.sum())
    keep_mask = torch.ones(n, dtype=torch.bool)
    if max_rows is not None and n > max_rows:  # the played notes drawn
        keep_mask[:] = False
        keep_mask[torch.from_numpy(np.random.default_rng(seed).choice(n, max_rows, replace=False))] = True
    S = np.asarray(store.s_codec)
    XtX = XtY = 0  # the normal equations, summed over chunks of segments
    done = 0
    for a in range(0, len(idx), 256):  # segments in chunks: the context regressors are per segment
        sl = slice(a, a + 256)
        s = norm.encode_s(torch.from_numpy(np.array(S[np.maximum(s_rows[sl], 0)], dtype=np.float32)))
        feats = prior_features(s, m[sl], context)[m[sl]]
        y = norm.encode_p(torch.from_numpy(np.array(store.p_codec[idx[sl]], dtype=np.float32)))[m[sl]]
        pick = keep_mask[done: done + len(feats)]
        done += len(feats)
        X, Y = feats[pick].double(), y[pick].double()
        XtX, XtY = XtX + X.T @ X, XtY + X.T @ Y
    A = XtX.numpy() + alpha * np.eye(XtX.shape[0])
    A[-1, -1] -= alpha  # the bias is not shrunk
    return np.linalg.solve(A, XtY.numpy()), idx
