"""The bundled model's golden renders: what it plays for two scores at a fixed seed.

``python -m tests.golden`` records the expected values in ``expected.json``: for each score the
SHA-256 of the rendered p_codec on this machine (one entry per machine: the bits depend on the
CPU and the torch build) and a sample of its values, which every machine must match within a
tolerance. Record again only when a change of the model's output is intended and measured.
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
EXPECTED = HERE / "expected.json"
SEED = 7
RTOL, ATOL = 1e-3, 1e-4  # across machines: float rounding of 10 sampler steps, nothing more
VIENNA_SCORE = "vienna4x22/musicxml/Mozart_K331_1st-mov.musicxml"


def scores(datasets: Path | None) -> dict[str, Path]:
    """The golden scores: partitura's example, and one real score when the shared data is there."""
    import partitura as pt

    out = {"partitura_example": Path(pt.EXAMPLE_MUSICXML)}
    if datasets is not None and (datasets / VIENNA_SCORE).is_file():
        out["mozart_k331"] = datasets / VIENNA_SCORE
    return out


def machine() -> str:
    """This machine's key: the CPU architecture, the OS and the torch build."""
    import torch

    return f"{platform.machine()}-{platform.system()}-torch{torch.__version__}"


def render_codec(score: Path, workdir: Path) -> np.ndarray:
    """The p_codec ``dexter render SCORE --seed SEED`` plays with the bundled model (read back from
    its ``--save-codec`` file)."""
    from typer.testing import CliRunner

    from dexter_cli.cli import app

    out = workdir / f"{score.stem}.mid"
    codec = workdir / f"{score.stem}.npz"
    r = CliRunner().invoke(app, ["render", str(score), "-o", str(out), "--seed", str(SEED), "--save-codec",
                                 str(codec), "--quiet"])
    assert r.exit_code == 0, r.output
    with np.load(codec) as z:
        return np.asarray(z["p_codec"][0], dtype=np.float32)


def digest(p: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(p, dtype=np.float32).tobytes()).hexdigest()


def sample(p: np.ndarray) -> list[list[float]]:
    """The values compared across machines: the first 16 notes and every 37th after them."""
    idx = sorted(set(range(min(16, len(p)))) | set(range(16, len(p), 37)))
    return [[float(v) for v in p[i]] for i in idx]


def record(datasets: Path | None) -> dict:
    """Render the golden scores here and merge this machine's hashes into ``expected.json``."""
    import tempfile

    old = json.loads(EXPECTED.read_text()) if EXPECTED.is_file() else {}
    new: dict = {"seed": SEED, "scores": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in scores(datasets).items():
            p = render_codec(path, Path(tmp))
            entry = old.get("scores", {}).get(name, {})
            hashes = dict(entry.get("sha256", {})) if entry.get("sample") == sample(p) else {}
            hashes[machine()] = digest(p)
            new["scores"][name] = {"notes": int(len(p)), "sha256": hashes, "sample": sample(p),
                                   "row_means": [float(v) for v in p.mean(0)]}
    EXPECTED.write_text(json.dumps(new, indent=1) + "\n")
    return new

