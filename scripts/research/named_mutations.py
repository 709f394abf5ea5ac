"""Apply, one at a time, the mutations an outside audit found surviving, and run the fast suite.

Each mutation is a text replacement in one source file; the file is restored afterwards (also on
Ctrl-C). A mutation is caught when ``pytest -m "not slow" -x`` fails; the first failing test is
printed. Usage (from the repository root, with nothing else running):

    python scripts/research/named_mutations.py [--only NAME ...] [--out artifacts/named_mutations.json]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

# (name, file, old text, new text): the audit's mutations, written against today's code
MUTATIONS: list[tuple[str, str, str, str]] = [
    ("eps target is -noise", "dexter_cli/diffusion/schedule.py",
     '    if prediction == "eps":\n        return noise\n', '    if prediction == "eps":\n        return -noise\n'),
    ("v target with -noise", "dexter_cli/diffusion/schedule.py",
     "    return ab.sqrt() * noise - (1 - ab).sqrt() * x0\n", "    return -ab.sqrt() * noise - (1 - ab).sqrt() * x0\n"),
    ("L2 instead of L1", "dexter_cli/diffusion/loss.py",
     "    l1 = masked_mean((out - target).abs(), mask, notes)\n", "    l1 = masked_mean((out - target) ** 2, mask, notes)\n"),
    ("reconstruction weighted by 1 - ab", "dexter_cli/diffusion/loss.py",
     "    w = _bcast(ab, x0[..., 0])\n", "    w = _bcast(1 - ab, x0[..., 0])\n"),
    ("loss rescaled x2", "dexter_cli/diffusion/loss.py",
     '    return {"loss": l1 + recon_weight * recon,', '    return {"loss": 2.0 * (l1 + recon_weight * recon),'),
    ("constant learning rate", "dexter_cli/train/schedule.py",
     '    """Linear warmup, then cosine decay to ``min_frac * lr``."""\n',
     '    """Linear warmup, then cosine decay to ``min_frac * lr``."""\n    return lr\n'),
    ("no gradient clipping", "dexter_cli/train/loop.py",
     '        limit = cfg.optim.clip_grad if cfg.optim.clip_grad > 0 else float("inf")\n',
     '        limit = float("inf")\n'),
    ("best keeps the highest validation loss", "dexter_cli/train/loop.py",
     'ev.get("valid_loss", float("inf")) < self.best', '-ev.get("valid_loss", float("inf")) < self.best'),
    ("accumulation feeds the first micro-batch every time", "dexter_cli/train/loop.py",
     "        for m, batch in enumerate(batches):\n", "        for m, batch in enumerate([batches[0]] * len(batches)):\n"),
    ("accumulated loss x10", "dexter_cli/train/loop.py",
     '                acc.backward(out["loss"])\n', '                acc.backward(out["loss"] * 10)\n'),
    ("transfer starts from noise", "dexter_cli/engine.py",
     '        x = self.norm.encode_p(batch["source_p"].float()) - mu\n        return run(x, t_start',
     '        x = randn(mu.shape, run.generator, mu.device)\n        return run(x, t_start'),
    ("window merge overwrites", "dexter_cli/diffusion/windows.py",
     "            out[:, s:s + self.width] += w * y[:, k]\n", "            out[:, s:s + self.width] = w * y[:, k]\n"),
    ("no edge ramps", "dexter_cli/diffusion/windows.py", "    if overlap > 0:\n", "    if False:\n"),
    ("render controls ignored", "dexter_cli/render.py", "        drop[j] = False\n", "        drop[j] = True\n"),
    ("synthetic pieces in valid", "dexter_cli/data/assemble.py",
     '"split": "train", "synthetic": 1', '"split": "valid", "synthetic": 1'),
    ("transfer target noised with fresh noise", "dexter_cli/engine.py",
     '            noise = self.norm.encode_p(batch["source_p"].float()) - mu\n',
     '            noise = torch.randn(x0.shape).to(device)\n'),
    ("dropped conditions use zeros, not the learned nulls", "dexter_cli/model/denoiser.py",
     "torch.where(dc, self.null_c.to(c.dtype), c)", "torch.where(dc, torch.zeros_like(c), c)"),
    ("external entities resolved", "dexter_cli/data/score_checks.py",
     "etree.XMLParser(resolve_entities=False,", "etree.XMLParser(resolve_entities=True,"),
]


def run_one(name: str, path: str, old: str, new: str) -> dict:
    file = Path(path)
    text = file.read_text()
    if text.count(old) != 1:
        return {"mutation": name, "file": path, "status": f"not applied ({text.count(old)} matches)"}
    t0 = time.perf_counter()
    try:
        file.write_text(text.replace(old, new))
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider"],
                           capture_output=True, text=True)
    finally:
        file.write_text(text)
    failed = re.findall(r"^FAILED (\S+)", r.stdout, re.M) or re.findall(r"^ERROR (\S+)", r.stdout, re.M)
    status = "caught" if r.returncode != 0 else "survived"
    return {"mutation": name, "file": path, "status": status, "first_failure": failed[0] if failed else "",
            "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--out", type=Path, default=Path("artifacts/named_mutations.json"))
    args = ap.parse_args()
    rows = []
    for name, path, old, new in MUTATIONS:
        if args.only and name not in args.only:
            continue
        row = run_one(name, path, old, new)
        rows.append(row)
        print(f"{row['status']:>9}  {name}  {row.get('first_failure', '')}  ({row.get('seconds', 0)} s)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"{sum(r['status'] == 'caught' for r in rows)} of {len(rows)} caught")


if __name__ == "__main__":
    main()
