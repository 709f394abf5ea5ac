"""Compare two `dexter evaluate` results piece by piece (paired): which renderer is better, and how surely.

    python scripts/research/compare_results.py A/results.json B/results.json [--renderer dexter] [--renderer-b linear]
        [--metrics tempo_r,velocity_r]

Per metric: the median over pieces of A minus B with a 95 % bootstrap interval over pieces, the
mean difference, the pieces where A is higher, and the one-sided sign-test p (``dexter_cli.evaluation.paired_comparison``).
The two files must cover the same pieces (the same store and split); A and B may be one file with
two renderers (``--renderer-b``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dexter_cli.evaluation.statistics import paired_comparison


def rows(path: str, renderer: str) -> list[dict]:
    found = [r for r in json.loads(Path(path).read_text())["per_piece"] if r["renderer"] == renderer]
    if not found:
        raise SystemExit(f"{path}: no rows of renderer {renderer!r}")
    return found


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--renderer", default="dexter", help="A's renderer (and B's, unless --renderer-b)")
    ap.add_argument("--renderer-b", default=None)
    ap.add_argument("--metrics", default="tempo_r,velocity_r")
    args = ap.parse_args()
    a, b = rows(args.a, args.renderer), rows(args.b, args.renderer_b or args.renderer)
    for m in args.metrics.split(","):
        c = paired_comparison(a, b, m)
        print(f"{m}: A - B median {c['median']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}], mean {c['mean']:+.4f}, "
              f"A higher on {c['better']}/{c['pieces']} pieces (one-sided sign p {c['p_sign']:.3f})")


if __name__ == "__main__":
    main()
