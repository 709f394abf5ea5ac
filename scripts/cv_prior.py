"""Cross-validate the ridge priors over the train pieces: per-note (`linear`) against `context`.

    python scripts/cv_prior.py [--data data/codec_N=300_mixup] [--folds 5] [--variant NAME=WIDTHS@ALPHA[+HIDDEN][/within] ...]

``--variant`` adds a ridge to compare (repeatable): ``wide=8,32,128,512@1`` is the context
ridge over those widths with ridge penalty 1, ``stiff=@100`` the per-note ridge with penalty
100, ``mlp=8,32,128@100000+128`` the context ridge with penalty 1e5 corrected by a prior
network of width 128 (``task.prior: mlp``); a ``/within`` suffix fits the ridge within performances
(``task.prior_fit: within``). Each variant is compared with ``linear`` piece by piece.

The valid split (11 pieces) and the test split (17) are small enough that one piece more or
less moves a median by the size of the differences between candidates. This refits every
ridge K times, each time without one fold of the train pieces, and scores every train piece
once, against all its human performances (as ``dexter evaluate``), with the ridges that did
not see it. Prints the medians over pieces and the paired per-piece differences.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dexter_cli.data.store import CodecStore
from dexter_cli.evaluation import _nanmedian, evaluate_piece
from dexter_cli.pieces import store_pieces
from dexter_cli.prior import CONTEXT_WIDTHS
from dexter_cli.renderers import LinearRenderer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/codec_N=300_mixup")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--variant", action="append", default=[], help="NAME=WIDTHS@ALPHA[+HIDDEN][/within], e.g. wide=8,32,128,512@1")
    args = ap.parse_args()
    variants = {"linear": ((), 1.0, 0, False), "context": (CONTEXT_WIDTHS, 1.0, 0, False)}
    for spec in args.variant:
        name, rest = spec.split("=", 1)
        within = rest.endswith("/within")
        rest = rest.removesuffix("/within")
        rest, hidden = rest.split("+") if "+" in rest else (rest, "0")
        widths, alpha = rest.split("@") if "@" in rest else (rest, "1")
        variants[name] = (tuple(int(w) for w in widths.split(",") if w), float(alpha), int(hidden), within)
    st = CodecStore(args.data)
    idx = st.split_indices("train", synthetic=False)
    seg_offset = np.array([st.scores[st.score_of(int(i))]["offset"] for i in idx])
    pieces = store_pieces(st, "train")
    rows, t0 = [], time.perf_counter()
    for f in range(args.folds):
        held = [p for k, p in enumerate(pieces) if k % args.folds == f]
        keep = idx[~np.isin(seg_offset, [p.entry["offset"] for p in held])]
        made = {name: LinearRenderer(st, alpha=alpha, max_rows=None, context=context, segments=keep, net_hidden=hidden,
                                     within=within)
                for name, (context, alpha, hidden, within) in variants.items()}
        for p in held:
            rows += evaluate_piece(p, made)[0]
        print(f"fold {f + 1}/{args.folds}: {len(held)} pieces, {time.perf_counter() - t0:.0f} s", flush=True)
    for name in ("human", *variants):
        rr = [r for r in rows if r["renderer"] == name]
        print(name, {k: round(_nanmedian([r[k] for r in rr]), 3) for k in ("tempo_r", "velocity_r", "tempo_kl", "velocity_kl")})
    by: dict = {}
    for r in rows:
        by.setdefault(r["piece"], {})[r["renderer"]] = r
    for name in list(variants)[1:]:
        for metric in ("tempo_r", "velocity_r"):
            d = np.array([v[name][metric] - v["linear"][metric] for v in by.values()])
            d = d[np.isfinite(d)]
            print(f"{metric} {name} - linear: median {np.median(d):.3f}, mean {d.mean():.3f}, "
                  f"better on {(d > 0).sum()} of {len(d)} pieces")


if __name__ == "__main__":
    main()
