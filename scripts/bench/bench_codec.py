"""Benchmark `dexter codec` (1 and 2 workers) and `dexter pair` on the whole shared data set.

Runs each configuration in a fresh process (``/usr/bin/time``-style peak memory from
``resource``), several times, and prints medians. Usage:

    python scripts/bench/bench_codec.py [--datasets-root ../shared/datasets] [--runs 2] [--out bench_out]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets-root", default=os.environ.get("DEXTER_DATASETS", "../shared/datasets"))
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--out", default="bench_out")
    ap.add_argument("--workers", default="1,2")
    args = ap.parse_args()
    out = Path(args.out)
    dexter = [sys.executable, "-m", "dexter_cli"]
    results = {}
    for w in [int(x) for x in args.workers.split(",")]:
        walls, peaks = [], []
        for r in range(args.runs):
            store = out / f"codec_w{w}"
            shutil.rmtree(store, ignore_errors=True)
            # each run in its own process so that peak RSS is its own
            code = ("import resource,subprocess,sys,json;"
                    "subprocess.run(sys.argv[1:],check=True,stdout=subprocess.DEVNULL);"
                    "print(json.dumps(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))")
            t0 = time.perf_counter()
            res = subprocess.run([sys.executable, "-c", code, *dexter, "codec", "--max-note-seq", "300", "--mixup",
                                  "--datasets-root", args.datasets_root, "--out", str(store), "--workers", str(w), "-q"],
                                 check=True, capture_output=True, text=True)
            walls.append(time.perf_counter() - t0)
            peaks.append(int(res.stdout.strip().splitlines()[-1]) / 1024)
            print(f"codec workers={w} run {r + 1}: {walls[-1]:.1f} s, peak {peaks[-1]:.0f} MB", flush=True)
        meta = json.loads((out / f"codec_w{w}" / "meta.json").read_text())
        notes = meta["counts"]["notes"]
        results[f"codec_w{w}"] = {"wall_s": statistics.median(walls), "peak_mb": max(peaks), "notes": notes,
                                  "notes_per_s": notes / statistics.median(walls), "runs": walls}
    store = out / f"codec_w{[int(x) for x in args.workers.split(',')][-1]}"
    for k, label in ((None, "all"), (1_000_000, "1M")):
        walls = []
        for r in range(3):
            t0 = time.perf_counter()
            cmd = [*dexter, "pair", "--data", str(store)] + (["--k", str(k)] if k else [])
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            walls.append(time.perf_counter() - t0)
        pairs = json.loads((store / "pairs.json").read_text())
        results[f"pair_{label}"] = {"wall_s": statistics.median(walls), "pairs": pairs["pairs"], "possible": pairs["possible"]}
    print(json.dumps(results, indent=2))
    if "codec_w1" in results and "codec_w2" in results:
        print(f"speed-up 2 workers vs 1: {results['codec_w1']['wall_s'] / results['codec_w2']['wall_s']:.2f}x")
    (out / "bench_codec.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
