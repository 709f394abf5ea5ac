"""Whole-piece continuity: do the window edges of a render leave seams?

Jumps of log tempo and velocity between neighbouring onsets, at window edges and inside
windows, and the paired seam check: the same score rendered with its inner window edges moved,
seed for seed, so that the same onset pairs are compared on and off an edge.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .metrics import Performance, onset_curves

def _onset_jumps(onset_beat: np.ndarray, p_codec: np.ndarray) -> dict[str, np.ndarray]:
    """|difference| of the per-onset log tempo and velocity curves between consecutive onsets."""
    tempo, velocity = onset_curves(onset_beat, Performance(p_codec, np.ones(len(p_codec), dtype=bool)))
    return {"tempo": np.abs(np.diff(np.log(tempo))), "velocity": np.abs(np.diff(velocity))}


def _edge_pairs(onset_beat: np.ndarray, edges: list[int]) -> np.ndarray:
    """Which onset pairs (g, g + 1) straddle a window edge: an edge note falls in group g + 1."""
    u, group = np.unique(onset_beat, return_inverse=True)
    edge_groups = {int(group[e]) for e in edges if 0 < e < len(group) and group[e] != group[e - 1]}
    return np.array([g + 1 in edge_groups for g in range(len(u) - 1)], dtype=bool)


def boundary_jumps(onset_beat: np.ndarray, p_codec: np.ndarray, edges: list[int]) -> dict[str, float]:
    """Mean jump of log tempo and velocity between consecutive score onsets, at window edges vs inside.

    Unpaired: the few edge pairs are also where the score happens to be, so their jumps carry
    the music's as well as any seam; :func:`paired_seams` holds the score fixed.

    Parameters
    ----------
    onset_beat : (n,)
        Score onsets (canonical note order, non-decreasing).
    p_codec : (n, 5)
        A rendered p_codec.
    edges : list of int
        Note positions where a window starts or ends.

    Returns
    -------
    dict
        ``tempo_edge``, ``tempo_inside``, ``velocity_edge``, ``velocity_inside`` (mean |difference|
        of the per-onset curves, log BPM and MIDI velocity).
    """
    at_edge = _edge_pairs(onset_beat, edges)
    out = {}
    for name, d in _onset_jumps(onset_beat, p_codec).items():
        out[f"{name}_edge"] = float(np.nanmean(d[at_edge])) if at_edge.any() else float("nan")
        out[f"{name}_inside"] = float(np.nanmean(d[~at_edge])) if (~at_edge).any() else float("nan")
    return out


def paired_seams(onset_beat: np.ndarray, renders: tuple[list[np.ndarray], list[np.ndarray]],
                 edges: tuple[list[int], list[int]]) -> dict[str, float]:
    """Seams at window edges with the score held fixed: the same onset pairs, on and off an edge.

    The piece is rendered with two window layouts (the second's inner edges moved, e.g. by half a
    stride; the same seeds for both). Each onset pair that is an edge in one layout and not in the
    other gives one difference: its jump in the layout where it is an edge minus its jump in the
    other (jumps averaged over the seeds). Their mean is the seam; the music at the pair cancels.

    Parameters
    ----------
    onset_beat : (n,)
        Score onsets (canonical note order, non-decreasing).
    renders : (list of (n, 5) arrays, list of (n, 5) arrays)
        p_codecs rendered with layout A and with layout B, seed for seed.
    edges : (list of int, list of int)
        The window edges (note positions) of layout A and of layout B.

    Returns
    -------
    dict
        For ``tempo`` (log BPM) and ``velocity`` (MIDI): ``{name}_seam`` (mean difference),
        ``{name}_seam_se`` (its standard error), ``{name}_inside`` (mean jump at pairs on no edge);
        and ``pairs``, the number of differences.
    """
    return summarise_seams(*seam_differences(onset_beat, renders, edges))


def seam_differences(onset_beat: np.ndarray, renders: tuple[list[np.ndarray], list[np.ndarray]],
                     edges: tuple[list[int], list[int]]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The per-pair differences of :func:`paired_seams` (same parameters), and the jumps at the
    pairs on no edge, per curve (``tempo``, ``velocity``): to pool over pieces before summarising."""
    jumps = []
    for layout in renders:  # per layout: each pair's jump, averaged over the seeds
        per_seed = [_onset_jumps(onset_beat, p) for p in layout]
        jumps.append({k: np.mean([j[k] for j in per_seed], axis=0) for k in ("tempo", "velocity")})
    at_a, at_b = (_edge_pairs(onset_beat, e) for e in edges)
    a_only, b_only, neither = at_a & ~at_b, at_b & ~at_a, ~at_a & ~at_b
    diffs, inside = {}, {}
    for name in ("tempo", "velocity"):
        ja, jb = jumps[0][name], jumps[1][name]
        diffs[name] = np.concatenate([ja[a_only] - jb[a_only], jb[b_only] - ja[b_only]])
        inside[name] = np.concatenate([ja[neither], jb[neither]])
    return diffs, inside


def summarise_seams(diffs: dict[str, np.ndarray], inside: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean, standard error and count of seam differences, and the mean jump inside (see :func:`paired_seams`)."""
    out: dict[str, float] = {"pairs": float(len(next(iter(diffs.values()))))}
    for name, d in diffs.items():
        d = d[np.isfinite(d)]
        out[f"{name}_seam"] = float(d.mean()) if len(d) else float("nan")
        out[f"{name}_seam_se"] = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
        out[f"{name}_inside"] = float(np.nanmean(inside[name])) if len(inside[name]) else float("nan")
    return out


def render_layouts(score_path: Path, offsets: tuple[int, ...], seeds: range, options: dict | None = None, *,
                   checkpoint=None) -> tuple[np.ndarray, tuple, tuple, list[list[dict]]]:
    """The renders of the paired seam check: a score with each window layout, seed for seed.

    Parameters
    ----------
    score_path : Path
        The score.
    offsets : tuple of int
        One window layout per offset (``window_offset`` of :func:`dexter_cli.render.sample_score`).
    seeds : range
        The same seeds for every layout.
    options : dict, optional
        Sampling choices other than the seed (:meth:`dexter_cli.sampling.SamplingOptions.for_model`).
    checkpoint : Path or tuple, optional
        The model (loaded once for all renders).

    Returns
    -------
    onset_beat : (n,) array
    renders : tuple
        Per layout, a list of the first sample's (n, 5) p_codec per seed.
    edges : tuple
        Per layout, its window edges (note positions).
    timings : list
        Per layout, the timings of each render.
    """
    from ..render import load_model, sample_score

    loaded = load_model(checkpoint)
    renders, edges, timings = [], [], []
    for offset in offsets:
        runs = [sample_score(Path(score_path), {**(options or {}), "seed": seed}, checkpoint=loaded,
                             window_offset=offset) for seed in seeds]
        renders.append([r.p_codec[0] for r in runs])
        timings.append([r.timings for r in runs])
        edges.append(runs[0].window_edges)
    return runs[0].score.note_array["onset_beat"], tuple(renders), tuple(edges), timings
