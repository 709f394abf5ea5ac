"""Does the mean of K sampled interpretations play closer to the humans than one sample?

    python scripts/research/sample_mean.py [--split valid] [--samples 8] [--temperature 1] [--checkpoint DIR]

Renders K interpretations of every piece of a split in one batched run (as ``dexter render
-n K``) and scores, against every human performance of the piece (as ``dexter evaluate``),
the first sample, the per-note mean of the first four and the mean of all K (geometric mean of
beat_period, arithmetic of the other rows): an estimate of the model's posterior mean E[p | s],
which a low sampling temperature only approximates. Prints the medians over pieces of tempo r,
velocity r, tempo KL and velocity KL.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from dexter_cli.data.store import CodecStore
from dexter_cli.evaluation.metrics import Performance, score_against_humans
from dexter_cli.evaluation.pieces import store_pieces
from dexter_cli.evaluation.baselines import DexterRenderer

KEYS = ("tempo_r", "velocity_r", "tempo_kl", "velocity_kl")


def sample_mean(p: np.ndarray) -> np.ndarray:
    """Per-note mean of samples ``p`` (K, n, 5): geometric for beat_period, arithmetic otherwise."""
    out = p.mean(0)
    out[:, 0] = np.exp(np.log(p[:, :, 0]).mean(0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/codec_N=300_mixup")
    ap.add_argument("--split", default="valid")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--guidance", type=float, default=1.0)
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: the bundled model")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    renderer = DexterRenderer(args.checkpoint, guidance=args.guidance, temperature=args.temperature,
                              samples=args.samples, seed=0)
    rows: dict[str, list] = {"one sample": [], "mean of 4": [], f"mean of {args.samples}": []}
    t0 = time.perf_counter()
    for piece in store_pieces(CodecStore(args.data), args.split):
        if not piece.humans:
            continue
        out = renderer(piece)
        p = np.stack([x.p_codec for x in (out if isinstance(out, list) else [out])])
        ones = np.ones(p.shape[1], dtype=bool)
        for name, pc in zip(rows, (p[0], sample_mean(p[:4]), sample_mean(p))):
            s = score_against_humans(piece.onset_beat, Performance(pc, ones), piece.humans)
            rows[name].append([s[k] for k in KEYS])
    print(f"{args.split} split, w {args.guidance}, temperature {args.temperature}, "
          f"{time.perf_counter() - t0:.0f} s; medians over pieces of {', '.join(KEYS)}")
    for name, values in rows.items():
        print(f"{name:>12}: {len(values)} pieces", np.round(np.nanmedian(np.array(values, dtype=float), 0), 3))


if __name__ == "__main__":
    main()
