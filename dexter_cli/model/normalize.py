"""The normalised codec space the model works in.

Per-row train-split statistics from the codec store: p_codec with beat_period
on a log scale (so that a decoded tempo is always positive), s_codec and
c_codec standardised. Normalised p_codec values are clipped to +-``clip``
standard deviations: the real data holds a few extreme notes (a fermata can
last 100 s/beat) that would otherwise dominate the loss.
"""

from __future__ import annotations

import torch

from ..data.codec import Row


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

    def encode_p(self, p: torch.Tensor) -> torch.Tensor:
        """Raw p_codec (..., 5) -> normalised; row 0 is log beat_period."""
        p = p.clone()
        p[..., Row.BEAT_PERIOD] = torch.log(p[..., Row.BEAT_PERIOD].clamp(min=1e-4))
        z = (p - self.p_mean.to(p.device)) / self.p_std.to(p.device)
        return z.clamp(-self.clip, self.clip)

    def decode_p(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised p_codec -> raw (beat_period > 0, velocity and pedal in range)."""
        p = z * self.p_std.to(z.device) + self.p_mean.to(z.device)
        p[..., Row.BEAT_PERIOD] = torch.exp(p[..., Row.BEAT_PERIOD])
        p[..., Row.VELOCITY] = p[..., Row.VELOCITY].clamp(1 / 127, 1.0)  # MIDI velocity 1..127
        p[..., Row.PEDAL] = p[..., Row.PEDAL].clamp(0.0, 1.0)  # pedal depth
        return p

    def encode_s(self, s: torch.Tensor) -> torch.Tensor:
        return (s - self.s_mean.to(s.device)) / self.s_std.to(s.device)

    def encode_c(self, c: torch.Tensor) -> torch.Tensor:
        return (c - self.c_mean.to(c.device)) / self.c_std.to(c.device)

    def decode_c(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.c_std.to(z.device) + self.c_mean.to(z.device)
