"""Whole-piece continuity: jumps of log tempo and velocity at window edges vs inside windows.

    python scripts/bench/bench_continuity.py --checkpoint DIR [--scores a.musicxml,b.musicxml] [--overlaps 0,0.25,0.5]
        [--steps S]

overlap 0 renders independent windows (the original DExter's fixed segments); larger overlaps
reconcile the windows at every step. Prints, per overlap, the mean jumps (edge / inside; a ratio
near or below 1 means no seam; unpaired, so the score's own jumps at the few edge pairs weigh in),
the sampling time, and the paired seam: each score rendered again with its inner window edges
moved by half a stride (same seeds), and the same onset pairs compared on and off an edge
(``dexter_cli.evaluate.paired_seams``, pooled over the scores: mean excess jump, its standard error,
and that as a share of the mean jump inside).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import numpy as np

from dexter_cli.evaluation.continuity import boundary_jumps, render_layouts, seam_differences, summarise_seams
from dexter_cli.engine import load_expression

DEFAULT_SCORES = ["asap/Bach/Fugue/bwv_848/xml_score.musicxml", "asap/Chopin/Etudes_op_10/12/xml_score.musicxml",
                  "asap/Beethoven/Piano_Sonatas/26-3/xml_score.musicxml"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--scores", default=None)
    ap.add_argument("--overlaps", default="0,0.25,0.5")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=None, help="default: the model's")
    args = ap.parse_args()
    root = Path(os.environ.get("DEXTER_DATASETS", "../shared/datasets"))
    scores = args.scores.split(",") if args.scores else [str(root / s) for s in DEFAULT_SCORES]
    loaded = load_expression(args.checkpoint)
    window = int(loaded[1]["codec"]["max_note_seq"])
    results = {}
    for ov in (float(x) for x in args.overlaps.split(",")):
        stride = max(1, int(round(window * (1 - ov))))  # as render computes it
        rows, diffs, inside = [], {"tempo": [], "velocity": []}, {"tempo": [], "velocity": []}
        for path in scores:
            onset_beat, renders, edges, timings = render_layouts(
                Path(path), (0, stride // 2), range(args.seeds), {"overlap": ov, "steps": args.steps}, checkpoint=loaded)
            for p, t in zip(renders[0], timings[0]):
                rows.append({**boundary_jumps(onset_beat, p, edges[0]), "sample_s": t["sample"]})
            d, i = seam_differences(onset_beat, renders, edges)
            for name in diffs:
                diffs[name].append(d[name])
                inside[name].append(i[name])
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        med["tempo_ratio"] = med["tempo_edge"] / med["tempo_inside"]
        med["velocity_ratio"] = med["velocity_edge"] / med["velocity_inside"]
        seams = summarise_seams({k: np.concatenate(v) for k, v in diffs.items()},
                                {k: np.concatenate(v) for k, v in inside.items()})
        med.update(seams)
        for k in diffs:
            med[f"{k}_seam_share"] = seams[f"{k}_seam"] / seams[f"{k}_inside"]
        results[ov] = med
        print(f"overlap {ov}: tempo jump edge/inside {med['tempo_edge']:.4f}/{med['tempo_inside']:.4f} "
              f"(x{med['tempo_ratio']:.2f}), velocity {med['velocity_edge']:.2f}/{med['velocity_inside']:.2f} "
              f"(x{med['velocity_ratio']:.2f}), sampling {med['sample_s']:.2f} s; paired seam over {med['pairs']:.0f} pairs: "
              f"tempo {med['tempo_seam']:+.4f} (se {med['tempo_seam_se']:.4f}, {100 * med['tempo_seam_share']:+.1f} %), "
              f"velocity {med['velocity_seam']:+.3f} (se {med['velocity_seam_se']:.3f}, {100 * med['velocity_seam_share']:+.1f} %)",
              flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
