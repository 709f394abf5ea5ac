"""Write MODEL_CARD.md from the bundled model's config and a `dexter evaluate` results.json.

    python scripts/model_card.py artifacts/evaluate/results.json [--out MODEL_CARD.md]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from dexter_cli.engine import load_expression
from dexter_cli.evaluation.metrics import METRICS
from dexter_cli.evaluation.statistics import ratios_to_human
from dexter_cli.fileio import write_text


def fmt(v) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--out", default="MODEL_CARD.md")
    ap.add_argument("--notes", default="", help="Extra text (markdown) for the card.")
    args = ap.parse_args()
    expr, cfg = load_expression(None)
    tr, res = cfg["training"], json.loads(Path(args.results).read_text())
    counts = tr.get("counts", {})
    summary = res["summary"]
    names = list(summary)
    lines = [
        f"# Model card: {tr.get('name', 'dexter default')}",
        "",
        "The model `dexter render` uses when no `--checkpoint` is given (`dexter_cli/assets/default`).",
        "",
        "## Data",
        f"- Codec store `{tr.get('data')}` built by `dexter codec --max-note-seq {cfg['codec']['max_note_seq']} --mixup` "
        "from `../shared/datasets` (ASAP subset and Vienna 4x22 subset).",
        f"- {counts.get('performances')} performances of {counts.get('scores')} scores, {counts.get('notes')} played notes; "
        f"{tr.get('pieces_train')} train pieces. Segments: {json.dumps(counts.get('per_split'))}.",
        "- Trained on the train split only (real and mixup segments"
        + (f": {tr['train_segments']} segments seen" if tr.get("train_segments") else "")
        + (f", {tr['data_note']}" if tr.get("data_note") else "") + "); the test split was never seen.",
        "",
        "## Model and training",
        f"- Denoiser: {json.dumps(cfg['model'])} ({sum(p.numel() for p in expr.model.parameters()) / 1e6:.2f} M parameters).",
        f"- Task: {json.dumps(cfg['task'])}.",
        f"- {tr.get('step')} steps" + (f", {tr['train_seconds'] / 3600:.2f} h" if tr.get("train_seconds") else "")
        + (f" on {tr['hardware']}" if tr.get("hardware") else "") + ". Config: `configs/default.yaml`; reproduce with "
        + (tr.get("recipe") or "`dexter codec --max-note-seq 300 --mixup --workers 2 && dexter train --config configs/default.yaml`") + ".",
        "",
        "## Evaluation (`dexter evaluate`, test split, whole pieces)",
        "Each number: median over pieces of the per-piece median over every human performance of the piece. "
        "`human (LOO)`: each human scored against the other humans (the ceiling).",
        "",
        "| metric | " + " | ".join("human (LOO)" if n == "human" else n for n in names) + " |",
        "| --- | " + " | ".join("---:" for _ in names) + " |",
        "| pieces | " + " | ".join(str(summary[n].get("pieces")) for n in names) + " |",
    ]
    for m in METRICS:
        lines.append(f"| {m} | " + " | ".join(fmt(summary[n].get(m)) for n in names) + " |")
    if "dexter" in summary and "human" in summary:
        h, d = summary["human"], summary["dexter"]
        verdict = lambda r, floor: "met" if r >= floor else "**missed**"  # noqa: E731
        rv, rt = d["velocity_r"] / h["velocity_r"], d["tempo_r"] / h["tempo_r"]
        lines += ["", "Ratios to the human-to-human value: "
                  f"velocity r {rv:.3f}x (floor 0.7x: {verdict(rv, 0.7)}), "
                  f"tempo r {rt:.3f}x (floor 0.3x: {verdict(rt, 0.3)})."]
        like = ratios_to_human(res["per_piece"], "dexter")
        if like:
            n = max(r["pieces"] for r in like.values())
            parts = [f"{m.split('_')[0]} r {r['model']:.3f} ({r['ratio']:.3f}x, 95 % bootstrap over pieces "
                     f"{r['low']:.2f}-{r['high']:.2f}x)" for m, r in like.items()]
            lines += ["", f"The human medians cover only the {n} pieces with two or more human performances; "
                      f"over those same {n} pieces the model's medians are " + " and ".join(parts) + "."]
    if res.get("problems"):
        lines += ["", "Notes from the evaluation:"] + [f"- {p}" for p in res["problems"]]
    if args.notes:
        lines += ["", args.notes]
    write_text(Path(args.out), "\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
