"""Does the tempo_level control set the rendered tempo level? A diagnostic on the valid split.

    python scripts/research/tempo_level_control.py --data data/codec_N=300_mixup [--split valid] [--limit N]

For each piece, the bundled model renders with no control and with ``tempo_level`` set to the
humans' median tempo level (an oracle: the value a perfect reading of the score would give). Each
delivered file's tempo level is compared with the humans' (dexter_cli.evaluation.levels). If the
oracle brings the error near the humans' own, a predictor of the level from the score, used as
the control's value, is a lever; if not, the network does not realise the control.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from dexter_cli.data.store import CodecStore
from dexter_cli.engine import load_expression
from dexter_cli.evaluation.baselines import DexterRenderer
from dexter_cli.evaluation.levels import level_metrics, tempo_level
from dexter_cli.evaluation.pieces import store_pieces
from dexter_cli.evaluation.runner import delivered


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/codec_N=300_mixup")
    ap.add_argument("--split", default="valid")
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    loaded = load_expression(None)
    norm = loaded[0].norm
    j = list(loaded[1]["codec"]["c_codec_names"]).index("tempo_level")
    mean, std = norm.c_mean[j].item(), norm.c_std[j].item()
    rows = []
    for piece in store_pieces(CodecStore(args.data), args.split, args.limit):
        levels = [tempo_level(piece.onset_beat, h) for h in piece.humans]
        oracle = float(np.median(levels))
        out = {"piece": piece.key, "humans_bpm": [round(x, 1) for x in levels]}
        for name, controls in (("free", []), ("oracle", [f"tempo_level={(oracle - mean) / std:.4f}"])):
            perf = delivered(piece, DexterRenderer(loaded, {"controls": controls})(piece))
            m = level_metrics(piece.onset_beat, perf, piece.humans)
            out[name] = {"bpm": round(tempo_level(piece.onset_beat, perf), 1), "err": round(m["tempo_level_err"], 3),
                         "in_range": m["tempo_level_in_range"]}
        rows.append(out)
        print(json.dumps(out), flush=True)
    for name in ("free", "oracle"):
        errs = [r[name]["err"] for r in rows]
        print(f"{name}: median |log2| {np.median(errs):.3f}, in range {np.mean([r[name]['in_range'] for r in rows]):.2f}")


if __name__ == "__main__":
    main()
