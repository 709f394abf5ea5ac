"""Benchmark `dexter render` on a long real score: wall time split (parse, sample, write) and peak memory.

    python scripts/bench/bench_render.py [--score ../shared/datasets/asap/Beethoven/Piano_Sonatas/26-3/xml_score.musicxml]
                                   [--checkpoint DIR] [--runs 5] [--baseline]

Each run is a fresh process (as a user's `dexter render` is); medians over the runs. ``--baseline``
also times the paper's 1000-step ancestral sampler (DDPM) once, for the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CODE = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from dexter_cli.render import render_score
t_import = time.perf_counter() - t0
args = json.loads(sys.argv[1])
res = render_score(args["score"], args["out"], {"sampler": args["sampler"], "steps": args["steps"], "seed": 0},
                   checkpoint=args["checkpoint"])
t = dict(res.timings, import_s=t_import, wall=time.perf_counter() - t0, notes=res.n_notes,
         peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps(t))
"""


def one(score, checkpoint, sampler, steps) -> dict:
    with tempfile.TemporaryDirectory() as d:
        arg = json.dumps({"score": score, "out": os.path.join(d, "o.mid"), "checkpoint": checkpoint,
                          "sampler": sampler, "steps": steps})
        r = subprocess.run([sys.executable, "-c", CODE, arg], capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--score", default=os.path.join(os.environ.get("DEXTER_DATASETS", "../shared/datasets"),
                                                    "asap/Beethoven/Piano_Sonatas/26-3/xml_score.musicxml"))
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sampler", default="dpm++")
    ap.add_argument("--steps", type=int, default=None, help="default: the model's")
    ap.add_argument("--baseline", action="store_true")
    args = ap.parse_args()
    runs = [one(args.score, args.checkpoint, args.sampler, args.steps) for _ in range(args.runs)]
    keys = ("wall", "import_s", "load_model", "parse", "sample", "write", "peak_mb")
    med = {k: statistics.median(r[k] for r in runs) for k in keys}
    label = f"{args.steps} steps" if args.steps else "the model's default steps"
    print(f"{runs[0]['notes']} notes, {args.sampler} {label}, {args.runs} runs (medians):")
    print("  " + ", ".join(f"{k} {v:.2f}" for k, v in med.items()))
    out = {"notes": runs[0]["notes"], "sampler": args.sampler, "steps": args.steps, "median": med, "runs": runs}
    if args.baseline:
        base = one(args.score, args.checkpoint, "ddpm", 1000)
        out["ddpm_1000"] = base
        print(f"  DDPM 1000 steps: wall {base['wall']:.1f} s, sample {base['sample']:.1f} s "
              f"({base['sample'] / med['sample']:.0f}x the sampling time of {args.sampler}, {label})")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
