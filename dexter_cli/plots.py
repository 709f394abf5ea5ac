"""Plots (matplotlib, no display): tempo and velocity curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np


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
        x, bp = onset_curve(onset_beat, r[:, 0])
        ax_t.plot(x, 60 / np.maximum(bp, 1e-3), color="0.75", lw=0.8)
        x, v = onset_curve(onset_beat, r[:, 1] * 127)
        ax_v.plot(x, v, color="0.75", lw=0.8)
    for k, q in enumerate(p):
        x, bp = onset_curve(onset_beat, q[:, 0])
        ax_t.plot(x, 60 / np.maximum(bp, 1e-3), lw=1.2, label=f"sample {k + 1}" if len(p) > 1 else "dexter")
        ax_v.scatter(onset_beat, q[:, 1] * 127, s=3, alpha=0.5)
        x, v = onset_curve(onset_beat, q[:, 1] * 127)
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
