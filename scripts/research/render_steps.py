"""Apply the rule of render-steps-rule.md to `dexter evaluate` results at several step counts.

    python scripts/research/render_steps.py DIR   # DIR/s10/results.json (baseline), DIR/s<k>/results.json

Prints, per candidate, the metrics worse on significantly many pieces and the core means against the
baseline's, and the choice.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from dexter_cli.evaluation.statistics import paired_comparison

CORE = ("tempo_r", "velocity_r", "timing_kl", "articulation_kl", "pedal_kl")


def higher_is_better(metric: str) -> bool | None:
    if metric.endswith("_r") or metric == "dyn_agreement":
        return True
    if metric.endswith(("_kl", "_dev", "_err")):
        return False
    return None


def rows(path: Path) -> list[dict]:
    return [r for r in json.loads(path.read_text())["per_piece"] if r["renderer"] == "dexter"]


def main() -> None:
    root = Path(sys.argv[1])
    base = rows(root / "s10" / "results.json")
    metrics = sorted(m for m in base[0] if higher_is_better(m) is not None)
    passing = []
    for cand_dir in sorted(root.glob("s*/results.json"), key=lambda p: int(p.parent.name[1:])):
        k = int(cand_dir.parent.name[1:])
        if k == 10:
            continue
        cand = rows(cand_dir)
        worse = []
        for m in metrics:
            c = paired_comparison(base, cand, m)  # base minus candidate: p_sign < 0.05 = the candidate is worse
            if c["pieces"] and c["p_sign"] < 0.05:
                worse.append(f"{m} (worse on {c['better']}/{c['pieces']}, p {c['p_sign']:.3f})")
        means = []
        ok_means = True
        for m in CORE:
            b = float(np.nanmean([r[m] for r in base]))
            a = float(np.nanmean([r[m] for r in cand]))
            rel = (a - b) / abs(b) if b else 0.0
            loss = -rel if higher_is_better(m) else rel
            ok_means &= loss <= 0.05
            means.append(f"{m} {a:.4g} vs {b:.4g} ({100 * rel:+.1f} %)")
        ok = not worse and ok_means
        passing += [k] if ok else []
        print(f"{k} steps: {'passes' if ok else 'fails'}")
        print("  worse on significantly many pieces: " + (", ".join(worse) if worse else "none"))
        print("  core means: " + "; ".join(means))
    print(f"choice: {min(passing) if passing else 10} steps")


if __name__ == "__main__":
    main()
