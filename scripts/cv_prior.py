"""Cross-validate the ridge priors over the train pieces: per-note (`linear`) against `context`.

    python scripts/cv_prior.py [--data data/codec_N=300_mixup] [--folds 5]

The valid split (11 pieces) and the test split (17) are small enough that one piece more or
less moves a median by the size of the differences between candidates. This refits both
ridges K times, each time without one fold of the train pieces, and scores every train piece
once, against all its human performances (as ``dexter evaluate``), with the ridges that did
not see it. Prints the medians over pieces and the paired per-piece differences.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from dexter_cli.data.store import CodecStore
from dexter_cli.evaluate import Performance
from dexter_cli.evaluation import _nanmedian, evaluate_piece
from dexter_cli.model.normalize import CodecNormalizer, prior_features
from dexter_cli.pieces import store_pieces
from dexter_cli.prior import CONTEXT_WIDTHS


def fit(st: CodecStore, idx: np.ndarray, context: tuple[int, ...], alpha: float = 1.0) -> np.ndarray:
    """Ridge weights on the played notes of segments ``idx`` (all of them, no row sampling)."""
    norm = CodecNormalizer(st.meta["stats"])
    m, s_rows, S = torch.from_numpy(np.asarray(st.mask)[idx]), np.asarray(st.s_index)[idx], np.asarray(st.s_codec)
    A = B = 0
    for a in range(0, len(idx), 256):
        sl = slice(a, a + 256)
        s = norm.encode_s(torch.from_numpy(np.array(S[np.maximum(s_rows[sl], 0)], dtype=np.float32)))
        X = prior_features(s, m[sl], context)[m[sl]].double()
        Y = norm.encode_p(torch.from_numpy(np.array(st.p_codec[idx[sl]], dtype=np.float32)))[m[sl]].double()
        A, B = A + X.T @ X, B + X.T @ Y
    A = A.numpy() + alpha * np.eye(A.shape[0])
    A[-1, -1] -= alpha  # the bias is not shrunk
    return np.linalg.solve(A, B.numpy())


class Ridge:
    def __init__(self, stats: dict, W: np.ndarray, context: tuple[int, ...]):
        self.norm = CodecNormalizer({**stats, "prior_weights": W.tolist(), "prior_context": list(context)})

    def __call__(self, piece) -> Performance:
        z = self.norm.prior(self.norm.encode_s(torch.from_numpy(np.array(piece.s_codec, dtype=np.float32))))
        return Performance(self.norm.decode_p(z).numpy(), np.ones(len(z), dtype=bool))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/codec_N=300_mixup")
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    st = CodecStore(args.data)
    idx = st.split_indices("train", synthetic=False)
    seg_offset = np.array([st.scores[st.score_of(int(i))]["offset"] for i in idx])
    pieces = store_pieces(st, "train")
    rows, t0 = [], time.perf_counter()
    for f in range(args.folds):
        held = [p for k, p in enumerate(pieces) if k % args.folds == f]
        keep = idx[~np.isin(seg_offset, [p.entry["offset"] for p in held])]
        made = {"linear": Ridge(st.meta["stats"], fit(st, keep, ()), ()),
                "context": Ridge(st.meta["stats"], fit(st, keep, CONTEXT_WIDTHS), CONTEXT_WIDTHS)}
        for p in held:
            rows += evaluate_piece(p, made)[0]
        print(f"fold {f + 1}/{args.folds}: {len(held)} pieces, {time.perf_counter() - t0:.0f} s", flush=True)
    for name in ("human", "linear", "context"):
        rr = [r for r in rows if r["renderer"] == name]
        print(name, {k: round(_nanmedian([r[k] for r in rr]), 3) for k in ("tempo_r", "velocity_r", "tempo_kl", "velocity_kl")})
    by: dict = {}
    for r in rows:
        by.setdefault(r["piece"], {})[r["renderer"]] = r
    for metric in ("tempo_r", "velocity_r"):
        d = np.array([v["context"][metric] - v["linear"][metric] for v in by.values()])
        d = d[np.isfinite(d)]
        print(f"{metric} context - linear: median {np.median(d):.3f}, mean {d.mean():.3f}, better on {(d > 0).sum()} of {len(d)} pieces")


if __name__ == "__main__":
    main()
