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
canonical order, so performances of a piece line up note for note
(:mod:`dexter_cli.data.assemble` writes the store).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DexterError
from .split import SPLITS

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
