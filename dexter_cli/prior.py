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

``task.prior: mlp`` adds a small network over the same regressors to the context
ridge (:class:`dexter_cli.model.PriorNet`, :func:`fit_prior_net`): it is fitted to
the ridge's residual before the diffusion trains, then frozen, and travels in the
model's weights. Cross-validated over the train pieces (``scripts/cv_prior.py``) its
tempo is nearer the humans' than the ridges', its velocity a little nearer (MODEL_CARD.md).

``task.prior_fit: within`` fits any of these ridges within performances (fixed effects:
every performance centred on its own means), so that the weights describe how a
performance moves through its piece, which is what a curve's r measures, and not how
recordings and pieces differ in level (a piano's loudness, a piece's base tempo), which
the pooled fit confounds with the score. Cross-validated, the within context ridge reads
tempo curves best of all the priors (MODEL_CARD.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import numpy as np

from .data.store import CodecStore
from .errors import DexterError

if TYPE_CHECKING:
    import torch

    from .model.normalize import CodecNormalizer

CONTEXT_WIDTHS = (8, 32, 128)  # task.prior: context: moving averages over 8, 32 and 128 notes


def fit_linear_prior(store: CodecStore, alpha: float = 1.0, max_rows: int | None = 400_000,
                     seed: int = 0, context: tuple[int, ...] = (),
                     segments: np.ndarray | None = None, within: bool = False) -> tuple[np.ndarray, np.ndarray]:
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
    within : bool
        Fit within performances (``task.prior_fit: within``): the regressors and the p_codec are
        centred on each performance's means before the fit (fixed effects), so the weights
        describe how a performance moves through a piece, not how performances differ from each
        other (a recording's loudness, a piece's base tempo: constants a curve's r ignores, which
        the pooled fit confounds with the score). The bias is then the mean p_codec at the mean
        regressors; the level of a piece is left to the diffusion.

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

    from .model.normalize import CodecNormalizer

    norm = CodecNormalizer(store.meta["stats"])
    idx = store.split_indices("train", synthetic=False) if segments is None else np.asarray(segments)
    if len(idx) == 0:
        raise DexterError("the linear prior needs a non-empty train split")
    # within: the performance of each segment (the store's ids, made 0..G-1)
    group = torch.from_numpy(np.unique(np.asarray(store.seg_perf)[idx], return_inverse=True)[1].reshape(-1))
    G = int(group.max()) + 1
    XtX = XtY = 0  # the normal equations, summed over chunks of segments
    Sx = Sy = n = 0  # per-group sums and counts (within)
    for X, Y, seg in _regression_rows(store, norm, idx, context, max_rows, seed):
        X, Y = X.double(), Y.double()
        XtX, XtY = XtX + X.T @ X, XtY + X.T @ Y
        if within:
            g = group[seg]
            Sx = Sx + torch.zeros(G, X.shape[1], dtype=X.dtype).index_add_(0, g, X)
            Sy = Sy + torch.zeros(G, Y.shape[1], dtype=Y.dtype).index_add_(0, g, Y)
            n = n + torch.bincount(g, minlength=G)
    XtX, XtY = XtX.numpy(), XtY.numpy()
    if not within:
        A = XtX + alpha * np.eye(XtX.shape[0])
        A[-1, -1] -= alpha  # the bias is not shrunk
        return np.linalg.solve(A, XtY), idx
    Sx, Sy, n = Sx.numpy(), Sy.numpy(), np.maximum(n.numpy(), 1)[:, None]
    # sum over groups of (x - xbar_g)(x - xbar_g)^T = X^T X - sum_g n_g xbar_g xbar_g^T (likewise for Y)
    XtX_w, XtY_w = XtX - (Sx / n).T @ Sx, XtY - (Sx / n).T @ Sy
    k = XtX.shape[0] - 1  # the bias column is 0 once centred: solve without it
    W = np.zeros((k + 1, XtY.shape[1]))
    W[:k] = np.linalg.solve(XtX_w[:k, :k] + alpha * np.eye(k), XtY_w[:k])
    total = n.sum()  # the bias: the mean p_codec at the mean regressors
    W[k] = Sy.sum(0) / total - (Sx.sum(0)[:k] / total) @ W[:k]
    return W, idx


def _regression_rows(store: CodecStore, norm: CodecNormalizer, idx: np.ndarray, context: tuple[int, ...],
                     max_rows: int | None, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(regressors, normalised p_codec, position in ``idx`` of the note's segment) of the played
    notes of segments ``idx``, in chunks of segments (the context regressors are per segment); at
    most ``max_rows`` notes, drawn with ``seed``."""
    import torch

    from .model.normalize import prior_features

    m = torch.from_numpy(np.asarray(store.mask)[idx])
    s_rows = np.asarray(store.s_index)[idx]
    n = int(m.sum())
    keep_mask = torch.ones(n, dtype=torch.bool)
    if max_rows is not None and n > max_rows:  # the played notes drawn
        keep_mask[:] = False
        keep_mask[torch.from_numpy(np.random.default_rng(seed).choice(n, max_rows, replace=False))] = True
    S = np.asarray(store.s_codec)
    done = 0
    for a in range(0, len(idx), 256):
        sl = slice(a, a + 256)
        s = norm.encode_s(torch.from_numpy(np.array(S[np.maximum(s_rows[sl], 0)], dtype=np.float32)))
        feats = prior_features(s, m[sl], context)[m[sl]]
        y = norm.encode_p(torch.from_numpy(np.array(store.p_codec[idx[sl]], dtype=np.float32)))[m[sl]]
        seg = torch.arange(a, a + len(m[sl])).repeat_interleave(m[sl].sum(1))
        pick = keep_mask[done: done + len(feats)]
        done += len(feats)
        yield feats[pick], y[pick], seg[pick]


def fit_prior_net(net: torch.nn.Module, store: CodecStore, norm: CodecNormalizer, *, epochs: int = 3,
                  batch_size: int = 1024, lr: float = 1e-3, seed: int = 0, max_rows: int | None = 1_000_000,
                  segments: np.ndarray | None = None) -> dict[str, float]:
    """Fit the network of ``task.prior: mlp`` (in place): the ridge's residual, by least squares.

    mu(s) = ridge(s) + net(features(s)): the network learns what the linear reading misses (the
    interactions of the features, say a marking's effect in a dense passage), on the same real
    train notes and the same regressors as the ridge. AdamW, cosine-decayed rate, ``epochs``
    passes; the initial weights and the order of the notes come from ``seed``.

    Parameters
    ----------
    net : PriorNet
        Its input width must be the ridge's number of regressors.
    store : CodecStore
    norm : CodecNormalizer
        Holds the fitted ridge (``prior_weights``, ``prior_context``).
    epochs, batch_size, lr, seed : optional
    max_rows : int or None
        At most this many played notes (None: all).
    segments : ndarray of int, optional
        Segment indices to fit on instead of the real train segments (a cross-validation fold).

    Returns
    -------
    dict
        ``prior_mse_ridge`` and ``prior_mse``: the training notes' mean squared error (normalised
        p_codec, all rows) of the ridge alone and with the network.

    Raises
    ------
    DexterError
        No ridge in ``norm``, or an empty train split.
    """
    import torch

    if norm.prior_w is None:
        raise DexterError("the prior network corrects a ridge prior: the normaliser holds none")
    idx = store.split_indices("train", synthetic=False) if segments is None else np.asarray(segments)
    if len(idx) == 0:
        raise DexterError("the prior network needs a non-empty train split")
    rows = list(_regression_rows(store, norm, idx, norm.prior_context, max_rows, seed))
    X = torch.cat([r[0] for r in rows]).float()  # (r[2], the notes' segments, unused)
    R = torch.cat([r[1] for r in rows]).float() - X @ norm.prior_w  # the ridge's residual
    del rows
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # initial weights from the seed (the last layer stays at zero)
        for layer in list(net.net)[:-1]:
            if isinstance(layer, torch.nn.Linear):
                bound = 1.0 / layer.in_features ** 0.5
                layer.weight.copy_(torch.rand(layer.weight.shape, generator=gen) * 2 * bound - bound)
                layer.bias.copy_(torch.rand(layer.bias.shape, generator=gen) * 2 * bound - bound)
    params = list(net.parameters())
    net.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    per_epoch = max(1, len(X) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * per_epoch)
    net.train()
    try:
        for _ in range(epochs):
            order = torch.randperm(len(X), generator=gen)
            for b in range(per_epoch):
                i = order[b * batch_size:(b + 1) * batch_size]
                loss = ((net(X[i]) - R[i]) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
    finally:
        net.zero_grad(set_to_none=True)  # no stale gradient for an optimiser that sees it later
        net.requires_grad_(False)
        net.eval()
    with torch.no_grad():
        mse = float(torch.cat([((net(X[a:a + 65536]) - R[a:a + 65536]) ** 2) for a in range(0, len(X), 65536)]).mean())
    return {"prior_mse_ridge": float((R ** 2).mean()), "prior_mse": mse}
