"""The prior mean mu(s): a ridge regression from the score to the performance codec.

mu(s) reads, for every note, the normalised s_codec (clipped to +-10), its centred moving
averages over 8, 32 and 128 notes (the local dynamics marking, density, register: the phrase
around the note) and a bias, and gives each normalised p_codec row linearly, in the spirit of the
Basis Mixer. It is fitted within performances (fixed effects: every performance centred on its
own means) on the real train segments of a codec store, so that its weights describe how a
performance moves through its piece, not how recordings and pieces differ in level.

``task.prior: level`` adds the level: a second ridge, fitted across performances, from the score's
mean features over about a segment (:data:`LEVEL_WIDTH` notes: the share of each tempo word, the
note values, density, meter, register) to what the first leaves over. It is what sets a piece's
tempo and loudness: the within fit cannot, and a network that sees one segment reads it poorly.

With a prior (``task.prior: context`` or ``level``) the diffusion runs over the residual
x0 = p - mu(s) and a sample is mu(s) + x0_hat (:mod:`dexter_cli.engine`); ``dexter evaluate``'s
``linear`` baseline is the context prior alone, fitted on the store it evaluates. The weights travel in the checkpoint's safetensors as ``prior.weights`` and
``prior.widths`` (:meth:`Prior.state_dict`).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import torch

from .errors import DexterError

if TYPE_CHECKING:
    from .data.store import CodecStore
    from .model.normalize import CodecNormalizer

CONTEXT_WIDTHS = (8, 32, 128)  # moving averages of the score features over 8, 32 and 128 notes
LEVEL_WIDTH = 300  # notes: the level part reads the score's mean over about one training segment
PRIOR_PREFIX = "prior."  # the prior's tensors in a checkpoint's safetensors


class Prior:
    """mu(s) = features(s) @ W [+ level_features(s) @ A]: the ridge prior mean of the normalised p_codec.

    Parameters
    ----------
    weights : (s_dim (1 + len(widths)) + 1, p_dim) tensor
        W, fitted within performances. Last row: the bias.
    widths : tuple of int
        Widths (notes) of the moving averages among the regressors (:func:`prior_features`).
    level : (s_dim + 1, p_dim) tensor, optional
        A, the level part, fitted across performances (:func:`level_features`). Last row: the bias.
    level_width : int
        Width (notes) of the level part's moving average.
    """

    def __init__(self, weights: torch.Tensor, widths: tuple[int, ...] = CONTEXT_WIDTHS,
                 level: torch.Tensor | None = None, level_width: int = LEVEL_WIDTH):
        self.weights = weights.detach().float().cpu()
        self.widths = tuple(int(k) for k in widths)
        self.level = None if level is None else level.detach().float().cpu()
        self.level_width = int(level_width)

    def __call__(self, s_norm: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """mu(s) (..., L, p_dim) of the *normalised* s_codec (..., L, s_dim); ``mask`` (..., L): the
        notes that count in the moving averages (default all)."""
        w = self.weights.to(device=s_norm.device, dtype=s_norm.dtype)
        mu = prior_features(s_norm, mask, self.widths) @ w
        if self.level is not None:
            mu = mu + level_features(s_norm, mask, self.level_width) @ self.level.to(mu)
        return mu

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The prior's tensors, as stored beside the network's weights."""
        state = {f"{PRIOR_PREFIX}weights": self.weights.clone(),
                 f"{PRIOR_PREFIX}widths": torch.tensor(self.widths, dtype=torch.int64)}
        if self.level is not None:
            state[f"{PRIOR_PREFIX}level"] = self.level.clone()
            state[f"{PRIOR_PREFIX}level_width"] = torch.tensor([self.level_width], dtype=torch.int64)
        return state

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
        level, width = state.get(f"{PRIOR_PREFIX}level"), state.get(f"{PRIOR_PREFIX}level_width")
        if (level is None) != (width is None):
            raise DexterError("the checkpoint's prior level is incomplete (prior.level and prior.level_width go together)")
        if level is not None and (level.dim() != 2 or (level.shape[0] - 1) * (1 + len(widths)) != w.shape[0] - 1
                                  or level.shape[1] != w.shape[1] or int(width.reshape(-1)[0]) < 1):
            raise DexterError(f"the checkpoint's prior level ({tuple(level.shape)}, width {width.tolist()}) does not "
                              f"fit its weights ({tuple(w.shape)})")
        return cls(w, widths, level, int(width.reshape(-1)[0]) if width is not None else LEVEL_WIDTH)

    @classmethod
    def fit(cls, store: CodecStore, alpha: float, *, level_alpha: float | None = None, stats: dict | None = None,
            max_rows: int | None = 400_000, seed: int = 0, segments: np.ndarray | None = None) -> "Prior":
        """Fit the prior on a store's real train segments (or on ``segments``): W within
        performances, then, with ``level_alpha``, the level part A across them.

        Parameters
        ----------
        store : CodecStore
        alpha : float
            Ridge penalty of W on the centred regressors (the bias is not penalised).
        level_alpha : float, optional
            Ridge penalty of the level part A; None: no level part (``task.prior: context``).
        stats : dict, optional
            Normalisation statistics that define the space the weights live in (default the store's).
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
        w = fit_within(store, alpha, CONTEXT_WIDTHS, max_rows, seed, segments, stats)
        level = None if level_alpha is None else fit_level(store, w, level_alpha, CONTEXT_WIDTHS, LEVEL_WIDTH,
                                                           max_rows, seed, segments, stats)
        return cls(torch.from_numpy(w).float(), CONTEXT_WIDTHS,
                   None if level is None else torch.from_numpy(level).float(), LEVEL_WIDTH)


def _fit_setup(store: CodecStore, segments: np.ndarray | None, stats: dict | None) -> tuple[CodecNormalizer, np.ndarray]:
    from .model.normalize import CodecNormalizer

    idx = store.split_indices("train", synthetic=False) if segments is None else np.asarray(segments)
    if len(idx) == 0:
        raise DexterError("the prior needs a non-empty train split")
    return CodecNormalizer(stats or store.meta["stats"]), idx


def fit_within(store: CodecStore, alpha: float, widths: tuple[int, ...], max_rows: int | None = 400_000,
               seed: int = 0, segments: np.ndarray | None = None, stats: dict | None = None) -> np.ndarray:
    """Ridge weights (float64, last row the bias) fitted within performances: the regressors and the
    normalised p_codec are centred on each performance's means (fixed effects), the centred normal
    equations solved with penalty ``alpha``, and the bias set to the mean p_codec at the mean
    regressors. See :meth:`Prior.fit` for the parameters."""
    norm, idx = _fit_setup(store, segments, stats)
    group = torch.from_numpy(np.unique(np.asarray(store.seg_perf)[idx], return_inverse=True)[1].reshape(-1))
    G = int(group.max()) + 1
    XtX = XtY = Sx = Sy = n = 0  # the normal equations and per-performance sums, over chunks of segments
    for X, Y, seg in regression_rows(store, norm, idx, partial(prior_features, widths=widths), max_rows, seed):
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
    W[:k] = _solve(XtX_w[:k, :k] + alpha * np.eye(k), XtY_w[:k], alpha)
    total = n.sum()
    W[k] = Sy.sum(0) / total - (Sx.sum(0)[:k] / total) @ W[:k]
    return W


def fit_level(store: CodecStore, weights: np.ndarray, alpha: float, widths: tuple[int, ...], width: int,
              max_rows: int | None = 400_000, seed: int = 0, segments: np.ndarray | None = None,
              stats: dict | None = None) -> np.ndarray:
    """The level part A (float64, last row the bias): a ridge, pooled across performances, from
    :func:`level_features` to what the within fit ``weights`` leaves over (p - features @ W).

    Parameters
    ----------
    store : CodecStore
    weights : ndarray
        W of :func:`fit_within`.
    alpha : float
        Ridge penalty on the centred regressors (the bias is not penalised).
    widths : tuple of int
        The moving averages of W's regressors.
    width : int
        The level part's moving average (:data:`LEVEL_WIDTH`).
    max_rows, seed, segments, stats
        As for :meth:`Prior.fit`.

    Returns
    -------
    ndarray, shape (F + 1, p_dim)

    Raises
    ------
    DexterError
        No train segments, or a singular system (penalty 0).
    """
    norm, idx = _fit_setup(store, segments, stats)
    W = torch.from_numpy(weights)
    k = W.shape[0]

    def both(s: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return torch.cat([prior_features(s, m, widths), level_features(s, m, width)], dim=-1)

    ZtZ = ZtR = 0
    for X, Y, _ in regression_rows(store, norm, idx, both, max_rows, seed):
        X = X.double()
        Z, R = X[:, k:], Y.double() - X[:, :k] @ W
        ZtZ, ZtR = ZtZ + Z.T @ Z, ZtR + Z.T @ R
    ZtZ, ZtR = ZtZ.numpy(), ZtR.numpy()
    n, j = ZtZ[-1, -1], ZtZ.shape[0] - 1  # the bias column's count; solve the centred equations without it
    mz, mr = ZtZ[-1, :j] / n, ZtR[-1] / n
    A = np.zeros((j + 1, ZtR.shape[1]))
    A[:j] = _solve(ZtZ[:j, :j] - n * np.outer(mz, mz) + alpha * np.eye(j), ZtR[:j] - n * np.outer(mz, mr), alpha)
    A[j] = mr - mz @ A[:j]
    return A


def _solve(lhs: np.ndarray, rhs: np.ndarray, alpha: float) -> np.ndarray:
    try:
        return np.linalg.solve(lhs, rhs)
    except np.linalg.LinAlgError as exc:  # a constant score feature with no penalty
        raise DexterError(f"the prior's ridge is singular at penalty {alpha:g}: use a penalty above 0") from exc


def regression_rows(store: CodecStore, norm: CodecNormalizer, idx: np.ndarray,
                    features: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], max_rows: int | None,
                    seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(regressors ``features(s, mask)``, normalised p_codec, position in ``idx`` of the note's
    segment) of the played notes of segments ``idx``, in chunks of segments (the moving averages are
    per segment, as the training loss sees them); at most ``max_rows`` notes, drawn with ``seed``."""
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
        feats = features(s, m[sl])[m[sl]]
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


def level_features(s_norm: torch.Tensor, mask: torch.Tensor | None, width: int) -> torch.Tensor:
    """Regressors of the level part: the clipped normalised s_codec's centred moving average over
    ``width`` notes (the mean of a segment's features, at its centre), and a bias column.

    Parameters
    ----------
    s_norm : (..., L, F) tensor
    mask : (..., L) tensor, optional
        Notes that count in the average (default all).
    width : int

    Returns
    -------
    (..., L, F + 1) tensor
    """
    z = moving_average(s_norm.clamp(-10, 10), mask, width)
    return torch.cat([z, torch.ones_like(z[..., :1])], dim=-1)


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
