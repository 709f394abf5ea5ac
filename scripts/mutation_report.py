"""Write docs/mutation.md from a mutmut run (``make mutation``): the score per module and the survivors.

    python scripts/mutation_report.py [--out docs/mutation.md]

Reads ``mutmut results --all true`` and, for each surviving mutant, its diff (``mutmut show``).
"""

from __future__ import annotations

import argparse
import re
import subprocess
from collections import Counter, defaultdict
from pathlib import Path


def results() -> dict[str, str]:
    """Mutant name -> status (killed, survived, not checked, timeout, ...)."""
    out = subprocess.run(["mutmut", "results", "--all", "true"], capture_output=True, text=True, check=True).stdout
    rows = (re.match(r"\s*(\S+): (.+)$", line) for line in out.splitlines())
    return {m.group(1): m.group(2).strip() for m in rows if m}


def module(name: str) -> str:
    return name.split(".x\u01c1")[0].rsplit(".x_", 1)[0] if ".x" in name else name.rsplit("__mutmut", 1)[0]


def diff(name: str) -> str:
    shown = subprocess.run(["mutmut", "show", name], capture_output=True, text=True).stdout
    changed = [ln for ln in shown.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    return " / ".join(ln.strip() for ln in changed)[:200]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/mutation.md")
    args = ap.parse_args()
    status = results()
    by_module: dict[str, Counter] = defaultdict(Counter)
    for name, st in status.items():
        by_module[module(name)][st] += 1
    lines = ["# Mutation testing", "",
             "`make mutation` mutates the code that makes the model learn and sample (`[tool.mutmut]` in "
             "pyproject.toml) and runs the fast tests that guard it. Score: killed / checked.", "",
             "| module | mutants | checked | killed | survived | score |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for mod, c in sorted(by_module.items()):
        checked = sum(v for k, v in c.items() if k != "not checked")
        killed = c.get("killed", 0) + c.get("timeout", 0)
        score = f"{killed / checked:.0%}" if checked else "-"
        lines.append(f"| `{mod}` | {sum(c.values())} | {checked} | {killed} | {c.get('survived', 0)} | {score} |")
    survivors = sorted(n for n, st in status.items() if st == "survived")
    lines += ["", f"## Survivors ({len(survivors)})", ""]
    lines += [f"- `{n}`: `{diff(n)}`" for n in survivors]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}: {len(status)} mutants, {len(survivors)} survivors")


if __name__ == "__main__":
    main()
