"""Pack a codec store's training data small enough to ship to a remote GPU machine, and unpack it there.

The full store (``data/codec_N=300_mixup``) is about 570 MB of float32 arrays. Training with
``--target gen_noise`` needs only the train and valid segments; this script keeps those (optionally
a random subset of the mixup segments), stores p_codec and c_codec as float16 (the codec's
quantities are far coarser than float16's 3 significant digits; score features stay float32) and
compresses every array with LZMA. ``unpack`` rebuilds a store folder that ``dexter train`` opens
as usual, with the training statistics of the full store (meta.json is copied unchanged).

Usage::

    python scripts/pack_store.py pack data/codec_N=300_mixup artifacts/store.pack --max-synthetic 10000
    python scripts/pack_store.py unpack artifacts/store.pack /tmp/store
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import lzma
import shutil
import tarfile
from pathlib import Path

import numpy as np

SPLITS = ("train", "valid", "test")
SEGMENT_ARRAYS = ("p_codec", "c_codec", "mask", "s_index", "note_index",
                  "seg_split", "seg_synthetic", "seg_group", "seg_perf")
HALF = ("p_codec", "c_codec")


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def pack(store: Path, out: Path, max_synthetic: int | None, seed: int) -> None:
    split = np.load(store / "seg_split.npy")
    synthetic = np.load(store / "seg_synthetic.npy").astype(bool)
    keep = split != SPLITS.index("test")
    syn = np.flatnonzero(keep & synthetic)
    if max_synthetic is not None and len(syn) > max_synthetic:
        drop = np.random.default_rng(seed).choice(syn, len(syn) - max_synthetic, replace=False)
        keep[drop] = False
    rows = np.flatnonzero(keep)
    print(f"keeping {len(rows)} of {len(split)} segments ({int((keep & synthetic).sum())} mixup)")
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w") as tar:
        for name in SEGMENT_ARRAYS:
            a = np.load(store / f"{name}.npy", mmap_mode="r")[rows]
            a = a.astype(np.float16) if name in HALF else np.ascontiguousarray(a)
            buf = io.BytesIO()
            np.save(buf, a, allow_pickle=False)
            _add(tar, f"{name}.npy.xz", lzma.compress(buf.getvalue(), preset=6))
            print(f"  {name} {a.shape} {a.dtype}")
        buf = io.BytesIO()
        np.save(buf, np.load(store / "s_codec.npy"), allow_pickle=False)
        _add(tar, "s_codec.npy.xz", lzma.compress(buf.getvalue(), preset=6))
        with open(store / "index.csv", newline="", encoding="utf-8") as fh:
            reader = list(csv.reader(fh))
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows([reader[0]] + [reader[1 + i] for i in rows])
        _add(tar, "index.csv.xz", lzma.compress(text.getvalue().encode()))
        for name in ("meta.json", "scores.json"):
            _add(tar, f"{name}.xz", lzma.compress((store / name).read_bytes()))
    tmp.replace(out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


def unpack(packed: Path, store: Path) -> None:
    if store.exists():
        shutil.rmtree(store)
    store.mkdir(parents=True)
    with tarfile.open(packed) as tar:
        for member in tar.getmembers():
            data = lzma.decompress(tar.extractfile(member).read())
            name = member.name.removesuffix(".xz")
            if name.endswith(".npy") and name[:-4] in HALF:
                a = np.load(io.BytesIO(data), allow_pickle=False).astype(np.float32)
                np.save(store / name, a, allow_pickle=False)
            else:
                (store / name).write_bytes(data)
    meta = json.loads((store / "meta.json").read_text())
    print(f"unpacked {store}: codec version {meta.get('codec_version')}, "
          f"{len(np.load(store / 'seg_split.npy'))} segments")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("store", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--max-synthetic", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    u = sub.add_parser("unpack")
    u.add_argument("packed", type=Path)
    u.add_argument("store", type=Path)
    args = ap.parse_args()
    if args.cmd == "pack":
        pack(args.store, args.out, args.max_synthetic, args.seed)
    else:
        unpack(args.packed, args.store)


if __name__ == "__main__":
    main()
