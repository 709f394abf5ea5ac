"""Score in, expressive performance out: the one place that chains
score -> features -> sampler -> decode -> MIDI.

Whole pieces are rendered at once: overlapping windows of the model's segment
length are denoised together and reconciled at every step (MultiDiffusion), so
tempo and loudness run on across window boundaries.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import DexterError

Progress = Callable[[str, int, int], None]


@dataclass
class RenderResult:
    """What a render produced."""

    outputs: list[Path]
    n_notes: int
    durations_s: list[float]
    p_codec: np.ndarray  # (K, n, 5) raw, canonical score note order
    note_ids: np.ndarray
    timings: dict = field(default_factory=dict)


def parse_controls(items: list[str], names: list[str], limit: float = 5.0) -> dict[str, float]:
    """Parse ``NAME=VALUE`` (values in training standard deviations).

    Raises
    ------
    DexterError
        Unknown name (the valid ones are listed), a value that is not a finite
        number, or one beyond +-``limit``.
    """
    out: dict[str, float] = {}
    for item in items:
        if "=" not in item:
            raise DexterError(f"--control {item!r} must look like NAME=VALUE, e.g. loudness=+1")
        name, raw = (x.strip() for x in item.split("=", 1))
        if name not in names:
            raise DexterError(f"unknown control {name!r}; valid: {', '.join(names)}")
        try:
            value = float(raw)
        except ValueError:
            raise DexterError(f"--control {name}: {raw!r} is not a number") from None
        if not math.isfinite(value) or abs(value) > limit:
            raise DexterError(f"--control {name}={raw}: give a finite value within +-{limit:g} standard deviations")
        out[name] = value
    return out


def piece_conditions(expr, s_codec: np.ndarray, controls: dict[str, float], c_names: list[str], K: int) -> dict:
    """Per-note condition tensors for K samples of one piece; controls not given stay free."""
    n = len(s_codec)
    stats = expr.norm
    c = np.zeros((n, len(c_names)), dtype=np.float32)
    drop = np.ones(len(c_names), dtype=bool)
    for name, v in controls.items():
        j = c_names.index(name)
        c[:, j] = stats.c_mean[j].item() + v * stats.c_std[j].item()  # raw value at v std
        drop[j] = False
    batch = {"s_codec": torch.from_numpy(np.repeat(s_codec[None], K, 0)),
             "c_codec": torch.from_numpy(np.repeat(c[None], K, 0)),
             "mask": torch.ones(K, n, dtype=torch.bool)}
    return {"batch": batch, "drop_c": torch.from_numpy(np.repeat(drop[None], K, 0))}


def render_score(
    score_path: Path,
    out: Path,
    *,
    checkpoint: Path | None = None,
    sampler: str = "dpm++",
    steps: int = 20,
    guidance: float = 1.0,
    seed: int = 0,
    controls: list[str] | None = None,
    num_samples: int = 1,
    unfold: bool = True,
    save_codec: Path | None = None,
    plot: Path | None = None,
    overlap: float = 0.5,
    progress: Progress | None = None,
) -> RenderResult:
    """Render expressive performances of a score to MIDI.

    Parameters
    ----------
    score_path : Path
        Any score partitura reads (MusicXML/MXL, MEI, kern, a quantised MIDI).
    out : Path
        MIDI path; with ``num_samples > 1``, ``<stem>_<i><suffix>``.
    checkpoint : Path, optional
        Inference checkpoint folder (default: the bundled model).
    sampler, steps, guidance, seed
        Sampling settings; the same seed gives the same output.
    controls : list of str
        ``NAME=VALUE`` in training standard deviations; others stay free.
    num_samples : int
        K interpretations, sampled as one batch.
    unfold : bool
        Play repeats (maximal unfolding) or the score as written.
    save_codec : Path, optional
        Write the predicted p_codec per score note (``.npz`` or ``.csv``).
    plot : Path, optional
        PNG of the tempo and velocity curves.
    overlap : float
        Fraction of each window shared with its neighbour.
    progress : callable, optional
        ``progress(stage, done, total)``.

    Returns
    -------
    RenderResult
    """
    from .data.codec import C_CODEC_NAMES
    from .data.decode import decode_performance, save_midi
    from .data.scores import load_score, score_features
    from .diffusion import get_sampler
    from .diffusion.windows import WindowedDenoiser
    from .engine import load_expression

    if num_samples < 1:
        raise DexterError(f"--num-samples must be at least 1, got {num_samples}")
    if steps < 1:
        raise DexterError(f"--steps must be at least 1, got {steps}")
    if not 0.0 <= overlap < 1.0:
        raise DexterError(f"overlap must be in [0, 1), got {overlap}")
    get_sampler(sampler)  # validates the name
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    expr, config = load_expression(checkpoint)
    c_names = list(C_CODEC_NAMES)
    ctrl = parse_controls(controls or [], c_names)
    timings["load_model"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    score = load_score(Path(score_path), unfold=unfold)
    s_codec = score_features(score)
    timings["parse"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    K, n, N = num_samples, len(score), int(config["codec"]["max_note_seq"])
    conds = piece_conditions(expr, s_codec, ctrl, c_names, K)
    generator = torch.Generator().manual_seed(int(seed))
    stride = max(1, int(round(N * (1 - overlap))))
    with torch.inference_mode():
        cond = expr.conditions(conds["batch"], drop_c=conds["drop_c"])
        uncond = expr.unconditional(cond) if guidance != 1.0 else None
        windowed = WindowedDenoiser(expr.denoise, n, N, stride, seq_keys=("s", "c", "mask"))
        x = torch.randn((K, n, expr.model.config.p_dim), generator=generator)
        fn = get_sampler(sampler)
        total_steps = expr.schedule.T if sampler == "ddpm" else steps
        cb = (lambda i, m, x0: progress("sample", i + 1, m)) if progress else None
        if progress:
            progress("sample", 0, total_steps)
        z = fn(windowed, x, expr.schedule, cond=cond, uncond=uncond, guidance=guidance, prediction=expr.prediction,
               steps=steps, generator=generator, callback=cb)
        z = z.clamp(-expr.norm.clip * 1.5, expr.norm.clip * 1.5)
        p = expr.norm.decode_p(z).numpy()
    timings["sample"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    out = Path(out)
    outputs = [out] if K == 1 else [out.with_name(f"{out.stem}_{i + 1}{out.suffix}") for i in range(K)]
    durations = []
    for k, path in enumerate(outputs):
        ppart = decode_performance(score, p[k])
        na = ppart.note_array()
        durations.append(float((na["onset_sec"] + na["duration_sec"]).max()) if len(na) else 0.0)
        save_midi(ppart, path)
    if save_codec is not None:
        write_codec(Path(save_codec), score.note_ids, p)
    if plot is not None:
        from .plots import plot_curves
        from .data.scores import score_markings

        plot_curves(Path(plot), score.note_array["onset_beat"], p, markings=score_markings(score),
                    title=Path(score_path).name)
    timings["write"] = time.perf_counter() - t0
    return RenderResult(outputs, n, durations, p, score.note_ids, timings)


def write_codec(path: Path, note_ids: np.ndarray, p: np.ndarray) -> None:
    """Predicted p_codec per score note, as ``.npz`` (note_ids, p_codec (K, n, 5)) or ``.csv``."""
    from .data.codec import P_CODEC_NAMES
    from .fileio import save_npz, write_text

    if path.suffix == ".csv":
        rows = ["sample,note_id," + ",".join(P_CODEC_NAMES)]
        for k in range(len(p)):
            rows += [f"{k},{nid}," + ",".join(f"{v:.6g}" for v in row) for nid, row in zip(note_ids, p[k])]
        write_text(path, "\n".join(rows) + "\n")
    elif path.suffix == ".npz":
        save_npz(path, note_ids=np.asarray(note_ids, dtype=str), p_codec=p.astype(np.float32),
                 names=np.array(P_CODEC_NAMES))
    else:
        raise DexterError(f"--save-codec must end in .npz or .csv, got {path.name}")
