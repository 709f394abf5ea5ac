"""``dexter evaluate``: render the test pieces with each renderer, score them against every human.

Renderers
---------
dexter
    A checkpoint, rendering whole pieces through render's core.
deadpan
    The score's notated tempo (else the training median), constant velocity, no timing
    deviation, notated durations, no pedal: the floor.
linear
    Ridge regression from the normalised s_codec to each normalised p_codec row, fitted
    on the store's real train segments only (in the spirit of the Basis Mixer).
external:DIR
    MIDI files of another system named after the piece, aligned with parangonar.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .data.store import CodecStore
from .errors import DexterError
from .evaluate import METRICS, Performance, human_ceiling, score_against_humans

Progress = Callable[[str, int, int], None]


@dataclass
class Piece:
    """A test piece: its score entry in the store and every human performance of it."""

    score_id: int
    entry: dict
    onset_beat: np.ndarray
    s_codec: np.ndarray
    humans: list[Performance]
    names: list[str]

    @property
    def path(self) -> Path:
        return Path(self.entry["root"]) / self.entry["score"]

    @property
    def key(self) -> str:
        return f"{self.entry['piece']} ({self.entry['score']})"


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


class LinearRenderer:
    """Ridge regression s_codec -> p_codec rows (normalised space), fitted on real train segments."""

    def __init__(self, store: CodecStore, alpha: float = 1.0, max_rows: int = 400_000, seed: int = 0):
        from .model.normalize import CodecNormalizer
        import torch

        self.norm = CodecNormalizer(store.meta["stats"])
        idx = store.split_indices("train", synthetic=False)
        if len(idx) == 0:
            raise DexterError("the linear reference needs a non-empty train split")
        self.fitted_on = idx
        m = np.asarray(store.mask)[idx]
        si = np.asarray(store.s_index)[idx][m]
        X = np.asarray(store.s_codec)[si]
        Y = np.asarray(store.p_codec)[idx][m]
        if len(X) > max_rows:
            keep = np.random.default_rng(seed).choice(len(X), max_rows, replace=False)
            X, Y = X[keep], Y[keep]
        Xn = self._features(X)
        Yn = self.norm.encode_p(torch.from_numpy(np.array(Y, dtype=np.float32))).numpy().astype(np.float64)
        A = Xn.T @ Xn + alpha * np.eye(Xn.shape[1])
        A[-1, -1] -= alpha  # the bias is not shrunk
        self.W = np.linalg.solve(A, Xn.T @ Yn)

    def _features(self, s: np.ndarray) -> np.ndarray:
        import torch

        z = self.norm.encode_s(torch.from_numpy(np.array(s, dtype=np.float32))).numpy().astype(np.float64)
        return np.concatenate([np.clip(z, -10, 10), np.ones((len(z), 1))], axis=1)

    def __call__(self, piece: Piece) -> Performance:
        import torch

        z = torch.from_numpy((self._features(piece.s_codec) @ self.W).astype(np.float32))
        return Performance(self.norm.decode_p(z).numpy(), np.ones(len(z), dtype=bool))


class DeadpanRenderer:
    """Notated tempo, constant velocity, notated durations, no pedal."""

    def __init__(self, store: CodecStore):
        st = store.meta["stats"]
        self.default_bp = float(math.exp(st["p_log_mean"][0]))
        self.velocity = float(st["p_log_mean"][1])

    def __call__(self, piece: Piece) -> Performance:
        from .data.scores import load_score, notated_beat_period

        bp = None
        try:
            bp = notated_beat_period(load_score(piece.path, unfold=piece.entry["unfolded"]))
        except DexterError:
            pass
        n = len(piece.onset_beat)
        p = np.zeros((n, 5), dtype=np.float32)
        p[:, 0] = bp or self.default_bp
        p[:, 1] = self.velocity
        return Performance(p, np.ones(n, dtype=bool))


class DexterRenderer:
    """Whole-piece rendering with a checkpoint (render's core)."""

    def __init__(self, checkpoint: Path | None, sampler: str = "dpm++", steps: int = 20, seed: int = 0):
        from .engine import load_expression

        self.sampler, self.steps, self.seed = sampler, steps, seed
        self.loaded = load_expression(checkpoint)  # once, not per piece

    def __call__(self, piece: Piece) -> Performance:
        from .render import render_piece_codec

        p, note_ids = render_piece_codec(piece.path, loaded=self.loaded, unfold=piece.entry["unfolded"],
                                         sampler=self.sampler, steps=self.steps, seed=self.seed)
        if list(note_ids) != list(piece.entry["note_ids"]):
            raise DexterError(f"{piece.key}: the score's notes differ from the store's")
        return Performance(p[0], np.ones(len(p[0]), dtype=bool))


class ExternalRenderer:
    """MIDI files produced by another system, one per piece, aligned to the score with parangonar."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DexterError(f"external renderer folder not found: {folder}")

    def find(self, piece: Piece) -> Path:
        stems = {piece.entry["piece"].replace("/", "_"), piece.entry["score"].replace("/", "_").rsplit(".", 1)[0],
                 Path(piece.entry["score"]).parent.name, Path(piece.entry["piece"]).name}
        for f in sorted(self.folder.iterdir()):
            if f.suffix.lower() in (".mid", ".midi") and f.stem in stems:
                return f
        raise DexterError(f"no MIDI for {piece.key} in {self.folder} (expected one of {', '.join(sorted(stems))}.mid)")

    def __call__(self, piece: Piece) -> Performance:
        from .data.align import auto_align, check_coverage, load_performance
        from .data.encode import encode_performance
        from .data.layouts import PerformanceSource
        from .data.scores import load_score

        midi = self.find(piece)
        score = load_score(piece.path, unfold=piece.entry["unfolded"])
        perf, _ = load_performance(midi)
        al = auto_align(score.part, perf)
        check_coverage(al, score, perf, midi.name)
        enc = encode_performance(PerformanceSource("external", "", midi.stem, piece.path, midi, None, midi.parent),
                                 score, perf, al)
        return Performance(enc.p_codec, enc.mask)


@dataclass
class EvaluationReport:
    """Per renderer and piece: metric medians over humans, the human ceiling, problems."""

    per_piece: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    curves: list[tuple[Piece, dict]] = field(default_factory=list)  # (piece, {renderer: Performance})
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


def make_renderer(spec: str, store: CodecStore, checkpoint: Path | None, sampler: str, steps: int, seed: int):
    """A renderer from ``dexter``, ``deadpan``, ``linear`` or ``external:DIR``."""
    if spec == "dexter":
        return DexterRenderer(checkpoint, sampler, steps, seed)
    if spec == "deadpan":
        return DeadpanRenderer(store)
    if spec == "linear":
        return LinearRenderer(store)
    if spec.startswith("external:"):
        return ExternalRenderer(Path(spec.split(":", 1)[1]))
    raise DexterError(f"unknown renderer {spec!r}; choose from dexter, deadpan, linear, external:DIR")


def evaluate_store(store_path: Path, renderers: list[str], *, checkpoint: Path | None = None, split: str = "test",
                   limit: int | None = None, sampler: str = "dpm++", steps: int = 20, seed: int = 0,
                   progress: Progress | None = None) -> EvaluationReport:
    """Evaluate renderers on the whole pieces of a store's split against every human performance.

    Returns
    -------
    EvaluationReport
        ``summary[renderer]`` and ``summary["human"]``: median over pieces of each metric.
    """
    t0 = time.perf_counter()
    store = CodecStore(store_path)
    pieces = store_pieces(store, split, limit)
    if not pieces:
        raise DexterError(f"no {split} piece with human performances in {store_path}")
    made = {spec: make_renderer(spec, store, checkpoint, sampler, steps, seed) for spec in renderers}
    report = EvaluationReport()
    total = len(pieces) * (len(made) + 1)
    done = 0
    for piece in pieces:
        ceiling = human_ceiling(piece.onset_beat, piece.humans)
        if ceiling is None:
            report.problems.append(f"{piece.key}: one human performance only, no human-to-human reference")
        report.per_piece.append({"piece": piece.key, "renderer": "human", "n_humans": len(piece.humans),
                                 **(ceiling or {k: float("nan") for k in METRICS})})
        done += 1
        if progress:
            progress("evaluate", done, total)
        preds = {}
        for spec, renderer in made.items():
            try:
                pred = renderer(piece)
                preds[spec] = pred
                row = score_against_humans(piece.onset_beat, pred, piece.humans)
            except DexterError as exc:
                report.problems.append(f"{spec} on {piece.key}: {exc}")
                row = {k: float("nan") for k in METRICS}
            report.per_piece.append({"piece": piece.key, "renderer": spec, "n_humans": len(piece.humans), **row})
            done += 1
            if progress:
                progress("evaluate", done, total)
        report.curves.append((piece, preds))
    for name in ["human", *made]:
        rows = [r for r in report.per_piece if r["renderer"] == name]
        report.summary[name] = {k: _nanmedian([r[k] for r in rows]) for k in METRICS}
        report.summary[name]["pieces"] = sum(1 for r in rows if np.isfinite(r["velocity_r"]))
    report.seconds = time.perf_counter() - t0
    return report


def _nanmedian(values: list[float]) -> float:
    v = np.array([x for x in values if np.isfinite(x)])
    return float(np.median(v)) if len(v) else float("nan")


def write_report(report: EvaluationReport, out: Path) -> list[Path]:
    """``results.json``, ``results.csv`` and the plots into ``out``; returns the files written."""
    import csv
    import io
    import json

    from .fileio import write_text
    from .plots import plot_evaluation_summary, plot_piece_curves

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clean = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v  # noqa: E731
    payload = {"summary": {r: {k: clean(v) for k, v in d.items()} for r, d in report.summary.items()},
               "per_piece": [{k: clean(v) for k, v in row.items()} for row in report.per_piece],
               "problems": report.problems, "seconds": report.seconds}
    write_text(out / "results.json", json.dumps(payload, indent=2) + "\n")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["piece", "renderer", "n_humans", *METRICS], lineterminator="\n")
    w.writeheader()
    for row in report.per_piece:
        w.writerow(row)
    write_text(out / "results.csv", buf.getvalue())
    files = [out / "results.json", out / "results.csv"]
    files.append(plot_evaluation_summary(out / "summary.png", report.summary))
    for k, (piece, preds) in enumerate(report.curves):
        name = piece.entry["piece"].replace("/", "_")
        files.append(plot_piece_curves(out / f"curves_{k:02d}_{name}.png", piece, preds))
    return files
