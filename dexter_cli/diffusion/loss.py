"""DExter's training loss: L1 on the diffusion target plus per-row L2 reconstruction on x0."""

from __future__ import annotations

import torch

from .schedule import _bcast, to_eps_x0, training_target


def masked_mean(x: torch.Tensor, mask: torch.Tensor, notes: float | None = None) -> torch.Tensor:
    """Mean of ``x`` (B, N, ...) over entries where ``mask`` (B, N) is 1; with ``notes``, the sum
    over them divided by ``notes`` times the entries per note instead (a share of a larger mean)."""
    m = mask.to(x.dtype)
    while m.dim() < x.dim():
        m = m.unsqueeze(-1)
    m = m.expand_as(x)
    per_note = m[0, 0].numel() if m.dim() > 2 else 1
    return (x * m).sum() / (m.sum().clamp(min=1.0) if notes is None else max(float(notes), 1.0) * per_note)


def diffusion_loss(
    out: torch.Tensor,
    x0: torch.Tensor,
    x_t: torch.Tensor,
    noise: torch.Tensor,
    ab: torch.Tensor,
    mask: torch.Tensor,
    prediction: str = "eps",
    recon_weight: float = 0.2,
    notes: float | None = None,
) -> dict[str, torch.Tensor]:
    """The masked loss of one batch.

    Parameters
    ----------
    out : (B, N, D)
        Network output.
    x0, x_t, noise : (B, N, D)
        Clean target, its noised version, the noise used.
    ab : (B,)
        alpha_bar_t of each item.
    mask : (B, N)
        1 where a note is real and was played.
    prediction : {"eps", "x0", "v"}
    recon_weight : float
        Weight of the per-row L2 reconstruction of x0 (DExter: 0.2), each item's
        squared error weighted by its alpha_bar_t.
    notes : float, optional
        The number of played notes the means are over (default the mask's): a micro-batch or one
        process's share of a batch passes the whole batch's.

    Returns
    -------
    dict
        ``loss`` (total), ``diffusion`` (L1), ``recon`` (sum of the per-row L2s) and
        ``recon_<row index>``.
    """
    target = training_target(prediction, x0, noise, ab)
    l1 = masked_mean((out - target).abs(), mask, notes)
    _, x0_hat = to_eps_x0(prediction, out, x_t, ab)
    # weighted by alpha_bar_t: with eps-prediction the x0 error is eps error * sqrt(1-ab)/sqrt(ab),
    # unbounded near t = T; the weight keeps it bounded while the low-noise steps count fully
    w = _bcast(ab, x0[..., 0])
    rows = {f"recon_{r}": masked_mean(w * (x0_hat[..., r] - x0[..., r]) ** 2, mask, notes) for r in range(x0.shape[-1])}
    recon = torch.stack(list(rows.values())).sum()
    return {"loss": l1 + recon_weight * recon, "diffusion": l1, "recon": recon, **rows}


__all__ = ["diffusion_loss", "masked_mean", "_bcast"]
