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
"""

from __future__ import annotations

import numpy as np

from .data.store import CodecStore
from .errors import DexterError


def fit_linear_prior(store: CodecStore, alpha: float = 1.0, max_rows: int = 400_000,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fit the ridge weights on a store's real train segments.

    Parameters
    ----------
    store : CodecStore
        Its own normalisation statistics define the space the weights live in.
    alpha : float
        Ridge penalty (the bias is not penalised).
    max_rows : int
        At most this many played notes, drawn with ``seed``.
    seed : int

    Returns
    -------
    weights : ndarray, shape (s_dim + 1, p_dim), float64
        Last row: the bias.
    fitted_on : ndarray of int
        The store's segment indices used.

    Raises
    ------
    DexterError
        The store has no real train segments.
    """
    import torch

    from .model.normalize import CodecNormalizer

    norm = CodecNormalizer(store.meta["stats"])
    idx = store.split_indices("train", synthetic=False)
    if len(idx) == 0:
        raise DexterError("the linear prior needs a non-empty train split")
    m = np.asarray(store.mask)[idx]
    X = np.asarray(store.s_codec)[np.asarray(store.s_index)[idx][m]]
    Y = np.asarray(store.p_codec)[idx][m]
    if len(X) > max_rows:
        keep = np.random.default_rng(seed).choice(len(X), max_rows, replace=False)
        X, Y = X[keep], Y[keep]
    Xn = prior_features(norm.encode_s(torch.from_numpy(np.array(X, dtype=np.float32))).numpy())
    Yn = norm.encode_p(torch.from_numpy(np.array(Y, dtype=np.float32))).numpy().astype(np.float64)
    A = Xn.T @ Xn + alpha * np.eye(Xn.shape[1])
    A[-1, -1] -= alpha  # the bias is not shrunk
    return np.linalg.solve(A, Xn.T @ Yn), idx


def prior_features(s_norm: np.ndarray) -> np.ndarray:
    """Regressors of the fit: the normalised s_codec clipped to +-10, and a bias column (what
    ``CodecNormalizer.prior`` applies the weights to)."""
    z = np.clip(np.asarray(s_norm, dtype=np.float64), -10, 10)
    return np.concatenate([z, np.ones((*z.shape[:-1], 1))], axis=-1)
