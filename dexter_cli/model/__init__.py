"""The denoiser network and its configuration (knows nothing of sampling)."""

from .config import ModelConfig
from .denoiser import Denoiser

__all__ = ["Denoiser", "ModelConfig"]
