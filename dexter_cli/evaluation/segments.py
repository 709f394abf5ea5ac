"""``dexter test``: sample a store's test segments with a checkpoint; MIDI, plots and metrics.

For each test segment: the predicted performance and its human label as MIDI
(and the source, in transfer mode), decoded against the score; plots of the
tempo and velocity curves and the p_codec rows; a metrics table. The metrics are
codec-level (the sampled p_codec against the label's, ``"level": "codec"`` in
``metrics.json``); ``dexter evaluate`` scores the MIDI files a user receives. In transfer
mode (the paper's transfer test) the source is noised to ``sample_steps_frac``
and denoised toward the target's controls, and the report says how far the
result moved from the source toward the target.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..data.codec import P_CODEC_NAMES, Row

from ..errors import DexterError
from ..sampling import SamplingOptions
from .metrics import pearson

Progress = Callable[[str, int, int], None]


@dataclass
class TestReport:
    metrics: dict = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    segments: int = 0
    seconds: float = 0.0


def _segment_score(store, seg: int, cache: dict):
    """The LoadedScore view of one segment's notes (for decoding)."""
    from ..data.scores import LoadedScore, load_score

    sid = store.score_of(seg)
    if sid not in cache:
        e = store.scores[sid]
        cache[sid] = load_score(Path(e["root"]) / e["score"], unfold=e["unfolded"])
        if list(cache[sid].note_ids) != list(e["note_ids"]):
            raise DexterError(f"{e['score']}: the score's notes differ from the store's (re-run dexter codec)")
    full = cache[sid]
    ni = np.asarray(store.note_index[seg])
    sel = ni[ni >= 0]
    return LoadedScore(None, full.note_ids[sel], sel, full.note_array[sel], full.unfolded), ni >= 0


def movement(source: np.ndarray, target: np.ndarray, result: np.ndarray, mask: np.ndarray) -> float:
    """How far ``result`` moved from ``source`` toward ``target``: 1 - |result - target| / |source - target|
    (normalised codec space, masked): 0 = stayed at the source, 1 = reached the target."""
    m = mask.astype(bool)
    d0 = np.linalg.norm((source - target)[m])
    if d0 < 1e-9:
        return float("nan")
    return float(1 - np.linalg.norm((result - target)[m]) / d0)


@dataclass(frozen=True)
class TestPlan:
    """What ``dexter test`` samples: at most ``limit`` test segments (None: all), ``batch_size`` at a
    time; with ``transfer`` the paper's transfer test on pairs; ``free_controls`` leaves the controls
    free instead of the label's; ``animate`` saves a GIF of the first sample being denoised."""

    limit: int | None = 16
    batch_size: int = 8
    transfer: bool = False
    free_controls: bool = False
    animate: bool = False

    __test__ = False  # not a pytest class


def run_test(store_path: Path, out: Path, options: SamplingOptions | dict | None = None, *,
             checkpoint: Path | None = None, plan: TestPlan | None = None,
             progress: Progress | None = None) -> TestReport:
    """Sample the test split of a store and write MIDI, plots and ``metrics.json`` under ``out``.

    ``options``: the sampling (a dict: the caller's choices over the model's recorded decoding); in a
    transfer test, ``options.strength`` is how deep the source is noised (DExter's sample_steps_frac):
    a transfer-trained model runs the paper's transfer (DDIM from the source), any other model a
    variation of the source toward the target's controls (the seed's test path).
    """
    from ..data.store import CodecStore
    from ..engine import load_expression
    from ..fileio import write_json
    from ..sampling import resolve

    t0 = time.perf_counter()
    plan = plan or TestPlan()
    transfer, batch_size = plan.transfer, plan.batch_size
    store = CodecStore(store_path)
    expr, config = load_expression(checkpoint)
    opts = resolve(config, options)
    if transfer:
        opts = opts.from_source()
    data, n = _test_data(store, config, plan)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    gen = opts.generator()
    preds, labels, masks, sources, moved = [], [], [], [], []
    cache: dict = {}
    report = TestReport()
    for b0 in range(0, n, batch_size):
        items = np.arange(b0, min(n, b0 + batch_size))
        batch = data.batch(items)
        drop = torch.ones(len(items), batch["c_codec"].shape[-1], dtype=torch.bool) if plan.free_controls else None
        frames = []
        cb = (lambda i, m, x0: frames.append(x0[0].clone())) if plan.animate and b0 == 0 else None
        # a transfer-trained model runs the paper's transfer; any other model transfers as the seed's test
        # path does: the source noised to strength T, denoised toward the target's controls
        x_start = batch["source_p"] if transfer and expr.target != "transfer" else None
        pred = expr.sample(batch, opts, generator=gen, x_start=x_start, drop_c=drop, callback=cb).numpy()
        label, mask = batch["p_codec"].numpy(), batch["mask"].numpy().astype(bool)
        preds.append(pred), labels.append(label), masks.append(mask)
        if transfer:
            src = batch["source_p"].numpy()
            sources.append(src)
            enc = lambda a: expr.norm.encode_p(torch.from_numpy(a)).numpy()  # noqa: E731
            moved += [movement(enc(src[k]), enc(label[k]), enc(pred[k]), mask[k]) for k in range(len(items))]
        for k, i in enumerate(items):
            seg = int(data.pairs[i][1] if transfer else data.indices[i])
            rows = {"pred": pred[k], "label": label[k], **({"source": src[k]} if transfer else {})}
            report.files += _write_segment(out, seg, _segment_score(store, seg, cache), rows, mask[k])
        if frames:
            from ..plots import animate_denoising

            view, real = _segment_score(store, int(data.pairs[0][1] if transfer else data.indices[0]), cache)
            decoded = [expr.norm.decode_p(f[None])[0].numpy()[real] for f in frames]
            report.files.append(animate_denoising(out / "denoising.gif", view.note_array["onset_beat"], decoded))
        if progress:
            progress("sample", min(n, b0 + batch_size), n)
    metrics = codec_metrics(np.concatenate(preds), np.concatenate(labels), np.concatenate(masks), expr.norm)
    if transfer:
        metrics["transfer_movement"] = float(np.nanmean(moved))
        metrics["sample_steps_frac"] = opts.strength
    report.metrics, report.segments = metrics, n
    ran = "ddim" if transfer and expr.target == "transfer" else opts.sampler  # the paper's transfer runs DDIM
    sampling = {"sampler": ran, "steps": opts.steps, "guidance": opts.guidance,
                "temperature": opts.temperature, "curves": opts.curves, "seed": opts.seed}
    write_json(out / "metrics.json", {"segments": n, "checkpoint": str(checkpoint or "bundled"), **sampling,
                                      "level": "codec", **metrics})
    report.files.append(out / "metrics.json")
    report.seconds = time.perf_counter() - t0
    return report


def _test_data(store, config: dict, plan: TestPlan) -> tuple[object, int]:
    """The test pairs (transfer) or real test segments of a store that fits the checkpoint, and how
    many of them to sample."""
    from ..data.dataset import PairSet, SegmentSet

    for key in ("p_codec_names", "s_codec_names", "c_codec_names"):
        if store.meta[key] != config["codec"][key]:
            raise DexterError(f"the checkpoint and the store differ in {key}")
    data = PairSet(store, "test") if plan.transfer else SegmentSet(store, "test", synthetic=False)
    n = min(len(data), plan.limit) if plan.limit else len(data)
    if n == 0:
        raise DexterError(f"no test {'pairs' if plan.transfer else 'segments'} in {store.path}")
    return data, n


def _write_segment(out: Path, seg: int, view_real: tuple, rows: dict[str, np.ndarray], mask: np.ndarray) -> list[Path]:
    """One segment's MIDI files (pred, label, and source in transfer) and its plot."""
    from ..data.codec import fill_unplayed
    from ..data.decode import decode_performance, save_midi
    from ..plots import plot_segment

    view, real = view_real
    stem = out / f"seg{seg:06d}"
    for name, arr in rows.items():
        save_midi(decode_performance(view, fill_unplayed(arr[real], mask[real])), Path(f"{stem}_{name}.mid"))
    src = rows.get("source")
    plot_segment(Path(f"{stem}.png"), view.note_array["onset_beat"], rows["pred"][real], rows["label"][real],
                 mask[real], src[real] if src is not None else None, title=f"segment {seg}")
    return [Path(f"{stem}_pred.mid"), Path(f"{stem}.png")]


def codec_metrics(P: np.ndarray, L: np.ndarray, M: np.ndarray, norm) -> dict[str, float]:
    """The codec-level metrics of ``dexter test``: curve r (:func:`segment_curve_scores`), the L1 of
    log tempo and of MIDI velocity, and each row's MSE in the normalised space."""
    import torch

    metrics = segment_curve_scores(P, L, M)
    for name, row in (("tempo", Row.BEAT_PERIOD), ("velocity", Row.VELOCITY)):
        a = np.log(np.maximum(P[..., row], 1e-6)) if row == Row.BEAT_PERIOD else P[..., row] * 127
        b = np.log(np.maximum(L[..., row], 1e-6)) if row == Row.BEAT_PERIOD else L[..., row] * 127
        metrics[f"{name}_l1"] = float(np.abs(a - b)[M].mean())
    nP = norm.encode_p(torch.from_numpy(P)).numpy()
    nL = norm.encode_p(torch.from_numpy(L)).numpy()
    for row, name in zip(Row, P_CODEC_NAMES):
        metrics[f"mse_norm_{name}"] = float(((nP[..., row] - nL[..., row])[M] ** 2).mean())
    return metrics


def segment_curve_scores(pred: np.ndarray, label: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Tempo (log beat_period) and velocity curve correlation between predicted and label p_codec.

    Parameters
    ----------
    pred, label : (B, N, 5) raw p_codec
    mask : (B, N) bool

    Returns
    -------
    dict
        ``tempo_r`` and ``velocity_r`` (mean over segments with a defined r),
        and ``mse_<row>`` in raw codec units over masked notes.
    """
    tempo, vel = [], []
    for p, l, m in zip(pred, label, mask.astype(bool)):
        if m.sum() < 3:
            continue
        tempo.append(pearson(np.log(np.maximum(p[m, Row.BEAT_PERIOD], 1e-6)), np.log(np.maximum(l[m, Row.BEAT_PERIOD], 1e-6))))
        vel.append(pearson(p[m, Row.VELOCITY], l[m, Row.VELOCITY]))
    out = {"tempo_r": float(np.nanmean(tempo)) if np.isfinite(tempo).any() else float("nan"),
           "velocity_r": float(np.nanmean(vel)) if np.isfinite(vel).any() else float("nan")}
    m = mask.astype(bool)
    for row, name in zip(Row, P_CODEC_NAMES):
        out[f"mse_{name}"] = float(((pred[..., row] - label[..., row])[m] ** 2).mean()) if m.any() else float("nan")
    return out
