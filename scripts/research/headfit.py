"""Refit a trained denoiser's output layer by least squares on its frozen features.

The denoiser ends in a 1x1 convolution ``out`` (one row of weights per p_codec row) over the
features phi of its trunk, initialised at zero. A checkpoint is the exponential moving average
(EMA) of the weights, and after a short run that average still holds part of the zero start
(0.999^2000 = 13.5 % for dexter-default-v9) and of the trunk's random one: the averaged output
comes out shrunk. Measured on v9, the least-squares slope of the training target on its output
is 1.3 to 1.7 per row, where an unshrunk predictor gives about 1, and its timing and chord
asynchrony came out far too narrow (MODEL_CARD.md).

With the trunk frozen, the output rows are a linear regression of the training target (for
``prediction: v``, v = sqrt(ab) eps - sqrt(1 - ab) x0) on [phi, 1]. Its normal equations are summed
over the training distribution, every segment of a split drawn with a random step t, noise and
condition dropout exactly as :meth:`dexter_cli.engine.Expression.loss` draws them, and solved with
a small ridge. Least squares, where training minimised an L1 loss: the refit reads the trunk for
the conditional mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from dexter_cli.data.dataset import SegmentSet
from dexter_cli.diffusion.schedule import training_target
from dexter_cli.engine import Expression
from dexter_cli.errors import DexterError


@dataclass
class NormalEquations:
    """Sums over the drawn notes: A = X'X and B = X'Y for X = [phi, 1] and Y the target, and per
    p_codec row the sums of output x target, output^2 and target^2 of the current output layer."""

    A: torch.Tensor  # (C + 1, C + 1) float64
    B: torch.Tensor  # (C + 1, p_dim)
    oy: torch.Tensor  # (p_dim,)
    oo: torch.Tensor  # (p_dim,)
    yy: torch.Tensor  # (p_dim,)
    notes: int

    def slope(self) -> torch.Tensor:
        """Least-squares slope of the target on the current output, per row (1: not shrunk)."""
        return self.oy / self.oo.clamp(min=1e-12)

    def mse(self, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Mean squared error per row of an output layer (weight (p_dim, C), bias (p_dim,)) on these notes."""
        W = torch.cat([weight.T, bias[None]], 0).double()  # (C + 1, p_dim)
        sse = torch.einsum("ir,ij,jr->r", W, self.A, W) - 2 * (W * self.B).sum(0) + self.yy
        return sse / max(self.notes, 1)


def output_layer(expr: Expression) -> tuple[torch.Tensor, torch.Tensor]:
    """The current output layer as (weight (p_dim, C), bias (p_dim,)), detached."""
    out = expr.model.out
    return out.weight[:, :, 0].detach().clone(), out.bias.detach().clone()


def normal_equations(expr: Expression, segments: SegmentSet, *, passes: int = 1, batch_size: int = 32,
                     seed: int = 0, progress: Callable[[int, int], None] | None = None) -> NormalEquations:
    """Sum the output layer's normal equations over ``passes`` draws of every segment.

    Parameters
    ----------
    expr : Expression
        Its model is run in eval mode, without gradients.
    segments : SegmentSet
        E.g. the train split with its mixup segments, as the model was trained on.
    passes : int
        Each pass visits every segment once, in an order drawn from ``seed``, with new t, noise
        and dropout.
    batch_size, seed : int
    progress : callable, optional
        Called with (batches done, batches in all).

    Returns
    -------
    NormalEquations

    Raises
    ------
    DexterError
        No segments, or a transfer model (its x_T is a source performance, not noise).
    """
    if len(segments) == 0:
        raise DexterError("no segments to refit the output layer on")
    if expr.target != "gen_noise":
        raise DexterError("the output layer refit supports gen_noise models only")
    model = expr.model
    model.eval()
    C, D = model.out.in_channels, model.out.out_channels
    A = torch.zeros(C + 1, C + 1, dtype=torch.float64)
    B = torch.zeros(C + 1, D, dtype=torch.float64)
    oy, oo, yy = (torch.zeros(D, dtype=torch.float64) for _ in range(3))
    notes = 0
    g = torch.Generator().manual_seed(seed)
    per_pass = -(-len(segments) // batch_size)
    feats: dict[str, torch.Tensor] = {}
    hook = model.out.register_forward_hook(lambda mod, inp, out: feats.__setitem__("phi", inp[0]))
    try:
        for p in range(passes):
            order = torch.randperm(len(segments), generator=g).numpy()
            for k, a in enumerate(range(0, len(order), batch_size)):
                with torch.no_grad():
                    d = expr.training_draw(segments.batch(order[a:a + batch_size]), g)  # as the loss draws
                    out = expr.denoise(d["x_t"], d["t"], d["cond"])
                    y = training_target(expr.prediction, d["x0"], d["noise"], d["ab"])
                m = d["cond"]["mask"].bool()
                phi = feats["phi"].transpose(1, 2)[m]  # (notes, C)
                X = torch.cat([phi, torch.ones(len(phi), 1)], 1).double()
                Y, O = y[m].double(), out[m].double()
                A += X.T @ X
                B += X.T @ Y
                oy += (O * Y).sum(0)
                oo += (O * O).sum(0)
                yy += (Y * Y).sum(0)
                notes += len(X)
                if progress is not None:
                    progress(p * per_pass + k + 1, passes * per_pass)
    finally:
        hook.remove()
    return NormalEquations(A, B, oy, oo, yy, notes)


def solve_output_layer(eq: NormalEquations, ridge: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """The least-squares output layer (weight (p_dim, C), bias (p_dim,)), float64 (a model state
    casts it on assignment), with a ridge penalty of ``ridge`` times the mean diagonal of X'X on
    every coefficient."""
    lam = ridge * torch.trace(eq.A) / len(eq.A)
    W = torch.linalg.solve(eq.A + lam * torch.eye(len(eq.A), dtype=eq.A.dtype), eq.B)
    return W[:-1].T.contiguous(), W[-1].contiguous()


def check_rows(rows: Sequence[int], p_dim: int, what: str = "rows to refit") -> None:
    """Raise a DexterError (naming ``what``) unless ``rows`` are distinct output rows in 0..p_dim - 1."""
    if not rows or any(not 0 <= r < p_dim for r in rows) or len(set(rows)) < len(rows):
        raise DexterError(f"{what} must be distinct p_codec rows in 0..{p_dim - 1}, got {list(rows)}")


def with_output_rows(state: dict[str, torch.Tensor], rows: Sequence[int], weight: torch.Tensor,
                     bias: torch.Tensor) -> dict[str, torch.Tensor]:
    """A copy of a model state whose output layer has ``rows`` from (weight, bias) and its other
    rows unchanged.

    Raises
    ------
    DexterError
        A row outside the output layer, or a row given twice.
    """
    check_rows(rows, state["out.bias"].shape[0])
    new = {k: v.clone() for k, v in state.items()}
    for r in rows:
        new["out.weight"][r, :, 0] = weight[r]
        new["out.bias"][r] = bias[r]
    return new


__all__ = ["NormalEquations", "check_rows", "normal_equations", "output_layer", "solve_output_layer", "with_output_rows"]
