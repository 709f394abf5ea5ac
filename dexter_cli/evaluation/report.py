"""What ``dexter evaluate`` found, and its files: results.json, results.csv and plots."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from .metrics import METRICS
from .pieces import Piece

@dataclass
class EvaluationReport:
    """Per renderer and piece: metric medians over humans, the human ceiling, problems."""

    per_piece: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    curves: list[tuple[Piece, dict]] = field(default_factory=list)  # (piece, {renderer: Performance})
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    ratios: dict = field(default_factory=dict)  # renderer -> ratios_to_human(...)
    settings: dict = field(default_factory=dict)  # what was evaluated: split, and each model renderer's sampling
    paired: dict = field(default_factory=dict)  # renderer -> reference -> metric -> paired_comparison(...)


def _json_ready(value):
    """``value`` with every non-finite float (in nested dicts and lists) made None: JSON has no NaN."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_report(report: EvaluationReport, out: Path) -> list[Path]:
    """``results.json``, ``results.csv`` and the plots into ``out``; returns the files written."""
    import csv
    import io
    import json

    from ..fileio import write_text
    from ..plots import plot_evaluation_summary, plot_piece_curves

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {**_json_ready({"summary": report.summary, "per_piece": report.per_piece, "ratios": report.ratios,
                              "paired": report.paired}),
               "problems": report.problems, "seconds": report.seconds, "settings": report.settings}
    write_text(out / "results.json", json.dumps(payload, indent=2) + "\n")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["piece", "renderer", "n_humans", *METRICS], lineterminator="\n")
    w.writeheader()
    for row in report.per_piece:
        w.writerow(row)
    write_text(out / "results.csv", buf.getvalue())
    files = [out / "results.json", out / "results.csv"]
    files.append(plot_evaluation_summary(out / "summary.png", report.summary))
    for k, (piece, preds) in enumerate(report.curves):
        name = piece.entry["piece"].replace("/", "_")
        files.append(plot_piece_curves(out / f"curves_{k:02d}_{name}.png", piece, preds))
    return files
