"""Before/after of the delivered-MIDI evaluation: one split scored three ways.

    python scripts/research/delivered_before_after.py --data data/codec_N=300_mixup --split valid --out DIR

Modes (one ``dexter evaluate`` each, the renders shared through a cache so every mode scores the
same interpretations):

- ``codec``: the model's p_codec as the earlier evaluation scored it (no file, no projection);
- ``old-decode``: the MIDI file as the earlier decode wrote it (timing not centred per onset);
- ``delivered``: the MIDI file that ``dexter render`` writes now.

Writes ``DIR/<mode>/results.json`` and ``DIR/before_after.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import dexter_cli.data.decode as decode
import dexter_cli.evaluation as evaluation
from dexter_cli.evaluation.baselines import DexterRenderer

MODE = os.environ.get("DELIVERED_MODE", "delivered")
CACHE = os.environ.get("DELIVERED_CACHE")

if MODE in ("codec", "old-decode"):
    _project = decode.project_codec

    def _uncentred(onset_beat, p_codec):
        out = _project(onset_beat, p_codec)
        out[:, 2] = np.clip(np.nan_to_num(np.asarray(p_codec, dtype=np.float64)[:, 2]), -5.0, 5.0)
        return out

    decode.project_codec = _uncentred
if MODE == "codec":
    evaluation.delivered = lambda piece, perf: perf

if CACHE:
    _call = DexterRenderer.__call__

    def _cached(self, piece):
        path = Path(CACHE) / (hashlib.sha1(piece.key.encode()).hexdigest()[:16] + ".npz")
        if path.is_file():
            from dexter_cli.evaluation.metrics import Performance

            p = np.load(path)["p"]
            perfs = [Performance(pk, np.ones(len(pk), dtype=bool)) for pk in p]
            return perfs[0] if len(perfs) == 1 else perfs
        out = _call(self, piece)
        perfs = out if isinstance(out, list) else [out]
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, p=np.stack([q.p_codec for q in perfs]))
        os.replace(tmp, path)
        return out

    DexterRenderer.__call__ = _cached


KEYS = ("tempo_r", "tempo_dev", "velocity_r", "velocity_dev", "timing_kl", "async_delta_dev", "async_delta_kl",
        "async_pitch_cor_dev", "articulation_kl", "kor_dev", "kor_kl", "pedal_kl", "pedal_onset_kl", "voicing_r")


def _table(out: Path, split: str) -> str:
    res = {m: json.loads((out / m / "results.json").read_text()) for m in ("codec", "old-decode", "delivered")}
    lines = [f"### {split} split ({res['delivered']['summary']['dexter']['pieces']} pieces)", "",
             "| metric | human (LOO) | dexter codec | dexter old decode | dexter delivered | deadpan delivered | linear delivered |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    f = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    for k in KEYS:
        s = {m: res[m]["summary"] for m in res}
        lines.append(f"| {k} | {f(s['delivered']['human'][k])} | {f(s['codec']['dexter'][k])} | "
                     f"{f(s['old-decode']['dexter'][k])} | {f(s['delivered']['dexter'][k])} | "
                     f"{f(s['delivered']['deadpan'][k])} | {f(s['delivered']['linear'][k])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="valid")
    ap.add_argument("--out", required=True)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    out = Path(args.out)
    cache = out / "renders"
    cache.mkdir(parents=True, exist_ok=True)
    for mode in ("delivered", "old-decode", "codec"):
        if (out / mode / "results.json").is_file():
            continue
        env = {**os.environ, "DELIVERED_MODE": mode, "DELIVERED_CACHE": str(cache.resolve())}
        # this file runs again as the evaluation's parent: its patches above apply there and, since
        # spawned workers import the parent's main file, in every worker too
        subprocess.run([sys.executable, __file__, "evaluate", "--data", args.data, "--split", args.split,
                        "-r", "dexter,deadpan,linear", "--samples", str(args.samples), "--seed", "0",
                        "--workers", str(args.workers), "--out", str(out / mode), "-q"], env=env, check=True)
    (out / "before_after.md").write_text(_table(out, args.split))
    print((out / "before_after.md").read_text())


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "evaluate":
        from dexter_cli.cli import main as dexter

        dexter(sys.argv[1:])
    else:
        main()
