"""Faults and load, in real processes: `dexter codec` killed mid-run resumes; a full disk while
writing a MIDI or a checkpoint leaves the previous file intact; a batch of 200 scores keeps
memory flat; `dexter evaluate --workers 2` over the whole real test split leaves no process behind.

(`dexter train` killed with SIGKILL, and stopped with SIGTERM, is in test_training.)
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from .conftest import TINY, record, sigkill_when
from .synth import make_asap_tree, make_score

pytestmark = pytest.mark.slow


def _run(args: list[str], fsize: int | None = None, env: dict | None = None,
         timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m dexter_cli ARGS`` in a fresh process; ``fsize`` caps the size of any file it
    writes (RLIMIT_FSIZE: a write beyond fails with EFBIG, as on a full disk)."""
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the failed write raises instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run([sys.executable, "-m", "dexter_cli", *args], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=limit if fsize else None, env=env)


def _one_line_error(proc: subprocess.CompletedProcess) -> bool:
    lines = proc.stderr.strip().splitlines()
    return proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in proc.stderr


def _finished(folder: Path) -> list[Path]:
    """Finished results (a write cut by the kill is a hidden temporary that nothing reads)."""
    return [p for p in folder.glob("*.npz") if not p.name.startswith(".")]


def test_codec_killed_mid_run_resumes_with_no_duplicate_or_missing_performance(tmp_path, request):
    from dexter_cli.data import CodecStore, CodecOptions, run_codec

    pieces = {f"C{i}/Set/{i}": 2 for i in range(10)}
    tree = make_asap_tree(tmp_path / "asap", pieces, n_notes=40)
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "dexter_cli", "codec", "--asap-root", str(tree), "--datasets", "asap",
            "-N", "16", "-o", str(out), "-q"]
    perfs = out / "parts" / "perfs"
    sigkill_when(args, lambda: perfs.is_dir() and len(_finished(perfs)) >= 4, timeout=300)
    done_before = len(_finished(perfs))
    assert 4 <= done_before < 20 and not (out / "meta.json").exists()
    again = run_codec(out, CodecOptions(datasets_root=None, roots={"asap": tree}, max_note_seq=16))
    assert again.encoded.count("cached") >= done_before and again.encoded.count("encoded") <= 20 - done_before
    fresh = run_codec(tmp_path / "fresh", CodecOptions(datasets_root=None, roots={"asap": tree}, max_note_seq=16))
    a, b = CodecStore(out), CodecStore(fresh.store)
    keys = [r["performance"] + "@" + r["piece"] for r in a.index]
    assert sorted(keys) == sorted(r["performance"] + "@" + r["piece"] for r in b.index)
    assert a.meta["counts"]["performances"] == 20 == b.meta["counts"]["performances"]
    for name in ("p_codec", "c_codec", "mask", "s_codec", "seg_split"):
        np.testing.assert_array_equal(np.asarray(getattr(a, name)), np.asarray(getattr(b, name)), err_msg=name)
    record(request, "codec killed with SIGKILL after 4 of 20 performances, then rerun", 0,
           f"resumed: {done_before} reused, the rest encoded; store equal to an uninterrupted run")


def test_full_disk_while_writing_a_midi_keeps_the_previous_file(checkpoint, tmp_path, request):
    score = tmp_path / "s.musicxml"
    make_score(score, n_notes=48)
    out = tmp_path / "o.mid"
    first = _run(["render", str(score), "-o", str(out), "--checkpoint", str(checkpoint), "--steps", "2", "-q"])
    assert first.returncode == 0, first.stderr
    before = out.read_bytes()
    proc = _run(["render", str(score), "-o", str(out), "--checkpoint", str(checkpoint), "--steps", "2", "-q",
                 "--seed", "1"], fsize=len(before) // 2)
    assert _one_line_error(proc) and "cannot write" in proc.stderr and "previous file is intact" in proc.stderr, proc.stderr
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mid", "s.musicxml"]  # no temporary left behind
    record(request, "disk full while writing the MIDI (file size limit)", proc.returncode, proc.stderr.strip())


def test_full_disk_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, request):
    from dexter_cli.checkpoint import load_inference, load_training_state
    from dexter_cli.data import CodecOptions, run_codec

    tree = make_asap_tree(tmp_path / "asap", {"A/B/1": 2}, n_notes=40)
    store = tmp_path / "store"
    run_codec(store, CodecOptions(datasets_root=None, roots={"asap": tree}, max_note_seq=16, fractions=(1.0, 0.0, 0.0)))
    run = tmp_path / "run"
    common = [*TINY, f"data.path={store}", "optim.batch_size=4", "eval.every=1000", "eval.checkpoint_every=4",
              "eval.log_every=100", "--run-dir", str(run), "-q"]
    first = _run(["train", *common, "optim.max_steps=4"])
    assert first.returncode == 0, first.stderr
    state_before = load_training_state(run / "state")
    weights_before, _ = load_inference(run / "checkpoints" / "last")
    limit = (run / "state" / "model.safetensors").stat().st_size // 2
    assert all(p.stat().st_size < limit for p in run.glob("*.*")), "the logs alone would hit the limit"
    proc = _run(["train", *common, "optim.max_steps=8", "--resume"], fsize=limit)
    assert _one_line_error(proc) and "cannot write checkpoint" in proc.stderr and "intact" in proc.stderr, proc.stderr
    after = load_training_state(run / "state")
    assert after["step"] == state_before["step"] == 4
    assert all(np.array_equal(after["model"][k].numpy(), state_before["model"][k].numpy()) for k in after["model"])
    weights_after, _ = load_inference(run / "checkpoints" / "last")
    assert all(np.array_equal(weights_after[k].numpy(), weights_before[k].numpy()) for k in weights_after)
    assert not [p for p in run.rglob("*") if p.name.startswith(".")]  # no temporary folder left behind
    record(request, "disk full while writing a checkpoint (file size limit)", proc.returncode, proc.stderr.strip())


BATCH_CODE = r"""
import json, sys
from dexter_cli.batch import render_batch
rss = []
def progress(stage, done, total):
    with open("/proc/self/statm") as fh:
        rss.append(int(fh.read().split()[1]) * 4096 / 2**20)
res = render_batch(sys.argv[1], sys.argv[2], {"steps": 4}, checkpoint=sys.argv[3], progress=progress)
print(json.dumps({"rss": rss, "rendered": len(res.rendered), "skipped": len(res.skipped)}))
"""


def test_a_batch_of_200_scores_keeps_memory_flat(checkpoint, tmp_path, request):
    import json

    folder = tmp_path / "scores"
    folder.mkdir()
    make_score(folder / "s000.musicxml", n_notes=64)
    for i in range(1, 200):  # the same score under 200 names: the work per score is equal
        (folder / f"s{i:03d}.musicxml").write_bytes((folder / "s000.musicxml").read_bytes())
    proc = subprocess.run([sys.executable, "-c", BATCH_CODE, str(folder), str(tmp_path / "out"), str(checkpoint)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["rendered"] == 200 and res["skipped"] == 0
    assert len(list((tmp_path / "out").glob("*.mid"))) == 200
    rss = res["rss"]
    early, late = float(np.median(rss[20:40])), float(np.median(rss[180:200]))
    record(request, "200 scores rendered in one batch", 0,
           f"resident memory {early:.0f} MB after 20-40 scores, {late:.0f} MB after 180-200")
    assert late - early < 25, (early, late)


def _test_split_list(datasets: Path, target: Path) -> int:
    from dexter_cli.data.layouts import discover, resolve_roots
    from dexter_cli.data.split import assign_split

    rows = ["score,performance,alignment"]
    for disc in discover(resolve_roots(datasets, ["asap"], {})):
        for src in disc.sources:
            if assign_split(src.piece) == "test":
                rows.append(f"{src.score},{src.performance},{src.alignment or ''}")
    target.write_text("\n".join(rows) + "\n")
    return len(rows) - 1


def _processes_with(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{pid}/environ").read_bytes():
                    found.append(int(pid))
            except OSError:
                pass  # gone, or not ours to read
    return found


def test_evaluate_with_two_workers_over_the_test_split_leaves_no_process(shared_datasets, checkpoint, tmp_path,
                                                                        request):
    import json

    listing = tmp_path / "test_split.csv"
    n = _test_split_list(shared_datasets, listing)
    assert n >= 10
    marker = f"DEXTER_LEAK_PROBE={uuid.uuid4().hex}"
    env = {**os.environ, marker.split("=")[0]: marker.split("=")[1]}
    proc = _run(["evaluate", "--pieces", str(listing), "-r", "dexter,deadpan", "--checkpoint", str(checkpoint),
                 "--steps", "2", "--workers", "2", "-o", str(tmp_path / "ev"), "-q"], env=env, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    pieces = {r["piece"] for r in results["per_piece"]}
    time.sleep(1.0)
    left = _processes_with(marker)
    record(request, f"evaluate --workers 2 over the ASAP test split ({len(pieces)} pieces, {n} performances)",
           proc.returncode, f"finished; processes left behind: {len(left)}")
    assert not left, left
    assert len(pieces) >= 10
