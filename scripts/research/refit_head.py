"""Refit an inference checkpoint's output layer by least squares on its frozen trunk.

    python scripts/research/refit_head.py CHECKPOINT OUT [--rows 2,3] [--data data/codec_N=300_mixup]
                                 [--passes 1] [--seed 0] [--ridge 1e-3] [--name NAME] [--max-segments N]

A short run's weight average comes out shrunk (``scripts/research/headfit.py``). This sums the output
layer's normal equations over the store's train segments (mixup included, as the model trained),
each drawn with a random step, noise and condition dropout, solves them, and writes CHECKPOINT
with the chosen output rows replaced (p_codec rows: 0 beat_period, 1 velocity, 2 timing,
3 articulation_log, 4 pedal); every other weight, the codec, the prior and the sampling defaults
are kept. It prints the slope of the target on the old output per row, and the old and new mean
squared error on the valid segments (a fresh draw). dexter-default-v11 is dexter-default-v9 with
rows 2,3 refitted by this command with its defaults; v10 also refitted row 4 (pedal), which spread the
pedal onsets away from the humans' (MODEL_CARD.md).
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np

from dexter_cli.checkpoint import export_inference
from dexter_cli.data.codec import P_CODEC_NAMES
from dexter_cli.data.dataset import SegmentSet
from dexter_cli.data.store import CodecStore
from dexter_cli.engine import load_expression
from dexter_cli.errors import DexterError
from headfit import check_rows, normal_equations, output_layer, solve_output_layer, with_output_rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--rows", default="2,3", help="p_codec rows to refit (0 beat_period ... 4 pedal)")
    ap.add_argument("--data", type=Path, default=Path("data/codec_N=300_mixup"))
    ap.add_argument("--passes", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ridge", type=float, default=1e-3)
    ap.add_argument("--name", default=None, help="the model name recorded in the config (default: the source's + '-head')")
    ap.add_argument("--max-segments", type=int, default=None,
                    help="draw at most this many train segments (with --seed), to bound the time on a large store")
    args = ap.parse_args()
    rows = [int(r) for r in args.rows.split(",")]
    check_rows(rows, len(P_CODEC_NAMES), "--rows")  # before the long draw
    expr, source_config = load_expression(str(args.checkpoint))
    store = CodecStore(args.data)
    if list(store.meta["s_codec_names"]) != list(source_config["codec"]["s_codec_names"]):
        raise DexterError(f"{args.data} holds another codec than {args.checkpoint}")
    t0 = time.perf_counter()

    def report(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            print(f"\r{done}/{total} batches, {time.perf_counter() - t0:.0f} s", end="", flush=True)

    train = SegmentSet(store, "train", synthetic=True)
    if args.max_segments is not None and len(train) > args.max_segments:
        train.indices = np.sort(np.random.default_rng(args.seed).choice(train.indices, args.max_segments, replace=False))
    eq = normal_equations(expr, train, passes=args.passes, seed=args.seed, progress=report)
    print(f"\n{eq.notes} notes drawn")
    weight, bias = solve_output_layer(eq, args.ridge)
    old = output_layer(expr)
    new_w, new_b = old[0].double(), old[1].double()
    new_w[rows], new_b[rows] = weight[rows], bias[rows]
    held = SegmentSet(store, "valid", synthetic=False)
    valid = normal_equations(expr, held, seed=args.seed + 1) if len(held) else None
    for r, name in enumerate(P_CODEC_NAMES):
        mse = (f"valid MSE {float(valid.mse(*old)[r]):.4f} -> {float(valid.mse(new_w, new_b)[r]):.4f}"
               if valid is not None else "no valid segments")
        print(f"{name:18s} slope {float(eq.slope()[r]):.3f}  {mse}{'' if r in rows else ' (kept)'}")
    state = expr.model.state_dict()  # the network's tensors, as loaded (with_output_rows copies them)
    config = copy.deepcopy(source_config)
    facts = config.setdefault("training", {})
    source = facts.get("name", str(args.checkpoint))
    facts.update({"name": args.name or f"{source}-head", "head_refit": {
        "from": source, "rows": rows, "data": str(args.data), "passes": args.passes, "seed": args.seed,
        "ridge": args.ridge, "max_segments": args.max_segments, "notes": eq.notes, "slope_before": [round(float(s), 4) for s in eq.slope()],
        "seconds": round(time.perf_counter() - t0, 1)}})
    prior = expr.prior.state_dict() if expr.prior is not None else {}  # the prior mean travels with the weights
    export_inference(args.out, {**with_output_rows(state, rows, weight, bias), **prior}, config)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
