"""Benchmark `dexter render` on a long real score, against deadpan decoding of the same score.

    python scripts/bench/bench_render.py [--score ../shared/datasets/asap/Beethoven/Piano_Sonatas/26-3/xml_score.musicxml]
                                   [--checkpoint DIR] [--runs 5] [--steps N] [--baseline] [--json OUT]

Each run is a fresh process, as a user's `dexter render` is, timed from outside (wall, interpreter
start included) and split inside: importing dexter and torch, importing partitura, loading the
model, parsing the score (unfolding and features included), sampling, and writing the MIDI file.
Peak memory is the process's maximum resident set. The figures are medians over ``--runs``.

The reference, run alternately in the same way, is deadpan decoding of the same score: the same
parse and write with the notated tempo and one velocity, no model and no torch. ``--baseline``
also times the paper's 1000-step ancestral sampler (DDPM) once.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

DEXTER = r"""
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
t = {}
t0 = time.perf_counter()
from dexter_cli.render import load_model, render_score
t["import"] = time.perf_counter() - t0
t0 = time.perf_counter()
import dexter_cli.data.scores, dexter_cli.data.decode
t["import_partitura"] = time.perf_counter() - t0
args = json.loads(sys.argv[1])
t0 = time.perf_counter()
loaded = load_model(args["checkpoint"])
t["load_model"] = time.perf_counter() - t0
opts = {"sampler": args["sampler"], "seed": 0, **({"steps": args["steps"]} if args["steps"] else {})}
res = render_score(args["score"], args["out"], opts, checkpoint=loaded)
t.update({k: res.timings[k] for k in ("parse", "sample", "write")})
t.update(notes=res.n_notes, peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
         torch="torch" in sys.modules)
print(json.dumps(t))
"""

DEADPAN = r"""
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np
t = {"import": 0.0, "load_model": 0.0, "sample": 0.0}
t0 = time.perf_counter()
from dexter_cli.data.decode import decode_performance, performance_midi
from dexter_cli.data.scores import load_score, notated_beat_period
from dexter_cli.fileio import write_bytes
t["import_partitura"] = time.perf_counter() - t0
args = json.loads(sys.argv[1])
t0 = time.perf_counter()
score = load_score(args["score"], unfold=True)
t["parse"] = time.perf_counter() - t0
t0 = time.perf_counter()
p = np.zeros((len(score), 5), dtype=np.float32)
p[:, 0], p[:, 1] = notated_beat_period(score) or 0.5, 64 / 127  # velocity 64 (the codec row is velocity / 127)
write_bytes(args["out"], performance_midi(decode_performance(score, p)))
t["write"] = time.perf_counter() - t0
t.update(notes=len(score), peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
         torch="torch" in sys.modules)
print(json.dumps(t))
"""

KEYS = ("wall", "import", "import_partitura", "load_model", "parse", "sample", "write", "peak_mb")


def one(code: str, score: str, checkpoint: str | None, sampler: str = "dpm++", steps: int | None = None) -> dict:
    """One fresh process: its inside split, and its wall time from outside."""
    with tempfile.TemporaryDirectory() as d:
        arg = json.dumps({"score": score, "out": os.path.join(d, "o.mid"), "checkpoint": checkpoint,
                          "sampler": sampler, "steps": steps})
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", code, arg], capture_output=True, text=True)
        wall = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(r.stderr[-2000:])
    return dict(json.loads(r.stdout.strip().splitlines()[-1]), wall=wall)


def medians(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in KEYS}


def line(label: str, med: dict) -> str:
    return f"  {label:8s} " + ", ".join(f"{k} {med[k]:.2f}" for k in KEYS)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--score", default=os.path.join(os.environ.get("DEXTER_DATASETS", "../shared/datasets"),
                                                    "asap/Beethoven/Piano_Sonatas/26-3/xml_score.musicxml"))
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sampler", default="dpm++")
    ap.add_argument("--steps", type=int, default=None, help="default: the model's")
    ap.add_argument("--baseline", action="store_true")
    ap.add_argument("--json", default=None, help="also write the runs here")
    args = ap.parse_args()
    dexter, deadpan = [], []
    for _ in range(args.runs):  # alternated, so that a slow spell of the machine falls on both
        dexter.append(one(DEXTER, args.score, args.checkpoint, args.sampler, args.steps))
        deadpan.append(one(DEADPAN, args.score, args.checkpoint))
    med, ref = medians(dexter), medians(deadpan)
    label = f"{args.steps} steps" if args.steps else "the model's default steps"
    print(f"{dexter[0]['notes']} notes, {args.sampler} {label}, {args.runs} fresh processes each (medians, s and MB):")
    print(line("dexter", med))
    print(line("deadpan", ref))
    print(f"  dexter / deadpan: wall {med['wall'] / ref['wall']:.2f}x, peak memory {med['peak_mb'] / ref['peak_mb']:.2f}x;"
          f" torch imported by deadpan: {deadpan[0]['torch']}")
    out = {"notes": dexter[0]["notes"], "sampler": args.sampler, "steps": args.steps, "median": med,
           "deadpan_median": ref, "runs": dexter, "deadpan_runs": deadpan}
    if args.baseline:
        base = one(DEXTER, args.score, args.checkpoint, "ddpm", 1000)
        out["ddpm_1000"] = base
        print(f"  DDPM 1000 steps: wall {base['wall']:.1f} s, sample {base['sample']:.1f} s "
              f"({base['sample'] / med['sample']:.0f}x the sampling time of {args.sampler}, {label})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
