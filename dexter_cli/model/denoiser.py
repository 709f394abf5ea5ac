"""The denoiser network: DiffWave-style gated residual blocks over the note sequence.

DExter (Sec. 3.2) uses DiffWave's stack of dilated 1-D convolutions with a
diffusion-step embedding and per-note projections of the conditions. Here the
dilation cycle is long enough (and optional self-attention blocks global
enough) that one output sees the whole segment. Classifier-free guidance: a
dropped score condition or control is replaced by a learned null, and the
model is told which controls are null.

The network only maps ``(x_t, t, conditions) -> output``; what the output
means (epsilon, x0 or v) is a setting of the diffusion code.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .config import ModelConfig


def step_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of diffusion steps ``t`` (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class ResidualBlock(nn.Module):
    """Gated residual block: dilated conv of (h + step), plus conditioning, tanh * sigmoid."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.dilated = nn.Conv1d(channels, 2 * channels, 3, padding=dilation, dilation=dilation)
        self.step = nn.Linear(channels, channels)
        self.cond = nn.Conv1d(channels, 2 * channels, 1)
        self.out = nn.Conv1d(channels, 2 * channels, 1)

    def forward(self, h: torch.Tensor, step: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``cond`` is this block's projected conditioning ``self.cond(c)``, (B, 2C, N)."""
        y = self.dilated((h + self.step(step)[:, :, None]) * mask) + cond
        gate, filt = y.chunk(2, dim=1)
        y = self.out(torch.sigmoid(gate) * torch.tanh(filt))
        residual, skip = y.chunk(2, dim=1)
        return (h + residual) / math.sqrt(2.0), skip


class AttentionBlock(nn.Module):
    """Pre-norm multi-head self-attention over the notes of a segment (padding masked)."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"residual_channels {channels} must divide by attention_heads {heads}")
        self.heads = heads
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, C, N = h.shape
        x = self.norm(h.transpose(1, 2))
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        keep = mask[:, 0] > 0.5  # (B, N) real notes
        keep = keep | ~keep.any(dim=1, keepdim=True)  # a fully padded row attends to everything, not nothing
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])
        return h + self.proj(y.transpose(1, 2).reshape(B, N, C)).transpose(1, 2)


class Denoiser(nn.Module):
    """DExter's denoiser eps_theta(x_t, t, s, c).

    Parameters
    ----------
    config : ModelConfig
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        C = config.residual_channels
        self.inp = nn.Conv1d(config.p_dim, C, 1)
        self.step_mlp = nn.Sequential(nn.Linear(config.step_embed_dim, 4 * C), nn.SiLU(), nn.Linear(4 * C, C))
        self.s_proj = nn.Conv1d(config.s_dim, C, 1)
        # controls: value (or its learned null) and a flag saying it is null
        self.c_proj = nn.Conv1d(2 * config.c_dim, C, 1)
        self.null_s = nn.Parameter(torch.zeros(C))  # learned null of the score condition (projected space)
        self.null_c = nn.Parameter(torch.zeros(config.c_dim))  # learned null value of each control
        self.cond_mix = nn.Conv1d(C, C, 1)
        self.blocks = nn.ModuleList(ResidualBlock(C, 2 ** (i % config.dilation_cycle))
                                    for i in range(config.residual_layers))
        every = config.attention_every
        self.attn = nn.ModuleDict({str(i): AttentionBlock(C, config.attention_heads)
                                   for i in range(config.residual_layers) if every and (i + 1) % every == 0})
        self.skip_out = nn.Conv1d(C, C, 1)
        self.out = nn.Conv1d(C, config.p_dim, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def condition(self, s: torch.Tensor, c: torch.Tensor, mask: torch.Tensor, drop_s: torch.Tensor,
                  drop_c: torch.Tensor) -> torch.Tensor:
        """Every block's projection of the score and control conditions, (B, L, 2C, N).

        It depends on neither x_t nor t, so sampling computes it once for all its steps.
        Arguments as in :meth:`forward`.
        """
        m = mask.float()[:, None, :]  # (B, 1, N)
        s_h = self.s_proj(s.transpose(1, 2))
        s_h = torch.where(drop_s[:, None, None], self.null_s[None, :, None].to(s_h.dtype), s_h)
        dc = drop_c[:, None, :].expand(-1, c.shape[1], -1)  # (B, N, c_dim)
        c_in = torch.cat([torch.where(dc, self.null_c.to(c.dtype), c), dc.to(c.dtype)], dim=-1)
        cond = self.cond_mix(F.silu(s_h + self.c_proj(c_in.transpose(1, 2)))) * m
        return torch.stack([block.cond(cond) for block in self.blocks], dim=1)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        s: torch.Tensor,
        c: torch.Tensor,
        mask: torch.Tensor,
        drop_s: torch.Tensor,
        drop_c: torch.Tensor,
        cond_h: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the diffusion target for a batch of segments.

        Parameters
        ----------
        x : (B, N, p_dim)
            Noisy normalised p_codec x_t.
        t : (B,)
            Diffusion steps.
        s : (B, N, s_dim)
            Normalised s_codec.
        c : (B, N, c_dim)
            Normalised c_codec (values ignored where dropped).
        mask : (B, N)
            1 for real notes, 0 for padding.
        drop_s : (B,) bool
            Score condition replaced by its learned null.
        drop_c : (B, c_dim) bool
            Controls replaced by their learned nulls (unconditional on them).
        cond_h : (B, L, 2C, N), optional
            :meth:`condition` of the same conditions, computed once for many steps
            (``s``, ``c``, ``drop_s``, ``drop_c`` are then not read).

        Returns
        -------
        (B, N, p_dim)
        """
        m = mask.float()[:, None, :]  # (B, 1, N)
        h = self.inp(x.transpose(1, 2)) * m
        step = self.step_mlp(step_embedding(t, self.config.step_embed_dim))
        if cond_h is None:
            cond_h = self.condition(s, c, mask, drop_s, drop_c)
        skips = 0.0
        for i, block in enumerate(self.blocks):
            h, skip = block(h, step, cond_h[:, i], m)
            skips = skips + skip
            if str(i) in self.attn:
                h = self.attn[str(i)](h, m)
        y = self.out(F.silu(self.skip_out(skips / math.sqrt(len(self.blocks)))))
        return (y * m).transpose(1, 2)
