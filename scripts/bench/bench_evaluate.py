"""Benchmark table of `dexter evaluate` on a store's test split: one table, every renderer.

    python scripts/bench/bench_evaluate.py [--data data/codec_N=300_mixup] [--checkpoint DIR] [--limit K]
                                     [--no-ddpm] [--out artifacts/bench_evaluate]

Columns: the human-to-human (leave-one-out) reference; the default model with its default
sampler (DPM-Solver++ at the model's recorded steps, 20 when none) at seed 0 and at seed 1 (their difference is the
seed-to-seed noise that any sampler comparison must be read against); the same model with
the paper's 1000-step ancestral sampler (DDPM); deadpan; the linear reference. Writes
``table.md`` and ``results.json`` under ``--out`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from dexter_cli.evaluation.metrics import METRICS
from dexter_cli.evaluation.pieces import Selection
from dexter_cli.evaluation.runner import evaluate_store
from dexter_cli.fileio import write_text

KEY = ("tempo_r", "velocity_r", "tempo_dev", "velocity_dev", "tempo_kl", "velocity_kl", "timing_kl",
       "articulation_kl", "pedal_kl", "async_delta_kl", "kor_kl", "pedal_onset_kl", "dyn_agreement", "tempo_vel_dev")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("data/codec_N=300_mixup"))
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: the bundled model")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--no-ddpm", action="store_true", help="skip the 1000-step ancestral baseline")
    ap.add_argument("--all-metrics", action="store_true", help="every metric, not the key ones")
    ap.add_argument("--out", type=Path, default=Path("artifacts/bench_evaluate"))
    a = ap.parse_args()

    common = dict(checkpoint=a.checkpoint, selection=Selection("test", limit=a.limit), workers=a.workers)
    columns, seconds = {}, {}
    t = time.perf_counter()
    rep = evaluate_store(a.data, ["dexter", "deadpan", "linear"], {"seed": 0}, **common)
    steps = rep.settings["dexter"]["steps"]  # what the default sampler took: the label of its columns
    seconds[f"dpm++ {steps} (+deadpan, linear)"] = time.perf_counter() - t
    columns["human (LOO)"] = rep.summary["human"]
    columns[f"dexter dpm++{steps} s0"] = rep.summary["dexter"]
    rest = {"deadpan": rep.summary["deadpan"], "linear": rep.summary["linear"]}
    t = time.perf_counter()
    columns[f"dexter dpm++{steps} s1"] = evaluate_store(a.data, ["dexter"], {"seed": 1}, **common).summary["dexter"]
    seconds[f"dpm++ {steps} seed 1"] = time.perf_counter() - t
    if not a.no_ddpm:
        t = time.perf_counter()
        columns["dexter ddpm1000 s0"] = evaluate_store(a.data, ["dexter"], {"seed": 0, "sampler": "ddpm", "steps": 1000},
                                                       **common).summary["dexter"]
        seconds["ddpm 1000"] = time.perf_counter() - t
    columns.update(rest)

    metrics = METRICS if a.all_metrics else KEY
    fmt = lambda v: "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.3f}"  # noqa: E731
    lines = ["| metric | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|",
             "| pieces | " + " | ".join(str(c["pieces"]) for c in columns.values()) + " |"]
    lines += [f"| {m} | " + " | ".join(fmt(c[m]) for c in columns.values()) + " |" for m in metrics]
    table = "\n".join(lines)
    a.out.mkdir(parents=True, exist_ok=True)
    write_text(a.out / "table.md", table + "\n")
    clean = {k: {m: (v if isinstance(v, (int, float)) and math.isfinite(v) else None) for m, v in c.items()}
             for k, c in columns.items()}
    write_text(a.out / "results.json", json.dumps({"columns": clean, "seconds": seconds}, indent=2) + "\n")
    print(table)
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
