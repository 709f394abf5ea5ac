"""Interpolate two inference checkpoints in weight space (WiSE-FT, Wortsman et al. 2022).

    python scripts/research/interpolate_checkpoints.py START FINETUNED OUT --lam 0.5

Writes ``(1 - lam) * START + lam * FINETUNED`` for every weight tensor, with START's config. Only
meaningful when FINETUNED was trained from START (``dexter train --init-from START``): the two must
share the model config, task, codec (version, names, normalisation statistics) and prior weights,
which this script checks, so the result diffuses around the same mu(s) as both.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from dexter_cli.checkpoint import export_inference, load_inference
from dexter_cli.errors import DexterError

SHARED = ("model", "task", "codec")


def interpolate(start: Path, finetuned: Path, lam: float) -> tuple[dict, dict]:
    """Weights ``(1 - lam) * start + lam * finetuned`` and the config to save them with.

    Raises
    ------
    DexterError
        The two checkpoints differ in model, task or codec, or in their tensors' names or shapes.
    """
    a, cfg_a = load_inference(start)
    b, cfg_b = load_inference(finetuned)
    for key in SHARED:
        if cfg_a.get(key) != cfg_b.get(key):
            raise DexterError(f"{start} and {finetuned} differ in {key!r}: not one basin to interpolate in")
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        raise DexterError(f"{start} and {finetuned} have different tensors")
    state = {k: torch.lerp(a[k].double(), b[k].double(), lam).to(a[k].dtype) for k in a}
    config = dict(cfg_a)  # export_inference writes its own format and checksum
    config["training"] = {**cfg_a["training"], "interpolated": {
        "start": str(start), "start_step": cfg_a["training"].get("step"),
        "finetuned": str(finetuned), "finetuned_step": cfg_b["training"].get("step"), "lam": lam}}
    return state, config


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("start")
    ap.add_argument("finetuned")
    ap.add_argument("out")
    ap.add_argument("--lam", type=float, required=True, help="weight of FINETUNED, 0..1")
    args = ap.parse_args()
    if not 0.0 <= args.lam <= 1.0:
        raise SystemExit("--lam must lie in 0..1")
    state, config = interpolate(Path(args.start), Path(args.finetuned), args.lam)
    export_inference(Path(args.out), state, config)
    print(f"wrote {args.out}: (1 - {args.lam}) * {args.start} + {args.lam} * {args.finetuned}")


if __name__ == "__main__":
    main()
