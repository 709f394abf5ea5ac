"""The denoiser's configuration: typed defaults, read from ``configs/model/*.yaml``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


RETIRED = ("prior_in", "prior_hidden")  # settings of older checkpoints, read and dropped


@dataclass
class ModelConfig:
    """Sizes of the DiffWave-style denoiser.

    Attributes
    ----------
    p_dim, s_dim, c_dim : int
        Widths of p_codec, s_codec and c_codec (set from the codec store).
    residual_channels : int
        Channels of the residual stack.
    residual_layers : int
        Gated residual blocks of dilated 1-D convolutions.
    dilation_cycle : int
        Dilation of block i is ``2 ** (i % dilation_cycle)``.
    attention_every : int
        A self-attention block after every this many residual blocks (0: none).
    attention_heads : int
    step_embed_dim : int
        Width of the sinusoidal diffusion-step embedding.
    """

    p_dim: int = 5
    s_dim: int = 64
    c_dim: int = 14
    residual_channels: int = 64
    residual_layers: int = 8
    dilation_cycle: int = 8
    attention_every: int = 0
    attention_heads: int = 4
    step_embed_dim: int = 128

    def receptive_field(self) -> int:
        """Notes seen by one output of the convolution stack alone (kernel 3)."""
        return 1 + 2 * sum(2 ** (i % self.dilation_cycle) for i in range(self.residual_layers))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        from ..errors import DexterError

        names = {f.name for f in fields(cls)}
        if d.get("prior_in"):
            raise DexterError("this checkpoint carries a prior network (task.prior: mlp), which dexter no longer has")
        d = {k: v for k, v in d.items() if k not in RETIRED}
        unknown = set(d) - names
        if unknown:
            raise DexterError(f"unknown model setting(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(names))}")
        return cls(**d)
