"""Plots (matplotlib, no display): tempo and velocity curves."""

from __future__ import annotations

import warnings

from pathlib import Path

import numpy as np

from .data.codec import Row


def onset_curve(onset_beat: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``values`` per distinct score onset."""
    u, inv = np.unique(onset_beat, return_inverse=True)
    sums = np.bincount(inv, weights=values, minlength=len(u))
    return u, sums / np.bincount(inv, minlength=len(u))


def plot_curves(path: Path, onset_beat: np.ndarray, p: np.ndarray, markings: list | None = None,
                title: str = "", references: np.ndarray | None = None) -> None:
    """PNG of the tempo curve (BPM over score beats) and velocity (MIDI) of K renderings.

    Parameters
    ----------
    path : Path
    onset_beat : (n,)
    p : (K, n, 5) raw p_codec
    markings : list of (beat, text), optional
        Score dynamics/tempo markings, drawn as labelled lines.
    references : (R, n, 5), optional
        Human performances, drawn in grey.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .fileio import atomic_path

    fig, (ax_t, ax_v) = plt.subplots(2, 1, figsize=(12, 6), sharex=True)
    for r in references if references is not None else []:
        x, bp = onset_curve(onset_beat, r[:, Row.BEAT_PERIOD])
        ax_t.plot(x, 60 / np.maximum(bp, 1e-3), color="0.75", lw=0.8)
        x, v = onset_curve(onset_beat, r[:, Row.VELOCITY] * 127)
        ax_v.plot(x, v, color="0.75", lw=0.8)
    for k, q in enumerate(p):
        x, bp = onset_curve(onset_beat, q[:, Row.BEAT_PERIOD])
        ax_t.plot(x, 60 / np.maximum(bp, 1e-3), lw=1.2, label=f"sample {k + 1}" if len(p) > 1 else "dexter")
        ax_v.scatter(onset_beat, q[:, Row.VELOCITY] * 127, s=3, alpha=0.5)
        x, v = onset_curve(onset_beat, q[:, Row.VELOCITY] * 127)
        ax_v.plot(x, v, lw=1.0)
    for beat, text in markings or []:
        for ax in (ax_t, ax_v):
            ax.axvline(beat, color="tab:red", lw=0.5, alpha=0.4)
        ax_v.text(beat, 2, text, rotation=90, fontsize=7, color="tab:red", va="bottom")
    ax_t.set_ylabel("tempo (BPM)")
    ax_v.set_ylabel("velocity (MIDI)")
    ax_v.set_xlabel("score position (beats)")
    ax_v.set_ylim(0, 127)
    ax_t.set_title(title)
    if len(p) > 1 or references is not None:
        ax_t.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def plot_evaluation_summary(path: Path, summary: dict) -> Path:
    """Bar chart: each metric per renderer, the human-to-human value as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .evaluation.metrics import METRICS
    from .fileio import atomic_path

    renderers = [r for r in summary if r != "human"]
    ncols = 6
    nrows = -(-len(METRICS) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.4 * ncols, 2.9 * nrows))
    axes = axes.ravel()
    for ax in axes[len(METRICS):]:
        ax.axis("off")
    for ax, metric in zip(axes, METRICS):
        vals = [summary[r].get(metric, np.nan) for r in renderers]
        ax.bar(range(len(renderers)), np.nan_to_num(vals), color=[f"C{i}" for i in range(len(renderers))])
        human = summary.get("human", {}).get(metric, np.nan)
        if np.isfinite(human):
            ax.axhline(human, color="k", ls="--", lw=1, label="human-to-human")
        ax.set_xticks(range(len(renderers)))
        ax.set_xticklabels(renderers, rotation=45, ha="right", fontsize=8)
        ax.set_title(metric, fontsize=9)
    if axes[0].get_legend_handles_labels()[0]:  # no human-to-human value (one human a piece): no legend
        axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path


def plot_piece_curves(path: Path, piece, preds: dict) -> Path:
    """Tempo and velocity curves of each renderer over the band (min..max) of the human curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .evaluation.metrics import onset_curves
    from .fileio import atomic_path

    x = np.unique(piece.onset_beat)
    fig, axes = plt.subplots(2, 1, figsize=(12, 6), sharex=True)
    human = [onset_curves(piece.onset_beat, h) for h in piece.humans]
    for ax, j, label in ((axes[0], 0, "tempo (BPM)"), (axes[1], 1, "velocity (MIDI)")):
        H = np.array([h[j] for h in human])
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # onsets no human played are NaN columns
            lo, hi, med = np.nanmin(H, 0), np.nanmax(H, 0), np.nanmedian(H, 0)
        ax.fill_between(x, lo, hi, color="0.85", label=f"{len(human)} humans (range)")
        ax.plot(x, med, color="0.5", lw=0.8, label="human median")
        for i, (name, perf) in enumerate(preds.items()):
            ax.plot(x, onset_curves(piece.onset_beat, perf)[j], lw=1.0, color=f"C{i}", label=name)
        ax.set_ylabel(label)
    axes[0].set_title(piece.key)
    axes[0].legend(fontsize=7, loc="upper right", ncol=3)
    axes[1].set_xlabel("score position (beats)")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path


def plot_segment(path: Path, onset_beat: np.ndarray, pred: np.ndarray, label: np.ndarray, mask: np.ndarray,
                 source: np.ndarray | None = None, title: str = "") -> Path:
    """Tempo/velocity curves and the five p_codec rows: predicted vs label (vs source)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .fileio import atomic_path

    names = ("beat_period", "velocity", "timing", "articulation_log", "pedal")
    fig, axes = plt.subplots(3, 3, figsize=(13, 8))
    axes = axes.ravel()
    m = mask.astype(bool)
    series = [("label", label, "k"), ("dexter", pred, "C0")] + ([("source", source, "C1")] if source is not None else [])
    for name, arr, color in series:
        sel = m if name != "dexter" else np.ones(len(arr), bool)
        x, bp = onset_curve(onset_beat[sel], arr[sel, Row.BEAT_PERIOD])
        axes[0].plot(x, 60 / np.maximum(bp, 1e-3), color=color, lw=1, label=name)
        x, v = onset_curve(onset_beat[sel], arr[sel, Row.VELOCITY] * 127)
        axes[1].plot(x, v, color=color, lw=1, label=name)
        for j in range(5):
            axes[2 + j].plot(np.flatnonzero(sel), arr[sel, j], ".", ms=2, color=color, label=name)
    axes[0].set_title("tempo (BPM) over beats")
    axes[1].set_title("velocity (MIDI) over beats")
    for j in range(5):
        axes[2 + j].set_title(f"{names[j]} per note", fontsize=9)
    axes[7].axis("off")
    axes[8].axis("off")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return path


def animate_denoising(path: Path, onset_beat: np.ndarray, frames: list[np.ndarray]) -> Path:
    """GIF of the predicted x0 (tempo and velocity curves) at each denoising step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    from .fileio import atomic_path

    fig, (ax_t, ax_v) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    x, _ = onset_curve(onset_beat, frames[0][:, Row.BEAT_PERIOD])
    (lt,) = ax_t.plot(x, np.zeros_like(x))
    (lv,) = ax_v.plot(x, np.zeros_like(x))
    ax_t.set_ylabel("tempo (BPM)")
    ax_v.set_ylabel("velocity (MIDI)")
    ax_v.set_ylim(0, 127)
    tempos = [60 / np.maximum(onset_curve(onset_beat, f[:, Row.BEAT_PERIOD])[1], 1e-3) for f in frames]
    ax_t.set_ylim(0, max(60.0, float(np.percentile(np.concatenate(tempos), 99)) * 1.1))

    def update(i):
        lt.set_ydata(tempos[i])
        lv.set_ydata(onset_curve(onset_beat, frames[i][:, Row.VELOCITY] * 127)[1])
        ax_t.set_title(f"denoising step {i + 1} / {len(frames)}: predicted x0")
        return lt, lv

    anim = FuncAnimation(fig, update, frames=len(frames), blit=False)
    with atomic_path(path, suffix=".gif") as tmp:
        anim.save(tmp, writer=PillowWriter(fps=4))
    plt.close(fig)
    return path
