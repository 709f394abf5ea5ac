"""Choose task.prior_level_alpha for ``task.prior: level`` on the valid split, by a rule fixed before
the run: the penalty in {300, 3000, 30000} whose prior alone gives the lowest median over valid pieces
of |log2(prior's tempo level / median of the humans' levels)|, the levels read from the codec
(median beat period of a performance's played notes; the prior's over one performance's segments).
Ties (within 0.005) go to the larger penalty.

    python scripts/research/level_prior_alpha.py data/codec_N=300_mixup
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from dexter_cli.data.codec import Row
from dexter_cli.data.store import CodecStore
from dexter_cli.model.normalize import CodecNormalizer
from dexter_cli.prior import Prior

ALPHAS = (300.0, 3000.0, 30000.0)


def levels(store: CodecStore, norm: CodecNormalizer, prior: Prior, idx: np.ndarray) -> dict[str, tuple]:
    """Per piece: (the prior's log tempo level, the humans' log tempo levels, the prior's velocity
    level, the humans'), tempo in log2 seconds per beat, velocity in MIDI."""
    perf, pieces = np.asarray(store.seg_perf)[idx], [store.index[int(i)]["piece"] for i in idx]
    S, M, SI = np.asarray(store.s_codec), np.asarray(store.mask), np.asarray(store.s_index)
    mu_rows, y_rows = {}, {}
    for i, seg in enumerate(idx):
        m = torch.from_numpy(M[seg][None])
        s = norm.encode_s(torch.from_numpy(np.array(S[np.maximum(SI[seg], 0)], dtype=np.float32))[None])
        mu = norm.decode_p(prior(s, m))[0][m[0]].numpy()
        y = np.asarray(store.p_codec[seg])[M[seg]]
        key = (pieces[i], int(perf[i]))
        mu_rows.setdefault(key, []).append(mu)
        y_rows.setdefault(key, []).append(y)
    out: dict[str, tuple] = {}
    for piece in sorted(set(pieces)):
        keys = [k for k in mu_rows if k[0] == piece]
        mu = np.concatenate(mu_rows[keys[0]])
        ys = [np.concatenate(y_rows[k]) for k in keys]
        out[piece] = (np.log2(np.median(mu[:, Row.BEAT_PERIOD])),
                      np.array([np.log2(np.median(y[:, Row.BEAT_PERIOD])) for y in ys]),
                      127 * np.median(mu[:, Row.VELOCITY]), np.array([127 * np.median(y[:, Row.VELOCITY]) for y in ys]))
    return out


def main(path: str) -> None:
    store = CodecStore(path)
    norm = CodecNormalizer(store.meta["stats"])
    valid = store.split_indices("valid", synthetic=False)
    scores = {}
    for alpha in (None, *ALPHAS):
        prior = Prior.fit(store, alpha=1e5, level_alpha=alpha)
        lv = levels(store, norm, prior, valid)
        err = [abs(p - np.median(h)) for p, h, _, _ in lv.values()]
        inside = [h.min() - np.log2(1.1) <= p <= h.max() + np.log2(1.1) for p, h, _, _ in lv.values()]
        verr = [abs(p - np.median(h)) for _, _, p, h in lv.values()]
        print(f"level_alpha {alpha}: tempo |log2| median {np.median(err):.3f}, in range {np.mean(inside):.0%} "
              f"of {len(err)} pieces; velocity |err| median {np.median(verr):.2f} MIDI", flush=True)
        if alpha is not None:
            scores[alpha] = float(np.median(err))
    best = min(scores.values())
    print("chosen:", max(a for a, v in scores.items() if v <= best + 0.005))


if __name__ == "__main__":
    main(sys.argv[1])
