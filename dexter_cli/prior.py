"""The prior mean mu(s): a ridge regression from the score to the performance codec.

mu(s) reads, for every note, the normalised s_codec (clipped to +-10), its centred moving
averages over 8, 32 and 128 notes (the local dynamics marking, density, register: the phrase
around the note) and a bias, and gives each normalised p_codec row linearly, in the spirit of the
Basis Mixer. It is fitted within performances (fixed effects: every performance centred on its
own means) on the real train segments of a codec store, so that its weights describe how a
performance moves through its piece, not how recordings and pieces differ in level.

With a prior (``task.prior: context``) the diffusion runs over the residual x0 = p - mu(s) and a
sample is mu(s) + x0_hat (:mod:`dexter_cli.engine`); ``dexter evaluate``'s ``linear`` baseline is
mu(s) alone. The weights travel in the checkpoint's safetensors as ``prior.weights`` and
``prior.widths`` (:meth:`Prior.state_dict`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch

from .errors import DexterError

if TYPE_CHECKING:
    from .data.store import CodecStore
    from .model.normalize import CodecNormalizer

CONTEXT_WIDTHS = (8, 32, 128)  # moving averages of the score features over 8, 32 and 128 notes
PRIOR_PREFIX = "prior."  # the prior's tensors in a checkpoint's safetensors


class Prior:
    """mu(s) = features(s) @ W: the ridge prior mean of the normalised p_codec.

    Parameters
    ----------
    weights : (s_dim (1 + len(widths)) + 1, p_dim) tensor
        Last row: the bias.
    widths : tuple of int
        Widths (notes) of the moving averages among the regressors (:func:`prior_features`).
    """

    def __init__(self, weights: torch.Tensor, widths: tuple[int, ...] = CONTEXT_WIDTHS):
        self.weights = weights.detach().float().cpu()
        self.widths = tuple(int(k) for k in widths)

    def __call__(self, s_norm: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """mu(s) (..., L, p_dim) of the *normalised* s_codec (..., L, s_dim); ``mask`` (..., L): the
        notes that count in the moving averages (default all)."""
        w = self.weights.to(device=s_norm.device, dtype=s_norm.dtype)
        return prior_features(s_norm, mask, self.widths) @ w

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The prior's tensors, as stored beside the network's weights."""
        return {f"{PRIOR_PREFIX}weights": self.weights.clone(),
                f"{PRIOR_PREFIX}widths": torch.tensor(self.widths, dtype=torch.int64)}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> "Prior | None":
        """The prior stored in ``state`` (a checkpoint's tensors), or None when it holds none.

        Raises
        ------
        DexterError
            Only one of the two tensors, or weights that do not fit the widths.
        """
        w, k = state.get(f"{PRIOR_PREFIX}weights"), state.get(f"{PRIOR_PREFIX}widths")
        if w is None and k is None:
            return None
        if w is None or k is None or w.dim() != 2:
            raise DexterError("the checkpoint's prior is incomplete (prior.weights and prior.widths go together)")
        widths = tuple(int(v) for v in k.reshape(-1).tolist())
        if (w.shape[0] - 1) % (1 + len(widths)):
            raise DexterError(f"the checkpoint's prior weights ({tuple(w.shape)}) do not fit its widths {widths}")
        return cls(w, widths)

    @classmethod
    def fit(cls, store: CodecStore, alpha: float, *, max_rows: int | None = 400_000, seed: int = 0,
            segments: np.ndarray | None = None) -> "Prior":
        """Fit the prior on a store's real train segments (or on ``segments``), within performances.

        Parameters
        ----------
        store : CodecStore
            Its own normalisation statistics define the space the weights live in.
        alpha : float
            Ridge penalty on the centred regressors (the bias is not penalised).
        max_rows : int or None
            At most this many played notes, drawn with ``seed`` (None: all).
        seed : int
        segments : ndarray of int, optional
            Segment indices to fit on instead of the real train segments.

        Raises
        ------
        DexterError
            The store has no real train segments.
        """
        return cls(torch.from_numpy(fit_within(store, alpha, CONTEXT_WIDTHS, max_rows, seed, segments)).float())


def fit_within(store: CodecStore, alpha: float, widths: tuple[int, ...], max_rows: int | None = 400_000,
               seed: int = 0, segments: np.ndarray | None = None) -> np.ndarray:
    """Ridge weights (float64, last row the bias) fitted within performances: the regressors and the
    normalised p_codec are centred on each performance's means (fixed effects), the centred normal
    equations solved with penalty ``alpha``, and the bias set to the mean p_codec at the mean
    regressors. See :meth:`Prior.fit` for the parameters."""
    from .model.normalize import CodecNormalizer

    norm = CodecNormalizer(store.meta["stats"])
    idx = store.split_indices("train", synthetic=False) if segments is None else np.asarray(segments)
    if len(idx) == 0:
        raise DexterError("the prior needs a non-empty train split")
    group = torch.from_numpy(np.unique(np.asarray(store.seg_perf)[idx], return_inverse=True)[1].reshape(-1))
    G = int(group.max()) + 1
    XtX = XtY = Sx = Sy = n = 0  # the normal equations and per-performance sums, over chunks of segments
    for X, Y, seg in regression_rows(store, norm, idx, widths, max_rows, seed):
        X, Y, g = X.double(), Y.double(), group[seg]
        XtX, XtY = XtX + X.T @ X, XtY + X.T @ Y
        Sx = Sx + torch.zeros(G, X.shape[1], dtype=X.dtype).index_add_(0, g, X)
        Sy = Sy + torch.zeros(G, Y.shape[1], dtype=Y.dtype).index_add_(0, g, Y)
        n = n + torch.bincount(g, minlength=G)
    XtX, XtY, Sx, Sy = XtX.numpy(), XtY.numpy(), Sx.numpy(), Sy.numpy()
    n = np.maximum(n.numpy(), 1)[:, None]
    # sum over groups of (x - xbar_g)(x - xbar_g)^T = X^T X - sum_g n_g xbar_g xbar_g^T (likewise for Y)
    XtX_w, XtY_w = XtX - (Sx / n).T @ Sx, XtY - (Sx / n).T @ Sy
    k = XtX.shape[0] - 1  # the bias column is 0 once centred: solve without it
    W = np.zeros((k + 1, XtY.shape[1]))
    W[:k] = np.linalg.solve(XtX_w[:k, :k] + alpha * np.eye(k), XtY_w[:k])
    total = n.sum()
    W[k] = Sy.sum(0) / total - (Sx.sum(0)[:k] / total) @ W[:k]
    return W


def regression_rows(store: CodecStore, norm: CodecNormalizer, idx: np.ndarray, widths: tuple[int, ...],
                    max_rows: int | None, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(regressors, normalised p_codec, position in ``idx`` of the note's segment) of the played
    notes of segments ``idx``, in chunks of segments (the moving averages are per segment, as the
    training loss sees them); at most ``max_rows`` notes, drawn with ``seed``."""
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
        feats = prior_features(s, m[sl], widths)[m[sl]]
        y = norm.encode_p(torch.from_numpy(np.array(store.p_codec[idx[sl]], dtype=np.float32)))[m[sl]]
        seg = torch.arange(a, a + len(m[sl])).repeat_interleave(m[sl].sum(1))
        pick = keep_mask[done: done + len(feats)]
        done += len(feats)
        yield feats[pick], y[pick], seg[pick]


def prior_features(s_norm: torch.Tensor, mask: torch.Tensor | None = None,
                   widths: tuple[int, ...] = ()) -> torch.Tensor:
    """Regressors of the prior: the normalised s_codec clipped to +-10, its centred moving average
    over each of ``widths`` (in notes, over the ``mask``ed notes of the sequence), and a bias column.

    Parameters
    ----------
    s_norm : (..., L, F) tensor
    mask : (..., L) tensor, optional
        Notes that count in the averages (default all).
    widths : tuple of int
        Window widths; () gives the note's own features only.

    Returns
    -------
    (..., L, F (1 + len(widths)) + 1) tensor
    """
    z = s_norm.clamp(-10, 10)
    sums = _running_sums(z, mask) if widths else None  # shared by every width
    parts = [z] + [_window_mean(*sums, k).to(z.dtype) for k in widths]
    return torch.cat(parts + [torch.ones_like(z[..., :1])], dim=-1)


def moving_average(z: torch.Tensor, mask: torch.Tensor | None, width: int) -> torch.Tensor:
    """Centred mean of ``z`` (..., L, F) over ``width`` neighbouring items along L, counting only
    items where ``mask`` (..., L) is set; windows shrink at the ends of the sequence."""
    return _window_mean(*_running_sums(z, mask), width).to(z.dtype)


def _running_sums(z: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cumulative sums, from 0, of the masked ``z`` and of the mask along L (float64: running sums
    over a whole piece in float32 would lose the small differences)."""
    z = z.double()
    m = torch.ones(z.shape[:-1], dtype=z.dtype, device=z.device) if mask is None else mask.to(z.dtype)
    cz = torch.cat([torch.zeros_like(z[..., :1, :]), torch.cumsum(z * m[..., None], dim=-2)], dim=-2)
    cm = torch.cat([torch.zeros_like(m[..., :1]), torch.cumsum(m, dim=-1)], dim=-1)
    return cz, cm


def _window_mean(cz: torch.Tensor, cm: torch.Tensor, width: int) -> torch.Tensor:
    L = cm.shape[-1] - 1
    pos = torch.arange(L, device=cz.device)
    lo, hi = (pos - width // 2).clamp(0, L), (pos + width // 2 + 1).clamp(0, L)
    return (cz[..., hi, :] - cz[..., lo, :]) / (cm[..., hi] - cm[..., lo]).clamp(min=1)[..., None]
