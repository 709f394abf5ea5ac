"""The sampled mutation score of docs/mutation.md: every k-th mutant in mutmut's name order.

    python scripts/research/mutation_sample.py --every 20 --names      # the sample, to pass to mutmut run
    OMP_NUM_THREADS=1 mutmut run --max-children 2 $(python scripts/research/mutation_sample.py --every 20 --names)
    python scripts/research/mutation_sample.py --every 20 [--survivors]  # the score per group, after the run

Run in the project whose ``mutants/`` holds the results (the same rule serves an older checkout).
"""

from __future__ import annotations

import argparse
import subprocess
from collections import Counter, defaultdict

GROUPS = (("dexter_cli.diffusion", "diffusion (loss, samplers, schedule, windows)"),
          ("dexter_cli.engine", "expression (engine)"),
          ("dexter_cli.train", "training (loop, setup, schedule)"),
          ("dexter_cli.data.decode", "decode"))


def results() -> dict[str, str]:
    out = subprocess.run(["mutmut", "results", "--all", "true"], capture_output=True, text=True, check=True).stdout
    return dict(line.strip().rsplit(": ", 1) for line in out.splitlines() if ": " in line)


def group(name: str) -> str:
    return next(label for prefix, label in GROUPS if name.startswith(prefix))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--names", action="store_true", help="print the sample's mutant names only")
    ap.add_argument("--survivors", action="store_true", help="also print each survivor's change")
    args = ap.parse_args()
    res = results()
    sample = sorted(res)[::args.every]
    if args.names:
        print("\n".join(sample))
        return
    by = defaultdict(Counter)
    for name in sample:
        by[group(name)][res[name]] += 1
    print("| code | sampled | killed | timeout | survived | no tests | not checked | score |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    total = Counter()
    for _, label in GROUPS:
        c = by[label]
        total.update(c)
        rows = [c["killed"], c["timeout"], c["survived"], c["no tests"], c["not checked"]]
        checked = sum(rows) - c["not checked"]
        score = f"{100 * (c['killed'] + c['timeout']) / checked:.0f} %" if checked else "-"
        print(f"| {label} | {sum(c.values())} | " + " | ".join(map(str, rows)) + f" | {score} |")
    checked = sum(total.values()) - total["not checked"]
    print(f"| all | {sum(total.values())} | {total['killed']} | {total['timeout']} | {total['survived']} | "
          f"{total['no tests']} | {total['not checked']} | {100 * (total['killed'] + total['timeout']) / checked:.0f} % |")
    if args.survivors:
        for name in sample:
            if res[name] in ("survived", "no tests"):
                diff = subprocess.run(["mutmut", "show", name], capture_output=True, text=True).stdout
                change = [ln for ln in diff.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
                print(f"\n{res[name]}: {name}\n" + "\n".join(change))


if __name__ == "__main__":
    main()
