"""dexter: learn and control expressive piano performance with diffusion models.

Follows DExter (Zhang et al., 2024): a denoising diffusion model over a
per-note performance codec (p_codec), conditioned on the score (s_codec) and
on interpretable controls (c_codec).
"""

from .errors import DexterError

__version__ = "0.1.0"
__all__ = ["DexterError", "__version__"]
