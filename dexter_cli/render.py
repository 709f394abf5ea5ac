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


def _render(
    score_path: Path,
    *,
    checkpoint: Path | None = None,
    sampler: str = "dpm++",
    steps: int | None = None,
    guidance: float | None = None,
    seed: int = 0,
    controls: list[str] | None = None,
    num_samples: int = 1,
    unfold: bool = True,
    overlap: float = 0.5,
    from_performance: Path | None = None,
    alignment: Path | None = None,
    strength: float = 0.5,
    temperature: float | None = None,
    spread: tuple[float, float, float] | None = None,
    curves: str | None = None,
    progress: Progress | None = None,
    loaded: tuple | None = None,
    window_offset: int = 0,
) -> tuple[object, np.ndarray, dict]:
    """Sample p_codecs of a whole score; see :func:`render_score` for the parameters.
    ``loaded`` is a ``load_expression`` result to reuse across scores; ``window_offset`` moves the
    inner window edges (:func:`~dexter_cli.diffusion.windows.window_starts`; the paired seam check)."""
    from .data.codec import C_CODEC_NAMES
    from .data.scores import load_score, score_features
    from .diffusion import get_sampler
    from .diffusion.windows import WindowedDenoiser
    from .engine import load_expression, sampling_curves, sampling_settings, sampling_spread, sampling_steps
    from .spread import widen_curves

    from .checks import check_seed

    check_seed(seed)
    if num_samples < 1:
        raise DexterError(f"--num-samples must be at least 1, got {num_samples}")
    if not 0.0 < strength <= 1.0:
        raise DexterError(f"--strength must be in (0, 1], got {strength}")
    if not 0.0 <= overlap < 1.0:
        raise DexterError(f"overlap must be in [0, 1), got {overlap}")
    get_sampler(sampler)  # validates the name
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    expr, config = loaded if loaded is not None else load_expression(checkpoint)
    guidance, temperature = sampling_settings(config, guidance, temperature)  # checks the temperature
    steps = sampling_steps(config, sampler, steps)
    gains = sampling_spread(config, spread, temperature, from_noise=from_performance is None)
    curves = sampling_curves(config, curves, temperature, from_noise=from_performance is None)
    c_names = list(C_CODEC_NAMES)
    ctrl = parse_controls(controls or [], c_names)
    timings["load_model"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    score = load_score(Path(score_path), unfold=unfold)
    source = None
    if from_performance is not None:
        from .data.encode import source_codecs

        score, source = source_codecs(score, Path(score_path), Path(from_performance), alignment, unfold)
    s_codec = score_features(score)
    timings["parse"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    K, n, N = num_samples, len(score), int(config["codec"]["max_note_seq"])
    conds = piece_conditions(expr, s_codec, ctrl, c_names, K)
    batch, drop_c = conds["batch"], conds["drop_c"]
    x_start = None
    if source is not None:
        p_src = torch.from_numpy(np.repeat(source["p_codec"][None], K, 0))
        c_src = torch.from_numpy(np.repeat(source["c_codec"][None], K, 0))
        if expr.target == "transfer":
            # condition on c_target - c_source: the source's own controls, moved by the asked amounts
            delta = torch.zeros(len(c_names))
            for name, v in ctrl.items():
                delta[c_names.index(name)] = v
            batch = {**batch, "source_p": p_src, "source_c": c_src,
                     "c_codec": expr.norm.decode_c(expr.norm.encode_c(c_src) + delta)}
            drop_c = None
        else:
            x_start = p_src
    generator = torch.Generator().manual_seed(int(seed))
    stride = max(1, int(round(N * (1 - overlap))))
    total_steps = expr.schedule.T if sampler == "ddpm" else steps
    cb = (lambda i, m, x0: progress("sample", i + 1, m)) if progress else None
    if progress:
        progress("sample", 0, total_steps)
    p = expr.sample(batch, sampler=sampler, steps=steps, guidance=guidance, generator=generator,
                    x_start=x_start, strength=strength if source is not None else None, drop_c=drop_c,
                    temperature=temperature, curves=curves, callback=cb,
                    wrap=lambda d: WindowedDenoiser(d, n, N, stride, seq_keys=("s", "c", "mask"),
                                                    offset=window_offset)).numpy()
    p = widen_curves(p, score.note_array["onset_beat"], *gains)  # the curves' range (spread.py)
    timings["sample"] = time.perf_counter() - t0
    timings["spread"] = gains
    timings["curves"] = curves
    from .diffusion.windows import window_edges

    timings["window_edges"] = window_edges(n, N, stride, window_offset)
    return score, p, timings


def render_layouts(score_path: Path, offsets: tuple[int, ...], seeds: range, *, checkpoint: Path | None = None,
                   loaded: tuple | None = None, **kwargs) -> tuple[np.ndarray, tuple, tuple, list[list[dict]]]:
    """The renders of the paired seam check: a score with each window layout, seed for seed.

    Parameters
    ----------
    score_path : Path
        The score.
    offsets : tuple of int
        One window layout per offset (``window_offset`` of :func:`_render`).
    seeds : range
        The same seeds for every layout.
    checkpoint, loaded
        The model (loaded once for all renders); other keyword arguments go to :func:`_render`.

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
    from .engine import load_expression

    loaded = loaded if loaded is not None else load_expression(checkpoint)
    renders, edges, timings = [], [], []
    for offset in offsets:
        runs = [_render(Path(score_path), loaded=loaded, seed=seed, window_offset=offset, **kwargs) for seed in seeds]
        renders.append([p[0] for _, p, _ in runs])
        timings.append([t for _, _, t in runs])
        edges.append(timings[-1][0]["window_edges"])
    return runs[0][0].note_array["onset_beat"], tuple(renders), tuple(edges), timings


def render_piece_codec(score_path: Path, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Render p_codecs of a score without writing anything: ``(p (K, n, 5), note_ids)``."""
    score, p, _ = _render(Path(score_path), **kwargs)
    return p, score.note_ids


def render_score(
    score_path: Path,
    out: Path,
    *,
    checkpoint: Path | None = None,
    sampler: str = "dpm++",
    steps: int | None = None,
    guidance: float | None = None,
    seed: int = 0,
    controls: list[str] | None = None,
    num_samples: int = 1,
    unfold: bool = True,
    save_codec: Path | None = None,
    plot: Path | None = None,
    overlap: float = 0.5,
    from_performance: Path | None = None,
    alignment: Path | None = None,
    strength: float = 0.5,
    temperature: float | None = None,
    spread: tuple[float, float, float] | None = None,
    curves: str | None = None,
    progress: Progress | None = None,
    loaded: tuple | None = None,
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
        Sampling settings; the same seed gives the same output. ``steps`` or ``guidance``
        None: the model's recorded default (:func:`dexter_cli.engine.sampling_steps`,
        :func:`dexter_cli.engine.sampling_settings`).
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
    from_performance : Path, optional
        A performance of the same score (MIDI or match) to re-render: a variation
        (noised to ``strength``, then denoised toward the controls) or, with a
        transfer-trained checkpoint, the paper's transfer from it.
    alignment : Path, optional
        Its note alignment (ASAP ``note_alignment.tsv`` or parangonada ``align.csv``);
        computed with parangonar when absent.
    strength : float
        How deep the source is noised (DExter's sample_steps_frac), in (0, 1].
    temperature : float, optional
        Scale of the initial noise of the tempo and velocity curves (sampling from noise only),
        in [0, 2]: below 1 a reading nearer the model's mean. None: the model's default.
    spread : (float, float, float), optional
        Gains on the tempo and velocity curves' deviations from the piece's means and on the
        voicing of chords (:mod:`dexter_cli.spread`; 1: the model's own range). None: the model's recorded gains
        when sampling from noise at its recorded temperature, else 1
        (:func:`dexter_cli.engine.sampling_spread`).
    curves : {"sample", "mean"}, optional
        Where the tempo and velocity curves come from (sampling from noise only): the sampler's
        draw, or the network's first-step reading of their mean. None: the model's recorded mode at
        its recorded temperature, else ``"sample"`` (:func:`dexter_cli.engine.sampling_curves`).
    progress : callable, optional
        ``progress(stage, done, total)``.
    loaded : tuple, optional
        A ``load_expression`` result to reuse (many scores, one model load).

    Returns
    -------
    RenderResult
    """
    if save_codec is not None and Path(save_codec).suffix not in (".npz", ".csv"):
        raise DexterError(f"--save-codec must end in .npz or .csv, got {Path(save_codec).name}")
    out = Path(out)
    outputs = output_paths(out, num_samples)
    check_outputs([score_path, from_performance, alignment], [*outputs, plot, save_codec])
    t_all = time.perf_counter()
    score, p, timings = _render(score_path, checkpoint=checkpoint, sampler=sampler, steps=steps, guidance=guidance,
                                seed=seed, controls=controls, num_samples=num_samples, unfold=unfold,
                                overlap=overlap, from_performance=from_performance, alignment=alignment,
                                strength=strength, temperature=temperature, spread=spread, curves=curves,
                                progress=progress, loaded=loaded)
    from .data.decode import decode_performance, save_midi

    n = p.shape[1]
    t0 = time.perf_counter()
    parts = [decode_performance(score, p[k]) for k in range(len(outputs))]
    durations = [check_performance(score, p[k], ppart) for k, ppart in enumerate(parts)]  # all, before any file
    for ppart, path in zip(parts, outputs):
        save_midi(ppart, path)
    if save_codec is not None:
        write_codec(Path(save_codec), score.note_ids, p)
    if plot is not None:
        from .plots import plot_curves
        from .data.scores import score_markings

        plot_curves(Path(plot), score.note_array["onset_beat"], p, markings=score_markings(score),
                    title=Path(score_path).name)
    timings["write"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all
    return RenderResult(outputs, n, durations, p, score.note_ids, timings)


@dataclass
class BatchResult:
    """What a batch render produced: ``(score, outputs)`` rendered, ``(score, reason)`` skipped."""

    rendered: list[tuple[Path, list[Path]]]
    skipped: list[tuple[Path, str]]
    n_notes: int
    seconds: float


def output_paths(out: Path, num_samples: int) -> list[Path]:
    """The MIDI files of a render: ``out``, or ``<stem>_<i><suffix>`` for ``num_samples`` > 1."""
    out = Path(out)
    return [out] if num_samples == 1 else [out.with_name(f"{out.stem}_{i + 1}{out.suffix}") for i in range(num_samples)]


def check_outputs(inputs: list[Path | None], outputs: list[Path | None]) -> None:
    """Refuse, before any work, a call whose outputs would overwrite an input or each other, or
    could not be written.

    Parameters
    ----------
    inputs : list of Path or None
        Files the call reads (None: not given).
    outputs : list of Path or None
        Files it writes (None: not asked for).
    """
    from .fileio import check_writable

    def same(a: Path, b: Path) -> bool:
        try:
            return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
        except OSError:
            return False

    ins = [Path(p) for p in inputs if p is not None]
    outs = [Path(p) for p in outputs if p is not None]
    for k, o in enumerate(outs):
        for i in ins:
            if same(o, i):
                raise DexterError(f"refusing to overwrite the input {i} with an output; choose another output path")
        for other in outs[:k]:
            if same(o, other):
                raise DexterError(f"two outputs of this call are the same file {o}; give them different paths")
    for o in outs:
        check_writable(o)


MAX_PERFORMANCE_S = 12 * 3600.0  # no piano piece lasts half a day; MIDI's delta times run out near 2^28 ticks


def check_performance(score, p_codec: np.ndarray, ppart) -> float:
    """A rendered performance's length in seconds, after checking that it is one: finite values and
    a median tempo a pianist could play (the range the codec accepts from data). A model that
    produces anything else is an error, not a file."""
    from .data.encode import TEMPO_RANGE_BPM

    if not np.isfinite(p_codec).all():
        raise DexterError(f"the model produced non-finite values for {int((~np.isfinite(p_codec)).sum())} "
                          "codec entries: the checkpoint or the sampling settings are broken; nothing was written")
    bpm = 60.0 / float(np.median(np.clip(p_codec[:, 0], 1e-3, None)))
    if not TEMPO_RANGE_BPM[0] <= bpm <= TEMPO_RANGE_BPM[1]:
        raise DexterError(f"the model produced a median tempo of {bpm:.3g} BPM, outside "
                          f"{TEMPO_RANGE_BPM[0]:g}..{TEMPO_RANGE_BPM[1]:g}: the checkpoint or the sampling settings are "
                          "broken; nothing was written")
    na = ppart.note_array()
    length = float((na["onset_sec"] + na["duration_sec"]).max()) if len(na) else 0.0
    if length > MAX_PERFORMANCE_S:
        longest = int(np.argmax(na["duration_sec"]))
        raise DexterError(f"the performance would last {length / 3600:.3g} hours (note {na['id'][longest]} alone "
                          f"{float(na['duration_sec'][longest]):.3g} s): does the score hold a note of absurd duration? "
                          "nothing was written")
    return length


def find_scores(folder: Path, exclude: Path | None = None) -> list[Path]:
    """Score files under ``folder`` (recursively, sorted), by extension; not our own outputs
    (``*.performance.mid``, anything under ``exclude``)."""
    from .data.scores import SCORE_SUFFIXES

    folder = Path(folder)
    if not folder.is_dir():
        raise DexterError(f"not a folder: {folder}")
    skip = Path(exclude).resolve() if exclude is not None else None
    found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SCORE_SUFFIXES
                   and not p.name.endswith(".performance.mid")
                   and not (skip is not None and skip in p.resolve().parents))
    if not found:
        raise DexterError(f"no score file (.musicxml .xml .mxl .mei .krn .mid) under {folder}")
    return found


def render_batch(
    folder: Path,
    out_dir: Path | None = None,
    *,
    checkpoint: Path | None = None,
    progress: Progress | None = None,
    **kwargs,
) -> BatchResult:
    """Render every score under a folder with one model load; a score that fails is skipped.

    Parameters
    ----------
    folder : Path
        Searched recursively for score files (:func:`find_scores`).
    out_dir : Path, optional
        Where ``<relative folder>/<stem>.mid`` go (default: ``<stem>.performance.mid``
        beside each score).
    checkpoint : Path, optional
        Default: the bundled model.
    progress : callable, optional
        ``progress("scores", done, total)``.
    **kwargs
        Sampling settings of :func:`render_score` (sampler, steps, guidance, seed,
        controls, num_samples, unfold, overlap, temperature, spread, curves).

    Returns
    -------
    BatchResult
    """
    import gc

    from .engine import load_expression

    t0 = time.perf_counter()
    folder = Path(folder)
    scores = find_scores(folder, exclude=out_dir if out_dir is not None and Path(out_dir) != folder else None)
    inputs = {p.resolve() for p in scores}
    if kwargs.get("controls"):
        from .data.codec import C_CODEC_NAMES

        parse_controls(kwargs["controls"], list(C_CODEC_NAMES))  # a bad control fails once, before any work
    loaded = load_expression(checkpoint)
    rendered, skipped, n_notes = [], [], 0
    for k, score in enumerate(scores):
        rel = score.relative_to(folder)
        out = (Path(out_dir) / rel.parent / f"{rel.stem}.mid" if out_dir is not None
               else score.with_name(f"{score.stem}.performance.mid"))
        try:
            if out.resolve() in inputs:
                raise DexterError(f"its output {out} would overwrite a score of the batch")
            res = render_score(score, out, loaded=loaded, **kwargs)
            rendered.append((score, res.outputs))
            n_notes += res.n_notes
            res = None
        except DexterError as exc:
            skipped.append((score, str(exc)))
        except Exception as exc:  # one score's bug must not lose the rest of a long batch
            skipped.append((score, f"unexpected {type(exc).__name__}: {exc}"))
        gc.collect()  # partitura's object graphs are cyclic: free each score before the next
        if progress:
            progress("scores", k + 1, len(scores))
    return BatchResult(rendered, skipped, n_notes, time.perf_counter() - t0)


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
