"""The codec store: memory-mappable arrays of fixed-length segments.

Layout of ``<store>/``::

    meta.json          codec version, feature names, N, counts, normalisation stats, arguments
                       (written last: a store without it is incomplete)
    index.csv          one row per segment: piece, performance, dataset, score, segment, split, synthetic
    p_codec.npy        (S, N, 5)  float32   performance codec, 0 where masked
    c_codec.npy        (S, N, C)  float32   controls
    mask.npy           (S, N)     bool      note is real and was played
    s_index.npy        (S, N)     int32     row of s_codec.npy for each note, -1 for padding
    note_index.npy     (S, N)     int32     position of the note in its score (canonical order), -1 pad
    s_codec.npy        (R, F)     float32   score features of every score note, scores concatenated
    seg_split.npy, seg_synthetic.npy, seg_group.npy, seg_perf.npy   per-segment ints for fast lookups
    scores.json        the scores: dataset, path, offset into s_codec.npy, note count, note ids
    errors.jsonl       performances skipped, and why
    parts/             per-performance results (resume, shards)

Segment k of every performance of a score covers score notes [k N, (k+1) N) in
canonical order, so performances of a piece line up note for note.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DexterError
from ..fileio import save_npy, write_json, write_text
from .codec import C_CODEC_NAMES, P_CODEC_NAMES
from .layouts import PerformanceSource
from .parts import Parts
from .vocab import S_CODEC_NAMES
from .split import SPLITS, assign_split

CODEC_VERSION = 1
# a segment is kept when at least this fraction of its real notes was played
MIN_PLAYED_FRACTION = 0.25
INDEX_COLUMNS = ("segment_id", "piece", "performance", "dataset", "score", "segment", "split",
                 "synthetic", "n_notes", "n_played", "has_cep")
ARRAY_FILES = ("p_codec", "c_codec", "mask", "s_index", "note_index", "s_codec",
               "seg_split", "seg_synthetic", "seg_group", "seg_perf")
SEGMENT_ARRAYS = ("p_codec", "c_codec", "mask", "s_index", "note_index")  # (S, N, ...): N notes per segment


@dataclass
class AssembleReport:
    segments: int
    real_segments: int
    synthetic_segments: int
    performances: int
    scores: int
    notes: int
    per_dataset: dict
    per_split: dict
    skipped: list
    missing: int
    seconds: float


def default_store_name(max_note_seq: int, mixup: bool) -> str:
    """``codec_N=300_mixup`` style folder name."""
    return f"codec_N={max_note_seq}" + ("_mixup" if mixup else "")


def _masked_stats(x: np.ndarray, m: np.ndarray) -> tuple[list, list]:
    """Per-column mean and std of rows where ``m`` (std floored to avoid /0)."""
    x = x[m].astype(np.float64)
    if len(x) == 0:
        return [0.0] * x.shape[-1], [1.0] * x.shape[-1]
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > 1e-6, std, 1.0)
    return mean.tolist(), std.tolist()


def assemble_store(
    store: Path,
    sources: list[PerformanceSource],
    *,
    max_note_seq: int = 300,
    mixup: bool = False,
    fractions: tuple[float, float, float] = (0.85, 0.05, 0.10),
    arguments: dict | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> AssembleReport:
    """Assemble the store's arrays from ``<store>/parts``.

    Parameters
    ----------
    store : Path
    sources : list of PerformanceSource
        Every performance discovered (its part may be missing: counted, not used).
    max_note_seq : int
        Segment length N.
    mixup : bool
        Add the average of each pair of train performances of a score.
    fractions : tuple of float
        Train/valid/test fractions of the piece split.
    arguments : dict, optional
        The command's arguments, recorded in ``meta.json``.
    progress : callable, optional
        ``progress(stage, done, total)``.

    Returns
    -------
    AssembleReport
    """
    t0 = time.perf_counter()
    store = Path(store)
    parts = Parts(store)
    N = int(max_note_seq)
    if N < 1:
        raise DexterError(f"--max-note-seq must be positive, got {N}")
    (store / "meta.json").unlink(missing_ok=True)  # from here on the store is incomplete
    for stale in store.glob(".*.tmp*"):  # left by an assembly killed mid-write (atomic writes' temporary files)
        stale.unlink(missing_ok=True)

    sources = sorted(sources, key=lambda s: s.key)
    perfs, skipped, missing = [], [], 0
    for s in sources:
        if parts.perf_path(s.key).is_file():
            perfs.append(s)
        elif (err := parts.load_error(s.key)) is not None:
            skipped.append(err)
        else:
            missing += 1

    # score table: each score part once, in order of first use
    score_ids: dict[str, int] = {}
    scores_meta: list[dict] = []
    s_rows: list[np.ndarray] = []
    offset = 0
    loaded = []  # (source, meta, p, c, mask, score_id)
    for i, s in enumerate(perfs):
        meta, p, c, m = parts.load_perf(s.key)
        sp = meta["score_part"]
        if sp not in score_ids:
            s_codec, note_ids, _ = parts.load_score(sp)
            score_ids[sp] = len(scores_meta)
            scores_meta.append({"score_id": len(scores_meta), "dataset": s.dataset, "piece": s.piece,
                                "score": meta["score"], "root": str(s.root), "unfolded": sp.endswith("#unfolded"),
                                "offset": offset, "n_notes": int(len(note_ids)),
                                "note_ids": note_ids.tolist()})
            s_rows.append(s_codec)
            offset += len(note_ids)
        loaded.append((s, meta, p, c, m, score_ids[sp]))
        if progress:
            progress("assemble", i + 1, len(perfs))

    rows: list[dict] = []
    P, C, M, SI, NI = [], [], [], [], []
    group_of: dict[tuple[int, int], int] = {}

    def add(row: dict, p: np.ndarray, c: np.ndarray, m: np.ndarray, score_id: int, k: int) -> None:
        sm = scores_meta[score_id]
        lo, hi = k * N, min((k + 1) * N, sm["n_notes"])
        pad = N - (hi - lo)
        P.append(np.pad(p[lo:hi], ((0, pad), (0, 0))))
        C.append(np.pad(c[lo:hi], ((0, pad), (0, 0))))
        M.append(np.pad(m[lo:hi], (0, pad)))
        SI.append(np.pad(np.arange(sm["offset"] + lo, sm["offset"] + hi, dtype=np.int32), (0, pad), constant_values=-1))
        NI.append(np.pad(np.arange(lo, hi, dtype=np.int32), (0, pad), constant_values=-1))
        group_of.setdefault((score_id, k), len(group_of))
        rows.append({**row, "segment": k, "n_notes": hi - lo, "n_played": int(m[lo:hi].sum()),
                     "_group": group_of[(score_id, k)]})

    def keep(m: np.ndarray, n_notes: int, k: int) -> bool:
        seg = m[k * N: min((k + 1) * N, n_notes)]
        return seg.sum() >= max(1, MIN_PLAYED_FRACTION * len(seg))

    split_of = {piece: assign_split(piece, fractions) for piece in {s.piece for s in perfs}}
    perf_index = {}
    for s, meta, p, c, m, sid in loaded:
        n_notes = scores_meta[sid]["n_notes"]
        split = split_of[s.piece]
        perf_index[s.key] = len(perf_index)
        base = {"piece": s.piece, "performance": s.name, "dataset": s.dataset, "score": meta["score"],
                "split": split, "synthetic": 0, "has_cep": int(meta["has_cep"]), "_perf": perf_index[s.key]}
        for k in range(math.ceil(n_notes / N)):
            if keep(m, n_notes, k):
                add(base, p, c, m, sid, k)
    n_real = len(rows)

    if mixup:
        # mixup: the mean of two train performances of a score, over the notes both played
        by_score: dict[int, list] = {}
        for item in loaded:
            if split_of[item[0].piece] == "train":
                by_score.setdefault(item[5], []).append(item)
        for sid, items in by_score.items():
            n_notes = scores_meta[sid]["n_notes"]
            for (sa, ma_, pa, ca, ma, _), (sb, _mb, pb, cb, mb, _) in combinations(items, 2):
                both = ma & mb
                p = np.where(both[:, None], (pa + pb) / 2, 0).astype(np.float32)
                c = np.where(both[:, None], (ca + cb) / 2, 0).astype(np.float32)
                base = {"piece": sa.piece, "performance": f"{sa.name}+{sb.name}", "dataset": sa.dataset,
                        "score": ma_["score"], "split": "train", "synthetic": 1,
                        "has_cep": int(ma_["has_cep"] and _mb["has_cep"]), "_perf": -1}
                for k in range(math.ceil(n_notes / N)):
                    if keep(both, n_notes, k):
                        add(base, p, c, both, sid, k)

    S = len(rows)
    if S == 0:
        raise DexterError("nothing could be encoded: no segment in the store (see errors.jsonl)")
    p_codec = np.stack(P).astype(np.float32)
    c_codec = np.stack(C).astype(np.float32)
    mask = np.stack(M).astype(bool)
    s_index = np.stack(SI)
    note_index = np.stack(NI)
    s_codec = np.concatenate(s_rows).astype(np.float32)
    seg_split = np.array([SPLITS.index(r["split"]) for r in rows], dtype=np.int8)
    seg_synth = np.array([r["synthetic"] for r in rows], dtype=np.int8)
    seg_group = np.array([r["_group"] for r in rows], dtype=np.int64)
    seg_perf = np.array([r["_perf"] for r in rows], dtype=np.int64)

    # normalisation statistics from the real train segments only
    train = (seg_split == 0) & (seg_synth == 0)
    tm = mask & train[:, None]
    p_mean, p_std = _masked_stats(p_codec, tm)
    lbp = p_codec.copy()
    lbp[..., 0] = np.log(np.where(tm, np.maximum(p_codec[..., 0], 1e-6), 1.0))
    lp_mean, lp_std = _masked_stats(lbp, tm)
    c_mean, c_std = _masked_stats(c_codec, tm)
    c_min = c_codec[tm].min(axis=0).tolist() if tm.any() else [0.0] * c_codec.shape[-1]
    c_max = c_codec[tm].max(axis=0).tolist() if tm.any() else [0.0] * c_codec.shape[-1]
    train_scores = np.zeros(len(s_codec), dtype=bool)
    for sm in scores_meta:
        if split_of[sm["piece"]] == "train":
            train_scores[sm["offset"]: sm["offset"] + sm["n_notes"]] = True
    s_mean, s_std = _masked_stats(s_codec, train_scores)

    arrays = {"p_codec": p_codec, "c_codec": c_codec, "mask": mask, "s_index": s_index,
              "note_index": note_index, "s_codec": s_codec, "seg_split": seg_split,
              "seg_synthetic": seg_synth, "seg_group": seg_group, "seg_perf": seg_perf}
    for name, arr in arrays.items():
        save_npy(store / f"{name}.npy", arr)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=INDEX_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for i, r in enumerate(rows):
        writer.writerow({**r, "segment_id": i})
    write_text(store / "index.csv", buf.getvalue())
    write_json(store / "scores.json", scores_meta)
    write_text(store / "errors.jsonl", "".join(json.dumps(e) + "\n" for e in skipped))

    per_dataset: dict[str, dict] = {}
    for s, meta, p, c, m, sid in loaded:
        d = per_dataset.setdefault(s.dataset, {"performances": 0, "notes": 0, "segments": 0, "skipped": 0})
        d["performances"] += 1
        d["notes"] += int(m.sum())
    for e in skipped:
        per_dataset.setdefault(e["dataset"], {"performances": 0, "notes": 0, "segments": 0, "skipped": 0})["skipped"] += 1
    for r in rows:
        per_dataset[r["dataset"]]["segments"] += 1
    per_split = {sp: int(((seg_split == i) & (seg_synth == 0)).sum()) for i, sp in enumerate(SPLITS)}
    per_split["train_synthetic"] = int(seg_synth.sum())
    pieces = {sp: sorted(pc for pc, x in split_of.items() if x == sp) for sp in SPLITS}

    meta = {
        "codec_version": CODEC_VERSION,
        "max_note_seq": N,
        "mixup": bool(mixup),
        "p_codec_names": list(P_CODEC_NAMES),
        "s_codec_names": list(S_CODEC_NAMES),
        "c_codec_names": list(C_CODEC_NAMES),
        "split_fractions": list(fractions),
        "counts": {"segments": S, "real_segments": n_real, "synthetic_segments": S - n_real,
                   "performances": len(loaded), "scores": len(scores_meta), "notes": int(sum(int(x[4].sum()) for x in loaded)),
                   "skipped": len(skipped), "missing": missing, "per_split": per_split, "per_dataset": per_dataset},
        "pieces": pieces,
        "stats": {"p_mean": p_mean, "p_std": p_std, "p_log_mean": lp_mean, "p_log_std": lp_std,
                  "c_mean": c_mean, "c_std": c_std, "c_min": c_min, "c_max": c_max,
                  "s_mean": s_mean, "s_std": s_std},
        "arguments": arguments or {},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json(store / "meta.json", meta)  # last: the store is complete
    return AssembleReport(S, n_real, S - n_real, len(loaded), len(scores_meta), meta["counts"]["notes"],
                          per_dataset, per_split, skipped, missing, time.perf_counter() - t0)


class CodecStore:
    """Read access to an assembled store (arrays memory-mapped).

    Parameters
    ----------
    path : Path
        The store folder.

    Raises
    ------
    DexterError
        If the folder is not a complete store of this codec version.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not meta_path.is_file():
            if self.path.is_dir() and (self.path / "parts").is_dir():
                raise DexterError(f"{self.path} is an incomplete codec store (no meta.json): re-run `dexter codec` or `dexter codec --merge`")
            raise DexterError(f"no codec store at {self.path} (run `dexter codec` first)")
        try:
            self.meta = json.loads(meta_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DexterError(f"{meta_path} is unreadable: {exc}") from exc
        if not isinstance(self.meta, dict):
            raise DexterError(f"{meta_path} is not a codec store's metadata (a JSON object)")
        version = self.meta.get("codec_version")
        if version != CODEC_VERSION:
            raise DexterError(f"{self.path} has codec version {version}, this dexter reads version {CODEC_VERSION}: re-run `dexter codec`")
        for name in ARRAY_FILES:
            try:
                setattr(self, name, np.load(self.path / f"{name}.npy", mmap_mode="r", allow_pickle=False))
            except (OSError, ValueError) as exc:
                why = ("not a plain numeric array (pickled objects are never loaded)" if "pickle" in str(exc)
                       else str(exc))
                raise DexterError(f"{self.path}: damaged array file {name}.npy: {why}; re-run `dexter codec`") from exc
        try:
            self.N = int(self.meta["max_note_seq"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DexterError(f"{meta_path} gives no segment length (max_note_seq): re-run `dexter codec`") from exc
        self._check_shapes()
        self._check_meta(meta_path)

    def _check_meta(self, meta_path: Path) -> None:
        """Refuse a ``meta.json`` whose statistics do not fit the codecs it names (a packed store keeps
        the full store's counts, so the counts are not compared with the arrays)."""
        dims = {"p": len(self.meta.get("p_codec_names", [])), "c": len(self.meta.get("c_codec_names", [])),
                "s": len(self.meta.get("s_codec_names", []))}
        stats = self.meta.get("stats")
        if not isinstance(stats, dict):
            raise DexterError(f"{meta_path} holds no codec statistics (stats): re-run `dexter codec`")
        for key in ("p_mean", "p_std", "p_log_mean", "p_log_std", "c_mean", "c_std", "s_mean", "s_std"):
            v = stats.get(key)
            ok = isinstance(v, list) and len(v) == dims[key[0]] and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
            if not ok:
                raise DexterError(f"{meta_path}: stats.{key} must be a list of {dims[key[0]]} numbers, got "
                                  f"{type(v).__name__}{f' of {len(v)}' if isinstance(v, list) else ''}: "
                                  "re-run `dexter codec`")

    def _check_shapes(self) -> None:
        """Refuse arrays that disagree with each other (segment count) or with ``meta.json`` (segment length N)."""
        S = self.seg_split.shape[0] if self.seg_split.ndim else 0
        for name in ARRAY_FILES:
            shape = getattr(self, name).shape
            if name == "s_codec":  # one row per score note, not per segment
                continue
            if not shape or shape[0] != S:
                raise DexterError(f"{self.path}: {name}.npy holds {shape[0] if shape else 0} segments, seg_split.npy "
                                  f"{S}; the store is inconsistent: re-run `dexter codec`")
            if name in SEGMENT_ARRAYS and (len(shape) < 2 or shape[1] != self.N):
                held = shape[1] if len(shape) > 1 else "no"
                raise DexterError(f"{self.path}: meta.json gives segments of {self.N} notes (max_note_seq), "
                                  f"{name}.npy holds segments of {held}; the store is inconsistent: re-run `dexter codec`")

    def __len__(self) -> int:
        return len(self.seg_split)

    @property
    def index(self) -> list[dict]:
        """The segment index rows (parsed from ``index.csv``)."""
        if not hasattr(self, "_index"):
            with open(self.path / "index.csv", newline="", encoding="utf-8") as fh:
                self._index = list(csv.DictReader(fh))
        return self._index

    @property
    def scores(self) -> list[dict]:
        """The score table (``scores.json``)."""
        if not hasattr(self, "_scores"):
            self._scores = json.loads((self.path / "scores.json").read_text())
        return self._scores

    def score_of(self, segment: int) -> int:
        """Index into :attr:`scores` of the score a segment belongs to."""
        if not hasattr(self, "_offsets"):
            self._offsets = np.array([s["offset"] for s in self.scores])
        first = int(np.asarray(self.s_index[segment])[0])
        return int(np.searchsorted(self._offsets, first, side="right") - 1)

    def split_indices(self, split: str, synthetic: bool = True) -> np.ndarray:
        """Segment indices of a split (``train``/``valid``/``test``)."""
        if split not in SPLITS:
            raise DexterError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        sel = np.asarray(self.seg_split) == SPLITS.index(split)
        if not synthetic:
            sel &= np.asarray(self.seg_synthetic) == 0
        return np.flatnonzero(sel)

    def segment(self, i: int) -> dict[str, np.ndarray]:
        """One segment: p_codec (N,5), s_codec (N,F), c_codec (N,C), mask (N,)."""
        si = np.asarray(self.s_index[i])
        s = np.where((si >= 0)[:, None], self.s_codec[np.maximum(si, 0)], 0).astype(np.float32)
        return {"p_codec": np.asarray(self.p_codec[i]), "s_codec": s,
                "c_codec": np.asarray(self.c_codec[i]), "mask": np.asarray(self.mask[i])}
