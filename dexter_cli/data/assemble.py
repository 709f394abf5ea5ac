"""Assemble a codec store's arrays from its per-performance parts (layout: :mod:`dexter_cli.data.store`).

Segment k of every performance of a score covers score notes [k N, (k+1) N) in canonical order,
so performances of a piece line up note for note. With mixup, the mean of each pair of train
performances of a score (over the notes both played) is added as a synthetic performance.
Normalisation statistics come from the real train segments only.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DexterError, DexterWarning
from ..fileio import save_npy, write_json, write_text
from .codec import C_CODEC_NAMES, P_CODEC_NAMES, Row
from .layouts import PerformanceSource
from .parts import Parts
from .split import SPLITS, assign_splits
from .store import CODEC_VERSION, INDEX_COLUMNS, MIN_PLAYED_FRACTION, AssembleReport, _masked_stats
from .vocab import S_CODEC_NAMES


@dataclass
class _Loaded:
    """One performance's encoded part and the row of its score."""

    source: PerformanceSource
    meta: dict
    p: np.ndarray
    c: np.ndarray
    mask: np.ndarray
    score_id: int


@dataclass
class _Segments:
    """The segments cut so far: per-segment rows and the padded arrays of each."""

    N: int
    scores: list[dict]
    rows: list[dict] = field(default_factory=list)
    arrays: dict[str, list] = field(default_factory=lambda: {k: [] for k in ("P", "C", "M", "SI", "NI")})
    group_of: dict[tuple[int, int], int] = field(default_factory=dict)

    def keep(self, m: np.ndarray, n_notes: int, k: int) -> bool:
        """Segment k is kept when enough of its notes were played."""
        seg = m[k * self.N: min((k + 1) * self.N, n_notes)]
        return seg.sum() >= max(1, MIN_PLAYED_FRACTION * len(seg))

    def cut(self, row: dict, p: np.ndarray, c: np.ndarray, m: np.ndarray, score_id: int) -> None:
        """Every kept segment of one (real or mixed) performance."""
        n_notes = self.scores[score_id]["n_notes"]
        for k in range(math.ceil(n_notes / self.N)):
            if self.keep(m, n_notes, k):
                self._add(row, p, c, m, score_id, k)

    def _add(self, row: dict, p: np.ndarray, c: np.ndarray, m: np.ndarray, score_id: int, k: int) -> None:
        N, sm, a = self.N, self.scores[score_id], self.arrays
        lo, hi = k * N, min((k + 1) * N, sm["n_notes"])
        pad = N - (hi - lo)
        a["P"].append(np.pad(p[lo:hi], ((0, pad), (0, 0))))
        a["C"].append(np.pad(c[lo:hi], ((0, pad), (0, 0))))
        a["M"].append(np.pad(m[lo:hi], (0, pad)))
        a["SI"].append(np.pad(np.arange(sm["offset"] + lo, sm["offset"] + hi, dtype=np.int32), (0, pad),
                              constant_values=-1))
        a["NI"].append(np.pad(np.arange(lo, hi, dtype=np.int32), (0, pad), constant_values=-1))
        self.group_of.setdefault((score_id, k), len(self.group_of))
        self.rows.append({**row, "segment": k, "n_notes": hi - lo, "n_played": int(m[lo:hi].sum()),
                          "_group": self.group_of[(score_id, k)]})


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
    store, N = Path(store), int(max_note_seq)
    if N < 1:
        raise DexterError(f"--max-note-seq must be positive, got {N}")
    (store / "meta.json").unlink(missing_ok=True)  # from here on the store is incomplete
    for stale in store.glob(".*.tmp*"):  # left by an assembly killed mid-write (atomic writes' temporary files)
        stale.unlink(missing_ok=True)
    parts = Parts(store)
    perfs, skipped, missing = _present(parts, sources)
    loaded, scores, s_rows = _load(parts, perfs, progress)
    split_of = _splits({s.piece for s in perfs}, fractions)
    segs = _Segments(N, scores)
    for i, item in enumerate(loaded):
        s = item.source
        segs.cut({"piece": s.piece, "performance": s.name, "dataset": s.dataset, "score": item.meta["score"],
                  "split": split_of[s.piece], "synthetic": 0, "has_cep": int(item.meta["has_cep"]), "_perf": i},
                 item.p, item.c, item.mask, item.score_id)
    n_real = len(segs.rows)
    if mixup:
        _mix(segs, loaded, split_of)
    if not segs.rows:
        raise DexterError("nothing could be encoded: no segment in the store (see errors.jsonl)")
    arrays = _arrays(segs, s_rows)
    stats = _statistics(arrays, scores, split_of)
    _write(store, arrays, segs.rows, scores, skipped)
    S = len(segs.rows)
    per_dataset, per_split = _counts(loaded, skipped, segs.rows, arrays)
    _warn_empty(per_split, fractions)
    meta = {
        "codec_version": CODEC_VERSION,
        "max_note_seq": N,
        "mixup": bool(mixup),
        "p_codec_names": list(P_CODEC_NAMES),
        "s_codec_names": list(S_CODEC_NAMES),
        "c_codec_names": list(C_CODEC_NAMES),
        "split_fractions": list(fractions),
        "counts": {"segments": S, "real_segments": n_real, "synthetic_segments": S - n_real,
                   "performances": len(loaded), "scores": len(scores),
                   "notes": int(sum(int(x.mask.sum()) for x in loaded)),
                   "skipped": len(skipped), "missing": missing, "per_split": per_split, "per_dataset": per_dataset},
        "pieces": {sp: sorted(pc for pc, x in split_of.items() if x == sp) for sp in SPLITS},
        "stats": stats,
        "arguments": arguments or {},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json(store / "meta.json", meta)  # last: the store is complete
    return AssembleReport(S, n_real, S - n_real, len(loaded), len(scores), meta["counts"]["notes"],
                          per_dataset, per_split, skipped, missing, time.perf_counter() - t0)


def _splits(pieces: set[str], fractions: tuple[float, float, float]) -> dict[str, str]:
    """Each piece's split (:func:`~dexter_cli.data.split.assign_splits`), with a warning when the
    pieces were too few for the hash split and were dealt out by quota."""
    split_of, dealt = assign_splits(pieces, fractions)
    if dealt:
        warnings.warn(f"{len(split_of)} pieces are too few for the hash split to fill every split of "
                      f"{'/'.join(f'{f:.0%}' for f in fractions)}: they were dealt out by quota "
                      f"({', '.join(f'{sp} {sum(v == sp for v in split_of.values())}' for sp in SPLITS)})", DexterWarning)
    return split_of


def _warn_empty(per_split: dict[str, int], fractions: tuple[float, float, float]) -> None:
    """A warning for each wanted split that holds no real segment."""
    cost = {"valid": "dexter train keeps no best checkpoint by validation (best is the last step)",
            "test": "dexter test and dexter evaluate have no test piece to score"}
    for sp, f in zip(SPLITS[1:], fractions[1:]):
        if f > 0 and per_split[sp] == 0:
            warnings.warn(f"the {sp} split is empty: {cost[sp]}; more pieces fill it (a piece's performances "
                          "are never split)", DexterWarning)


def _present(parts: Parts, sources: list[PerformanceSource]) -> tuple[list, list, int]:
    """The sources with an encoded part (sorted by key), the errors of those skipped, and the count
    of those with neither."""
    perfs, skipped, missing = [], [], 0
    for s in sorted(sources, key=lambda s: s.key):
        if parts.perf_path(s.key).is_file():
            perfs.append(s)
        elif (err := parts.load_error(s.key)) is not None:
            skipped.append(err)
        else:
            missing += 1
    return perfs, skipped, missing


def _load(parts: Parts, perfs: list[PerformanceSource], progress) -> tuple[list[_Loaded], list[dict], list]:
    """Every performance's part, and the score table: each score part once, in order of first use."""
    score_ids: dict[str, int] = {}
    scores: list[dict] = []
    s_rows: list[np.ndarray] = []
    offset = 0
    loaded = []
    for i, s in enumerate(perfs):
        meta, p, c, m = parts.load_perf(s.key)
        sp = meta["score_part"]
        if sp not in score_ids:
            s_codec, note_ids, _ = parts.load_score(sp)
            score_ids[sp] = len(scores)
            scores.append({"score_id": len(scores), "dataset": s.dataset, "piece": s.piece,
                           "score": meta["score"], "root": str(s.root), "unfolded": sp.endswith("#unfolded"),
                           "offset": offset, "n_notes": int(len(note_ids)), "note_ids": note_ids.tolist()})
            s_rows.append(s_codec)
            offset += len(note_ids)
        loaded.append(_Loaded(s, meta, p, c, m, score_ids[sp]))
        if progress:
            progress("assemble", i + 1, len(perfs))
    return loaded, scores, s_rows


def _mix(segs: _Segments, loaded: list[_Loaded], split_of: dict[str, str]) -> None:
    """Mixup: the mean of two train performances of a score, over the notes both played."""
    by_score: dict[int, list[_Loaded]] = {}
    for item in loaded:
        if split_of[item.source.piece] == "train":
            by_score.setdefault(item.score_id, []).append(item)
    for sid, items in by_score.items():
        for a, b in combinations(items, 2):
            both = a.mask & b.mask
            p = np.where(both[:, None], (a.p + b.p) / 2, 0).astype(np.float32)
            c = np.where(both[:, None], (a.c + b.c) / 2, 0).astype(np.float32)
            segs.cut({"piece": a.source.piece, "performance": f"{a.source.name}+{b.source.name}",
                      "dataset": a.source.dataset, "score": a.meta["score"], "split": "train", "synthetic": 1,
                      "has_cep": int(a.meta["has_cep"] and b.meta["has_cep"]), "_perf": -1}, p, c, both, sid)


def _arrays(segs: _Segments, s_rows: list[np.ndarray]) -> dict[str, np.ndarray]:
    a, rows = segs.arrays, segs.rows
    return {"p_codec": np.stack(a["P"]).astype(np.float32), "c_codec": np.stack(a["C"]).astype(np.float32),
            "mask": np.stack(a["M"]).astype(bool), "s_index": np.stack(a["SI"]), "note_index": np.stack(a["NI"]),
            "s_codec": np.concatenate(s_rows).astype(np.float32),
            "seg_split": np.array([SPLITS.index(r["split"]) for r in rows], dtype=np.int8),
            "seg_synthetic": np.array([r["synthetic"] for r in rows], dtype=np.int8),
            "seg_group": np.array([r["_group"] for r in rows], dtype=np.int64),
            "seg_perf": np.array([r["_perf"] for r in rows], dtype=np.int64)}


def _statistics(arrays: dict[str, np.ndarray], scores: list[dict], split_of: dict[str, str]) -> dict:
    """Normalisation statistics from the real train segments (and the train scores' notes) only."""
    p_codec, c_codec, mask, s_codec = arrays["p_codec"], arrays["c_codec"], arrays["mask"], arrays["s_codec"]
    train = (arrays["seg_split"] == 0) & (arrays["seg_synthetic"] == 0)
    tm = mask & train[:, None]
    p_mean, p_std = _masked_stats(p_codec, tm)
    lbp = p_codec.copy()
    lbp[..., Row.BEAT_PERIOD] = np.log(np.where(tm, np.maximum(p_codec[..., Row.BEAT_PERIOD], 1e-6), 1.0))
    lp_mean, lp_std = _masked_stats(lbp, tm)
    c_mean, c_std = _masked_stats(c_codec, tm)
    c_min = c_codec[tm].min(axis=0).tolist() if tm.any() else [0.0] * c_codec.shape[-1]
    c_max = c_codec[tm].max(axis=0).tolist() if tm.any() else [0.0] * c_codec.shape[-1]
    train_scores = np.zeros(len(s_codec), dtype=bool)
    for sm in scores:
        if split_of[sm["piece"]] == "train":
            train_scores[sm["offset"]: sm["offset"] + sm["n_notes"]] = True
    s_mean, s_std = _masked_stats(s_codec, train_scores)
    return {"p_mean": p_mean, "p_std": p_std, "p_log_mean": lp_mean, "p_log_std": lp_std,
            "c_mean": c_mean, "c_std": c_std, "c_min": c_min, "c_max": c_max, "s_mean": s_mean, "s_std": s_std}


def _write(store: Path, arrays: dict[str, np.ndarray], rows: list[dict], scores: list[dict], skipped: list) -> None:
    for name, arr in arrays.items():
        save_npy(store / f"{name}.npy", arr)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=INDEX_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for i, r in enumerate(rows):
        writer.writerow({**r, "segment_id": i})
    write_text(store / "index.csv", buf.getvalue())
    write_json(store / "scores.json", scores)
    write_text(store / "errors.jsonl", "".join(json.dumps(e) + "\n" for e in skipped))


def _counts(loaded: list[_Loaded], skipped: list, rows: list[dict], arrays: dict) -> tuple[dict, dict]:
    """Performances, notes, segments and skipped performances per dataset; real segments per split."""
    per_dataset: dict[str, dict] = {}
    for item in loaded:
        d = per_dataset.setdefault(item.source.dataset, {"performances": 0, "notes": 0, "segments": 0, "skipped": 0})
        d["performances"] += 1
        d["notes"] += int(item.mask.sum())
    for e in skipped:
        per_dataset.setdefault(e["dataset"], {"performances": 0, "notes": 0, "segments": 0, "skipped": 0})["skipped"] += 1
    for r in rows:
        per_dataset[r["dataset"]]["segments"] += 1
    split, synth = arrays["seg_split"], arrays["seg_synthetic"]
    per_split = {sp: int(((split == i) & (synth == 0)).sum()) for i, sp in enumerate(SPLITS)}
    per_split["train_synthetic"] = int(synth.sum())
    return per_dataset, per_split
