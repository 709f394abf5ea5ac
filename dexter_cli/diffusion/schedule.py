"""The noise schedule and the prediction parametrisations (epsilon, x0, v).

DDPM (Ho et al., 2020), as in DExter: linear betas from 1e-4 to 0.02 over T = 1000 steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..errors import DexterError

Prediction = Literal["eps", "x0", "v"]
PREDICTIONS: tuple[str, ...] = ("eps", "x0", "v")


@dataclass
class Schedule:
    """A discrete variance-preserving schedule.

    Attributes
    ----------
    betas : (T,) float64
    alphas_cumprod : (T,) float64
        ``alpha_bar_t = prod_{s<=t} (1 - beta_s)``.
    """

    betas: torch.Tensor
    alphas_cumprod: torch.Tensor

    @classmethod
    def linear(cls, timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "Schedule":
        """The linear schedule of DDPM and DExter."""
        if timesteps < 2:
            raise DexterError(f"timesteps must be at least 2, got {timesteps}")
        betas = torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)
        return cls(betas, torch.cumprod(1.0 - betas, dim=0))

    @property
    def T(self) -> int:
        return len(self.betas)

    def ab(self, t: torch.Tensor) -> torch.Tensor:
        """alpha_bar_t for integer steps ``t``; ``t = -1`` means alpha_bar = 1 (clean data)."""
        t = torch.as_tensor(t, dtype=torch.long)
        ab = self.alphas_cumprod[t.clamp(min=0).cpu()]
        return torch.where(t.cpu() < 0, torch.ones_like(ab), ab)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Forward noising: ``x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise``."""
        ab = _bcast(self.ab(t), x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-batch scalars (B,) or a scalar, shaped to broadcast over ``like``."""
    v = v.to(device=like.device, dtype=like.dtype)
    if v.dim() == 0:
        return v
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def check_prediction(prediction: str) -> str:
    if prediction not in PREDICTIONS:
        raise DexterError(f"unknown prediction type {prediction!r}; choose from {', '.join(PREDICTIONS)}")
    return prediction


def training_target(prediction: str, x0: torch.Tensor, noise: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """What the network learns to output: eps, x0, or ``v = sqrt(ab) eps - sqrt(1-ab) x0``."""
    check_prediction(prediction)
    if prediction == "eps":
        return noise
    if prediction == "x0":
        return x0
    ab = _bcast(ab, x0)
    return ab.sqrt() * noise - (1 - ab).sqrt() * x0


def to_eps_x0(prediction: str, out: torch.Tensor, x_t: torch.Tensor, ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn a network output into (eps_hat, x0_hat) at noise level ``ab``."""
    check_prediction(prediction)
    ab = _bcast(ab, x_t)
    a, s = ab.sqrt(), (1 - ab).sqrt()
    if prediction == "eps":
        return out, (x_t - s * out) / a
    if prediction == "x0":
        return (x_t - a * out) / s.clamp(min=1e-12), out
    return s * x_t + a * out, a * x_t - s * out
