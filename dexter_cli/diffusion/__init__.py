"""Diffusion: schedule, loss and samplers, as pure functions over a denoiser callable."""

from .loss import diffusion_loss, masked_mean
from .samplers import SAMPLERS, Guided, get_sampler, randn, sample_ddim, sample_ddpm, sample_dpmpp_2m, timesteps
from .schedule import PREDICTIONS, Schedule, to_eps_x0, training_target

__all__ = ["Guided", "PREDICTIONS", "SAMPLERS", "Schedule", "diffusion_loss", "get_sampler", "masked_mean", "randn",
           "sample_ddim", "sample_ddpm", "sample_dpmpp_2m", "timesteps", "to_eps_x0", "training_target"]
