"""The denoiser network and its configuration (knows nothing of sampling)."""

from .config import ModelConfig
from .denoiser import Denoiser, PriorNet

__all__ = ["Denoiser", "ModelConfig", "PriorNet"]
