"""``dexter codec``: turn every aligned performance into codecs, in parallel, resumably.

Work is grouped by score (each score parsed once per worker), spread over
``workers`` processes, and sharded across cluster jobs by score. Each finished
performance is written to ``<store>/parts`` at once, so an interrupted run
resumes where it stopped; the store itself is assembled at the end (or by
``--merge`` once every shard is done).
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import DexterError
from .encode import (check_automatic_alignment, encode_performance, load_performance_and_alignment, matched_pairs,
                     needs_unfolding)
from .layouts import Discovery, PerformanceSource
from .parts import Parts
from .scores import LoadedScore, parse_score, prepare_score, score_features

# performances of one score per task: small enough to balance, large enough to reuse the parsed score
PERFS_PER_TASK = 4

Progress = Callable[[str, int, int], None]


@dataclass
class EncodeResult:
    key: str
    status: str  # "encoded", "cached", "skipped"
    notes: int = 0
    reason: str = ""


@dataclass
class EncodeReport:
    """What an encoding pass did."""

    results: list[EncodeResult] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)


_SCORES: OrderedDict[str, dict] = OrderedDict()


def _score(path: Path, unfold: bool) -> LoadedScore:
    """Score parsed once per worker (the two most recent), folded and unfolded views cached."""
    key = str(path)
    if key not in _SCORES:
        _SCORES[key] = {"part": parse_score(path)}
        while len(_SCORES) > 2:
            _SCORES.popitem(last=False)
    _SCORES.move_to_end(key)
    entry = _SCORES[key]
    if unfold not in entry:
        entry[unfold] = prepare_score(entry["part"], unfold, Path(path).name)
    return entry[unfold]


def encode_source(src: PerformanceSource, parts: Parts, window_beats: float = 4.0) -> EncodeResult:
    """Encode one performance into ``parts`` (or record why it was skipped)."""
    if parts.done(src.key):
        err = parts.load_error(src.key)
        return EncodeResult(src.key, "cached", reason=err["reason"] if err else "")
    record = {"key": src.key, "dataset": src.dataset, "piece": src.piece, "performance": src.name,
              "file": str(src.performance)}
    try:
        perf, alignment = load_performance_and_alignment(src)
        if src.dataset == "atepp":
            check_automatic_alignment(alignment)
        plain = _score(src.score, False)
        unfold = needs_unfolding(matched_pairs(alignment), plain.note_ids)
        score = _score(src.score, True) if unfold else plain
        score_part = src.score_key + ("#unfolded" if unfold else "")
        if not parts.has_score(score_part):
            parts.save_score(score_part, score_features(score), score.note_ids,
                             score.note_array["onset_beat"].astype("float64"))
        enc = encode_performance(src, score, perf, alignment, window_beats)
    except DexterError as exc:  # SkipPerformance, unreadable score, ...
        parts.save_error(src.key, {**record, "reason": str(exc)})
        return EncodeResult(src.key, "skipped", reason=str(exc))
    except Exception as exc:  # an unexpected failure of one file must not stop the run
        reason = f"unexpected {type(exc).__name__}: {exc}"
        parts.save_error(src.key, {**record, "reason": reason})
        return EncodeResult(src.key, "skipped", reason=reason)
    meta = {**record, "score_part": score_part, "score": src.score.relative_to(src.root).as_posix(),
            "has_cep": enc.has_cep, "n_matched": enc.n_matched, "n_notes": int(len(enc.mask))}
    parts.save_perf(src.key, meta, enc.p_codec, enc.c_codec, enc.mask)
    return EncodeResult(src.key, "encoded", notes=int(enc.mask.sum()))


def _run_task(sources: list[PerformanceSource], store: str, window_beats: float) -> list[EncodeResult]:
    parts = Parts(Path(store))
    return [encode_source(s, parts, window_beats) for s in sources]


def make_tasks(sources: list[PerformanceSource], shard: tuple[int, int] = (0, 1)) -> list[list[PerformanceSource]]:
    """Group performances by score into tasks; keep the scores of shard ``i`` of ``n``.

    Scores are dealt to shards round-robin in sorted order, so each shard
    parses its own scores only and the shards together cover everything once.
    """
    by_score: dict[str, list[PerformanceSource]] = {}
    for s in sorted(sources, key=lambda s: s.key):
        by_score.setdefault(s.score_key, []).append(s)
    i, n = shard
    tasks = []
    for j, key in enumerate(sorted(by_score)):
        if j % n != i:
            continue
        group = by_score[key]
        tasks += [group[k: k + PERFS_PER_TASK] for k in range(0, len(group), PERFS_PER_TASK)]
    # costly tasks first (cost ~ score size x (parse + performances)): no lone straggler at the end
    def cost(task: list[PerformanceSource]) -> float:
        try:
            size = task[0].score.stat().st_size
        except OSError:
            size = 0
        return -size * (2 + len(task))

    tasks.sort(key=cost)
    return tasks


def encode_all(
    discoveries: list[Discovery],
    store: Path,
    *,
    workers: int = 1,
    shard: tuple[int, int] = (0, 1),
    window_beats: float = 4.0,
    progress: Progress | None = None,
) -> EncodeReport:
    """Encode every discovered performance of this shard into ``<store>/parts``.

    Parameters
    ----------
    discoveries : list of Discovery
    store : Path
        The store folder (created if needed).
    workers : int
        Worker processes (1 = in this process).
    shard : (i, n)
        Encode the scores of shard i of n only.
    window_beats : float
        Half-width of the c_codec window.
    progress : callable, optional
        ``progress(stage, done, total)``.

    Returns
    -------
    EncodeReport
    """
    if workers < 1:
        raise DexterError(f"--workers must be at least 1, got {workers}")
    sources = [s for d in discoveries for s in d.sources]
    tasks = make_tasks(sources, shard)
    total = sum(len(t) for t in tasks)
    report = EncodeReport()
    t0 = time.perf_counter()
    store = Path(store)
    (store / "parts").mkdir(parents=True, exist_ok=True)
    if progress:
        progress("encode", 0, total)
    if workers == 1 or len(tasks) <= 1:
        for task in tasks:
            report.results += _run_task(task, str(store), window_beats)
            if progress:
                progress("encode", len(report.results), total)
    else:
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [pool.submit(_run_task, task, str(store), window_beats) for task in tasks]
            for fut in as_completed(futures):
                report.results += fut.result()
                if progress:
                    progress("encode", len(report.results), total)
    report.seconds = time.perf_counter() - t0
    return report
