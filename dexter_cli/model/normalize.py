"""The normalised codec space the model works in.

Per-row train-split statistics from the codec store: p_codec with beat_period
on a log scale (so that a decoded tempo is always positive), s_codec and
c_codec standardised. Normalised p_codec values are clipped to +-``clip``
standard deviations: the real data holds a few extreme notes (a fermata can
last 100 s/beat) that would otherwise dominate the loss.
"""

from __future__ import annotations

import torch


class CodecNormalizer:
    """Map raw codecs to the model's space and back.

    Parameters
    ----------
    stats : dict
        ``meta.json["stats"]`` of a codec store (p_log_mean/std, s_mean/std, c_mean/std).
    clip : float
        Bound of normalised p_codec values, in standard deviations.
    """

    def __init__(self, stats: dict, clip: float = 5.0):
        self.stats = stats
        self.clip = float(clip)
        self.p_mean = torch.tensor(stats["p_log_mean"], dtype=torch.float32)
        self.p_std = torch.tensor(stats["p_log_std"], dtype=torch.float32)
        self.s_mean = torch.tensor(stats["s_mean"], dtype=torch.float32)
        self.s_std = torch.tensor(stats["s_std"], dtype=torch.float32)
        self.c_mean = torch.tensor(stats["c_mean"], dtype=torch.float32)
        self.c_std = torch.tensor(stats["c_std"], dtype=torch.float32)
        # controls that never vary in training (e.g. perceptual features absent from the data)
        lo, hi = stats.get("c_min"), stats.get("c_max")
        self.c_active = (torch.tensor(hi) > torch.tensor(lo)) if lo is not None else torch.ones(len(self.c_mean), dtype=torch.bool)
        # the optional ridge prior mu(s) (dexter_cli.prior): (s_dim (1 + len(context)) + 1, p_dim),
        # last row the bias; ``prior_context``: the widths of its moving averages (none: per note only)
        w = stats.get("prior_weights")
        self.prior_w = torch.tensor(w, dtype=torch.float32) if w is not None else None
        self.prior_context = tuple(int(k) for k in stats.get("prior_context", ()))

    def prior(self, s: torch.Tensor, mask: torch.Tensor | None = None,
              net: torch.nn.Module | None = None) -> torch.Tensor:
        """mu(s): the prior mean of the normalised p_codec given the *normalised* s_codec (..., L, s_dim);
        zeros without a prior. The diffusion runs over x0 - mu(s). ``mask`` (..., L): the notes that
        count in the moving averages of a context prior (default all). ``net``: the fitted prior
        network of ``task.prior: mlp`` (a correction of the ridge's reading, from the same regressors)."""
        shape = (*s.shape[:-1], len(self.p_mean))
        if self.prior_w is None:
            return torch.zeros(shape, dtype=s.dtype, device=s.device)
        w = self.prior_w.to(device=s.device, dtype=s.dtype)
        x = self.prior_inputs(s, mask)
        mu = x @ w  # the last regressor is the bias's 1
        return mu if net is None else mu + net(x)

    def prior_inputs(self, s: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The ridge prior's regressors of the normalised ``s`` (:func:`prior_features` with its widths)."""
        return prior_features(s, mask, self.prior_context)

    def encode_p(self, p: torch.Tensor) -> torch.Tensor:
        """Raw p_codec (..., 5) -> normalised; row 0 is log beat_period."""
        p = p.clone()
        p[..., 0] = torch.log(p[..., 0].clamp(min=1e-4))
        z = (p - self.p_mean.to(p.device)) / self.p_std.to(p.device)
        return z.clamp(-self.clip, self.clip)

    def decode_p(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised p_codec -> raw (beat_period > 0, velocity and pedal in range)."""
        p = z * self.p_std.to(z.device) + self.p_mean.to(z.device)
        p[..., 0] = torch.exp(p[..., 0])
        p[..., 1] = p[..., 1].clamp(1 / 127, 1.0)  # MIDI velocity 1..127
        p[..., 4] = p[..., 4].clamp(0.0, 1.0)  # pedal depth
        return p

    def encode_s(self, s: torch.Tensor) -> torch.Tensor:
        return (s - self.s_mean.to(s.device)) / self.s_std.to(s.device)

    def encode_c(self, c: torch.Tensor) -> torch.Tensor:
        return (c - self.c_mean.to(c.device)) / self.c_std.to(c.device)

    def decode_c(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.c_std.to(z.device) + self.c_mean.to(z.device)


def prior_features(s_norm: torch.Tensor, mask: torch.Tensor | None = None,
                   context: tuple[int, ...] = ()) -> torch.Tensor:
    """Regressors of the ridge prior: the normalised s_codec clipped to +-10, its centred moving
    average over each ``context`` width (in notes, over the ``mask``ed notes of the sequence), and a
    bias column.

    Parameters
    ----------
    s_norm : (..., L, F) tensor
    mask : (..., L) tensor, optional
        Notes that count in the averages (default all).
    context : tuple of int
        Window widths; () gives the per-note regression.

    Returns
    -------
    (..., L, F (1 + len(context)) + 1) tensor
    """
    z = s_norm.clamp(-10, 10)
    sums = _running_sums(z, mask) if context else None  # shared by every width
    parts = [z] + [_window_mean(*sums, k).to(z.dtype) for k in context]
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
