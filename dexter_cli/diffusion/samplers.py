"""Samplers: small functions over a denoiser callable (they know nothing of music).

Every sampler has the signature::

    sample_x(net, x, schedule, *, steps=..., t_start=None, generator=None, callback=None) -> x0

``net`` is a :class:`Guided` network: ``denoiser(x_t, t, cond) -> output`` (output in the
``prediction`` parametrisation) with its conditions. ``cond`` and ``uncond`` are dicts of
batch-first tensors; with ``uncond`` given and ``guidance != 1`` the two passes run as one batch
and are combined by classifier-free guidance, ``out = out_u + w (out_c - out_u)``. ``clip_x0``
bounds the predicted clean data (and recomputes eps from it). ``x`` is x_{t_start} (pure noise
when ``t_start`` is None, i.e. T - 1), so the same functions start from a partly noised
performance (variation) or from a source performance (transfer).
"""

from __future__ import annotations

from typing import Callable, Literal

import torch

from ..errors import DexterError
from .schedule import Schedule, _bcast, to_eps_x0

Denoiser = Callable[[torch.Tensor, torch.Tensor, dict], torch.Tensor]
Callback = Callable[[int, int, torch.Tensor], None]
SAMPLERS: tuple[str, ...] = ("dpm++", "ddim", "ddpm")
SamplerName = Literal["dpm++", "ddim", "ddpm"]


def _cat(a: dict, b: dict) -> dict:
    return {k: torch.cat([a[k], b[k]], dim=0) for k in a}


class Guided:
    """The network a sampler steps with: its output at a step, with classifier-free guidance (one
    batched pass), ``out = out_u + w (out_c - out_u)``, read as eps_hat and x0_hat (:meth:`predict`).
    The conditional and unconditional conditions are concatenated once, and the denoiser sees the
    same ``cond`` dict at every step (so a wrapper may cache what it derives from it).

    Parameters
    ----------
    denoiser : callable
        ``denoiser(x_t, t, cond) -> output``.
    cond, uncond : dict
        Batch-first condition tensors; ``uncond`` (the nulls) only with guidance.
    guidance : float
        Classifier-free guidance weight w (1: the conditional alone).
    prediction : {"eps", "x0", "v"}
        What the denoiser's output is.
    clip_x0 : float, optional
        Bound of the predicted clean data.
    """

    def __init__(self, denoiser: Denoiser, cond: dict, uncond: dict | None = None, guidance: float = 1.0,
                 prediction: str = "eps", clip_x0: float | None = None):
        self.denoiser, self.guidance, self.prediction, self.clip_x0 = denoiser, guidance, prediction, clip_x0
        self.plain = uncond is None or guidance == 1.0
        self.cond = cond if self.plain else _cat(cond, uncond)

    def predict(self, x: torch.Tensor, t: int, ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(eps_hat, x0_hat) at step ``t`` (``ab`` = alpha_bar_t)."""
        return predict(self.prediction, self(x, t), x, ab, self.clip_x0)

    def __call__(self, x: torch.Tensor, t: int) -> torch.Tensor:
        tt = torch.full((x.shape[0],), int(t), dtype=torch.long, device=x.device)
        if self.plain:
            return self.denoiser(x, tt, self.cond)
        out = self.denoiser(torch.cat([x, x]), torch.cat([tt, tt]), self.cond)
        out_c, out_u = out.chunk(2)
        return out_u + self.guidance * (out_c - out_u)


def predict(prediction: str, out: torch.Tensor, x: torch.Tensor, ab: torch.Tensor,
            clip_x0: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(eps_hat, x0_hat) from a network output; with ``clip_x0``, x0_hat is clipped to the data
    range and eps_hat recomputed from it (DDPM's clip_sample, DPM-Solver++'s thresholding): an
    eps error at high noise is multiplied by sqrt(1 - ab) / sqrt(ab), up to ~150 at t = T."""
    eps, x0 = to_eps_x0(prediction, out, x, ab)
    if clip_x0 is not None:
        x0 = x0.clamp(-clip_x0, clip_x0)
        abb = _bcast(ab, x)
        eps = (x - abb.sqrt() * x0) / (1 - abb).sqrt().clamp(min=1e-12)
    return eps, x0


def timesteps(schedule: Schedule, steps: int, t_start: int | None = None) -> list[int]:
    """``steps`` decreasing integer steps from ``t_start`` (default T - 1) to 0."""
    t0 = schedule.T - 1 if t_start is None else int(t_start)
    if not 0 <= t0 < schedule.T:
        raise DexterError(f"t_start must be in [0, {schedule.T - 1}], got {t0}")
    if steps < 1:
        raise DexterError(f"steps must be at least 1, got {steps}")
    ts = torch.linspace(t0, 0, min(steps, t0 + 1)).round().long().tolist()
    return sorted(set(ts), reverse=True)


def logsnr_timesteps(schedule: Schedule, steps: int, t_start: int | None = None) -> list[int]:
    """``steps`` decreasing integer steps from ``t_start`` to 0, uniform in
    ``lambda = log(alpha / sigma)`` (the spacing DPM-Solver recommends: consecutive
    step sizes ``h`` stay alike, so the multistep extrapolation stays tame)."""
    t0 = timesteps(schedule, 1, t_start)[0]
    if steps < 1:
        raise DexterError(f"steps must be at least 1, got {steps}")
    ab = schedule.alphas_cumprod
    lam = 0.5 * torch.log(ab / (1 - ab))  # increasing as t decreases
    targets = torch.linspace(lam[t0].item(), lam[0].item(), min(steps, t0 + 1), dtype=torch.float64)
    # lam is decreasing in t: find the step whose lambda is nearest each target
    ts = [int(torch.argmin((lam[: t0 + 1] - v).abs()).item()) for v in targets]
    return sorted(set(ts), reverse=True)


def randn(shape: tuple, generator: torch.Generator | None, device: torch.device | str = "cpu",
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal noise drawn on the generator's device, then moved to ``device``: a CPU
    generator gives the same noise whether the model runs on the CPU or a GPU."""
    where = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=where, dtype=dtype).to(device)


def _noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return randn(x.shape, generator, x.device, x.dtype)


@torch.no_grad()
def sample_ddpm(net: Guided, x: torch.Tensor, schedule: Schedule, *, steps: int | None = None,
                t_start: int | None = None, generator: torch.Generator | None = None,
                callback: Callback | None = None) -> torch.Tensor:
    """Ancestral DDPM sampling (Ho et al., 2020), every step from t_start to 0 (``steps`` is ignored).

    ``x_{t-1} = mu_t(x_t, x0_hat) + sigma_t z``, with the posterior
    ``mu_t = sqrt(ab_{t-1}) beta_t / (1 - ab_t) x0 + sqrt(alpha_t) (1 - ab_{t-1}) / (1 - ab_t) x_t``
    and ``sigma_t^2 = beta_t (1 - ab_{t-1}) / (1 - ab_t)``.
    """
    ts = list(range(schedule.T - 1 if t_start is None else int(t_start), -1, -1))
    for i, t in enumerate(ts):
        ab_t, ab_prev = schedule.ab(torch.tensor(t)), schedule.ab(torch.tensor(t - 1))
        _, x0 = net.predict(x, t, ab_t)
        beta = schedule.betas[t]
        c0 = ab_prev.sqrt() * beta / (1 - ab_t)
        ct = (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab_t)
        x = _bcast(c0, x) * x0 + _bcast(ct, x) * x
        if t > 0:
            var = beta * (1 - ab_prev) / (1 - ab_t)
            x = x + _bcast(var.sqrt(), x) * _noise(x, generator)
        if callback:
            callback(i, len(ts), x0)
    return x


@torch.no_grad()
def sample_ddim(net: Guided, x: torch.Tensor, schedule: Schedule, *, steps: int = 50, t_start: int | None = None,
                eta: float = 0.0, generator: torch.Generator | None = None,
                callback: Callback | None = None) -> torch.Tensor:
    """DDIM (Song et al., 2021); ``eta = 0`` deterministic, ``eta = 1`` DDPM-like.

    ``x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma^2) eps + sigma z``,
    ``sigma = eta sqrt((1 - ab_prev) / (1 - ab_t)) sqrt(1 - ab_t / ab_prev)``.
    """
    ts = timesteps(schedule, steps, t_start)
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        ab_t, ab_prev = schedule.ab(torch.tensor(t)), schedule.ab(torch.tensor(t_prev))
        eps, x0 = net.predict(x, t, ab_t)
        sigma = eta * ((1 - ab_prev) / (1 - ab_t)).sqrt() * (1 - ab_t / ab_prev).sqrt()
        x = _bcast(ab_prev.sqrt(), x) * x0 + _bcast((1 - ab_prev - sigma ** 2).clamp(min=0).sqrt(), x) * eps
        if eta > 0 and t_prev >= 0:
            x = x + _bcast(sigma, x) * _noise(x, generator)
        if callback:
            callback(i, len(ts), x0)
    return x


@torch.no_grad()
def sample_dpmpp_2m(net: Guided, x: torch.Tensor, schedule: Schedule, *, steps: int = 20, t_start: int | None = None,
                    generator: torch.Generator | None = None, callback: Callback | None = None) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al., 2022), multistep second order in the data (x0) prediction.

    With ``alpha = sqrt(ab)``, ``sigma = sqrt(1 - ab)``, ``lambda = log(alpha / sigma)`` and
    ``h = lambda_next - lambda``: ``x_next = (sigma_next / sigma) x - alpha_next (e^{-h} - 1) D``,
    ``D = (1 + 1 / 2r) x0_hat - (1 / 2r) x0_hat_prev``, ``r = h_prev / h`` (first order at the
    first and the last step, which lands on clean data). Steps are uniform in lambda.
    """
    ts = logsnr_timesteps(schedule, steps, t_start)
    old_x0, h_prev = None, None
    for i, t in enumerate(ts):
        t_next = ts[i + 1] if i + 1 < len(ts) else -1
        ab_t, ab_next = schedule.ab(torch.tensor(t)), schedule.ab(torch.tensor(t_next))
        _, x0 = net.predict(x, t, ab_t)
        if t_next < 0:  # sigma_next = 0: the first-order step lands on x0_hat
            x = x0
        else:
            a_t, s_t = ab_t.sqrt(), (1 - ab_t).sqrt()
            a_n, s_n = ab_next.sqrt(), (1 - ab_next).sqrt()
            h = torch.log(a_n / s_n) - torch.log(a_t / s_t)
            if old_x0 is None:
                d = x0
            else:
                r = h_prev / h
                d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * old_x0
            x = _bcast(s_n / s_t, x) * x - _bcast(a_n * torch.expm1(-h), x) * d
            h_prev = h
        old_x0 = x0
        if callback:
            callback(i, len(ts), x0)
    return x


def get_sampler(name: str) -> Callable[..., torch.Tensor]:
    """The sampler function called ``name`` (``dpm++``, ``ddim`` or ``ddpm``)."""
    table = {"dpm++": sample_dpmpp_2m, "ddim": sample_ddim, "ddpm": sample_ddpm}
    if name not in table:
        raise DexterError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")
    return table[name]
