"""Peak memory and time of `dexter render` on a very long score (the streaming of windows).

    python scripts/bench/bench_long_score.py [--notes 50000] [--runs 1] [--max-batch N]

The score is a quantised MIDI file built from a real shared score's notes, repeated until it
holds ``--notes`` notes (MIDI scores are read by `dexter render` like any other). Each run is a
fresh process; peak memory is its maximum resident set size. ``--max-batch`` sets how many
windows go through the network per call (default: the product's); a number above the piece's
window count reproduces the earlier one-batch behaviour, for the comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SCORE = ROOT.parent / "shared/datasets/asap/Beethoven/Piano_Sonatas/26-3/xml_score.musicxml"

CODE = r"""
import json, resource, sys, time
t0 = time.perf_counter()
args = json.loads(sys.argv[1])
from dexter_cli.diffusion import windows
if args["max_batch"]:
    defaults = list(windows.WindowedDenoiser.__init__.__defaults__)
    defaults[-1] = args["max_batch"]
    windows.WindowedDenoiser.__init__.__defaults__ = tuple(defaults)
from dexter_cli.render import render_score
res = render_score(args["score"], args["out"], {"seed": 0})
print(json.dumps(dict(res.timings, wall=time.perf_counter() - t0, notes=res.n_notes,
                      seconds_of_music=res.durations_s[0],
                      peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
"""


def long_midi_score(source: Path, notes: int, out: Path) -> int:
    """A quantised MIDI score of at least ``notes`` notes: ``source``'s notes, repeated end to end."""
    import mido
    import partitura as pt

    na = pt.load_score(str(source)).note_array()
    ppq = 480
    span = float((na["onset_beat"] + na["duration_beat"]).max())
    events = []
    k = 0
    while len(events) // 2 < notes:
        for n in na:
            on = int(round((float(n["onset_beat"]) + k * span) * ppq))
            off = on + max(1, int(round(float(n["duration_beat"]) * ppq)))
            events += [(on, 1, "note_on", int(n["pitch"])), (off, 0, "note_off", int(n["pitch"]))]
        k += 1
    events.sort()
    track, now = mido.MidiTrack(), 0
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    for t, _, kind, pitch in events:
        track.append(mido.Message(kind, note=pitch, velocity=64 if kind == "note_on" else 0, time=t - now))
        now = t
    mid = mido.MidiFile(ticks_per_beat=ppq)
    mid.tracks.append(track)
    mid.save(str(out))
    return len(events) // 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--score", type=Path, default=DEFAULT_SCORE)
    ap.add_argument("--notes", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--max-batch", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        score = Path(d) / "long.mid"
        n = long_midi_score(args.score, args.notes, score)
        runs = []
        for _ in range(args.runs):
            arg = json.dumps({"score": str(score), "out": os.path.join(d, "o.mid"), "max_batch": args.max_batch})
            r = subprocess.run([sys.executable, "-c", CODE, arg], capture_output=True, text=True)
            if r.returncode:
                sys.exit(r.stderr.strip().splitlines()[-1])
            runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
            print(json.dumps(runs[-1]))
    med = {k: statistics.median(r[k] for r in runs) for k in ("wall", "parse", "sample", "write", "peak_mb")}
    print(f"{n} score notes ({runs[0]['notes']} rendered), max_batch {args.max_batch or 'default'}: "
          f"wall {med['wall']:.1f} s (parse {med['parse']:.1f}, sample {med['sample']:.1f}, write {med['write']:.1f}), "
          f"peak {med['peak_mb']:.0f} MB, median of {len(runs)}")


if __name__ == "__main__":
    main()
