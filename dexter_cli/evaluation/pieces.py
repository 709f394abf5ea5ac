"""Evaluation pieces: a score with every human performance of it, from a store or a list of files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.store import CodecStore
from ..errors import DexterError
from .metrics import Performance


@dataclass
class Piece:
    """A test piece: its score entry in the store and every human performance of it."""

    score_id: int
    entry: dict
    onset_beat: np.ndarray
    s_codec: np.ndarray
    humans: list[Performance]
    names: list[str]
    _score: object = None  # LoadedScore, loaded on first use

    @property
    def path(self) -> Path:
        return Path(self.entry["root"]) / self.entry["score"]

    @property
    def score(self):
        """The LoadedScore (parsed once)."""
        if self._score is None:
            from ..data.scores import load_score

            self._score = load_score(self.path, unfold=self.entry["unfolded"])
        return self._score

    @property
    def key(self) -> str:
        return f"{self.entry['piece']} ({self.entry['score']})"


@dataclass(frozen=True)
class Selection:
    """Which pieces ``dexter evaluate`` plays: a store's ``split``, or the rows of ``pieces_list`` (a
    CSV/TSV of ``score,performance[,alignment]``), at most ``limit`` of them (None: all)."""

    split: str = "test"
    pieces_list: Path | None = None
    limit: int | None = None


def store_pieces(store: CodecStore, split: str = "test", limit: int | None = None) -> list[Piece]:
    """The scores of a split with their human performances rebuilt from the real segments."""
    scores = store.scores
    seg_idx = store.split_indices(split, synthetic=False)
    by_perf: dict[int, list[int]] = {}
    for i in seg_idx:
        by_perf.setdefault(int(store.seg_perf[i]), []).append(int(i))
    pieces: dict[int, Piece] = {}
    names = {int(store.seg_perf[i]): store.index[i]["performance"] for i in seg_idx}
    onset_col = store.meta["s_codec_names"].index("onset_beat")
    for perf, segs in sorted(by_perf.items()):
        sid = store.score_of(segs[0])
        entry = scores[sid]
        n = entry["n_notes"]
        if sid not in pieces:
            s = np.asarray(store.s_codec[entry["offset"]: entry["offset"] + n])
            pieces[sid] = Piece(sid, entry, s[:, onset_col].astype(np.float64), s, [], [])
        p = np.zeros((n, 5), dtype=np.float32)
        m = np.zeros(n, dtype=bool)
        for i in segs:
            ni, mk = np.asarray(store.note_index[i]), np.asarray(store.mask[i])
            real = ni >= 0
            p[ni[real]] = np.asarray(store.p_codec[i])[real]
            m[ni[real]] = mk[real]
        pieces[sid].humans.append(Performance(p, m))
        pieces[sid].names.append(names[perf])
    out = [pieces[k] for k in sorted(pieces)]
    return out[:limit] if limit else out


def list_pieces(list_file: Path, limit: int | None = None, workers: int = 1) -> list[Piece]:
    """Pieces from a CSV/TSV list of ``score,performance[,alignment]`` rows (paths relative to the list).

    A performance is a ``.match`` file (its alignment inside) or a MIDI file with an
    alignment (ASAP ``note_alignment.tsv`` or parangonada ``align.csv``) or without one
    (parangonar aligns it). Rows of one score make one piece, named by the shortest tail of
    its path that tells the listed scores apart; a score or a performance that cannot be
    read or aligned is skipped with a reason (``Piece.entry["problems"]``). ``workers``
    processes load the pieces (scores parsed, performances aligned and encoded).
    """
    import csv

    list_file = Path(list_file)
    if not list_file.is_file():
        raise DexterError(f"pieces list not found: {list_file}")
    text = list_file.read_text(encoding="utf-8", errors="replace")
    dialect = "excel-tab" if "\t" in text else "excel"
    groups: dict[Path, list[tuple[Path, Path | None]]] = {}
    for k, row in enumerate(csv.reader(text.splitlines(), dialect=dialect), 1):
        row = [c.strip() for c in row]
        if not row or not row[0] or row[0].startswith("#") or row[0].lower() == "score":
            continue
        if len(row) < 2 or not row[1]:
            raise DexterError(f"{list_file.name} line {k}: expected score,performance[,alignment]")
        rel = lambda c: (list_file.parent / c) if not Path(c).is_absolute() else Path(c)  # noqa: E731
        groups.setdefault(rel(row[0]), []).append((rel(row[1]), rel(row[2]) if len(row) > 2 and row[2] else None))
    if not groups:
        raise DexterError(f"{list_file.name} lists no score")
    names = _unique_names(list(groups))
    jobs = [(sid, path, perfs, names[path]) for sid, (path, perfs) in enumerate(groups.items())][:limit or None]
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=mp.get_context("spawn")) as pool:
            return list(pool.map(_load_listed_piece, *zip(*jobs)))
    return [_load_listed_piece(*job, keep_score=True) for job in jobs]


def _unique_names(paths: list[Path]) -> dict[Path, str]:
    """For each path, the shortest tail (suffix dropped) that no other path ends with."""
    tails = {p: p.with_suffix("").parts for p in paths}
    names = {}
    for p, t in tails.items():
        k = 1
        while k < len(t) and any(q != p and u[-k:] == t[-k:] for q, u in tails.items()):
            k += 1
        names[p] = "/".join(t[-k:])
    return names


def _load_listed_piece(sid: int, score_path: Path, perfs: list[tuple[Path, Path | None]], name: str,
                       keep_score: bool = False) -> Piece:
    """One listed score with its performances encoded against it (see :func:`list_pieces`)."""
    from ..data.scores import load_score, score_features
    from ..data.vocab import S_CODEC_NAMES
    from ..data.encode import source_codecs

    entry = {"piece": name, "score": score_path.name, "root": str(score_path.parent),
             "unfolded": True, "note_ids": [], "problems": []}
    try:
        score = load_score(score_path, unfold=True)
        s = score_features(score)
    except DexterError as exc:  # one unreadable score is skipped with its reason, the rest evaluated
        entry["problems"].append(f"{score_path.name}: {exc}; piece not evaluated")
        entry["unreadable"] = True
        return Piece(sid, entry, np.zeros(0), np.zeros((0, len(S_CODEC_NAMES)), np.float32), [], [])
    entry["note_ids"] = list(score.note_ids)
    humans, names = [], []
    for perf_path, alignment in perfs:
        try:
            view, src = source_codecs(score, score_path, perf_path, alignment, unfold=True)
            if len(view) != len(score):
                raise DexterError("its alignment plays the score as written; list it apart")
        except DexterError as exc:
            entry["problems"].append(f"{perf_path.name}: {exc}")
            continue
        humans.append(Performance(src["p_codec"], src["mask"]))
        names.append(perf_path.name)
    onset = s[:, S_CODEC_NAMES.index("onset_beat")].astype(np.float64)
    return Piece(sid, entry, onset, s, humans, names, score if keep_score else None)
