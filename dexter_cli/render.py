"""Score in, expressive performance out: the one place that chains
score -> features -> sampler -> decode -> MIDI.

Whole pieces are rendered at once: overlapping windows of the model's segment
length are denoised together and reconciled at every step (MultiDiffusion), so
tempo and loudness run on across window boundaries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch

from .data.codec import Row

from .errors import DexterError
from .sampling import SamplingOptions, resolve

Progress = Callable[[str, int, int], None]


class Source(NamedTuple):
    """A performance of the score to re-render (``--from``) and its note alignment (None: computed)."""

    performance: Path
    alignment: Path | None = None


@dataclass
class Sampled:
    """The sampled p_codecs of a whole score, before any file."""

    score: object  # data.scores.Score: the score view the notes follow
    p_codec: np.ndarray  # (K, n, 5) raw, canonical score note order
    options: SamplingOptions  # what was sampled with, every default resolved
    window_edges: list[int]
    timings: dict = field(default_factory=dict)


@dataclass
class RenderResult:
    """What a render produced."""

    outputs: list[Path]
    n_notes: int
    durations_s: list[float]
    p_codec: np.ndarray  # (K, n, 5) raw, canonical score note order
    note_ids: np.ndarray
    options: SamplingOptions
    timings: dict = field(default_factory=dict)


def load_model(checkpoint) -> tuple:
    """``checkpoint`` as a ``load_expression`` result: loaded from a path (None: the bundled model),
    or passed through when already loaded (many scores, one model load)."""
    from .engine import load_expression

    return checkpoint if isinstance(checkpoint, tuple) else load_expression(checkpoint)


def piece_conditions(expr, s_codec: np.ndarray, controls: dict[str, float], K: int) -> dict:
    """Per-note condition tensors for K samples of one piece; controls not given stay free."""
    from .data.codec import C_CODEC_NAMES

    n, names = len(s_codec), list(C_CODEC_NAMES)
    c = np.zeros((n, len(names)), dtype=np.float32)
    drop = np.ones(len(names), dtype=bool)
    for name, v in controls.items():
        j = names.index(name)
        c[:, j] = expr.norm.c_mean[j].item() + v * expr.norm.c_std[j].item()  # raw value at v std
        drop[j] = False
    batch = {"s_codec": torch.from_numpy(np.repeat(s_codec[None], K, 0)),
             "c_codec": torch.from_numpy(np.repeat(c[None], K, 0)),
             "mask": torch.ones(K, n, dtype=torch.bool)}
    return {"batch": batch, "drop_c": torch.from_numpy(np.repeat(drop[None], K, 0))}


def _with_source(expr, conds: dict, source: dict, controls: dict[str, float], K: int) -> tuple[dict, object, object]:
    """(batch, drop_c, x_start) for re-rendering ``source``: the paper's transfer for a transfer-trained
    model (conditioned on c_target - c_source: the source's controls moved by the asked amounts), else
    a variation that starts from it."""
    from .data.codec import C_CODEC_NAMES

    p_src = torch.from_numpy(np.repeat(source["p_codec"][None], K, 0))
    if expr.target != "transfer":
        return conds["batch"], conds["drop_c"], p_src
    c_src = torch.from_numpy(np.repeat(source["c_codec"][None], K, 0))
    delta = torch.zeros(len(C_CODEC_NAMES))
    for name, v in controls.items():
        delta[list(C_CODEC_NAMES).index(name)] = v
    batch = {**conds["batch"], "source_p": p_src, "source_c": c_src,
             "c_codec": expr.norm.decode_c(expr.norm.encode_c(c_src) + delta)}
    return batch, None, None


def sample_score(score_path: Path, options: SamplingOptions | dict | None = None, *, checkpoint=None,
                 unfold: bool = True, source: Source | None = None, progress: Progress | None = None,
                 window_offset: int = 0) -> Sampled:
    """Sample p_codecs of a whole score; see :func:`render_score` for the parameters.
    ``window_offset`` moves the inner window edges (:func:`~dexter_cli.diffusion.windows.window_starts`;
    the paired seam check of :mod:`dexter_cli.evaluation.continuity`)."""
    from .data.scores import load_score, score_features
    from .diffusion.windows import WindowedDenoiser, window_edges
    from .spread import widen_curves

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    expr, config = load_model(checkpoint)
    opts = resolve(config, options)
    if source is not None:
        opts = opts.from_source()
    timings["load_model"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    score = load_score(Path(score_path), unfold=unfold)
    encoded = None
    if source is not None:
        from .data.encode import source_codecs

        score, encoded = source_codecs(score, Path(score_path), Path(source.performance), source.alignment, unfold)
    s_codec = score_features(score)
    timings["parse"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    K, n, N = opts.num_samples, len(score), int(config["codec"]["max_note_seq"])
    controls = opts.control_values()
    conds = piece_conditions(expr, s_codec, controls, K)
    batch, drop_c, x_start = conds["batch"], conds["drop_c"], None
    if encoded is not None:
        batch, drop_c, x_start = _with_source(expr, conds, encoded, controls, K)
    stride = max(1, int(round(N * (1 - opts.overlap))))
    total_steps = expr.schedule.T if opts.sampler == "ddpm" else opts.steps
    cb = (lambda i, m, x0: progress("sample", i + 1, m)) if progress else None
    if progress:
        progress("sample", 0, total_steps)
    p = expr.sample(batch, opts, generator=opts.generator(), x_start=x_start, drop_c=drop_c, callback=cb,
                    wrap=lambda d: WindowedDenoiser(d, n, N, stride, seq_keys=("s", "c", "mask"),
                                                    offset=window_offset)).numpy()
    p = widen_curves(p, score.note_array["onset_beat"], *opts.spread)  # the curves' range (spread.py)
    timings["sample"] = time.perf_counter() - t0
    return Sampled(score, p, opts, window_edges(n, N, stride, window_offset), timings)


@dataclass(frozen=True)
class Extras:
    """What a render writes beside its MIDI files.

    Attributes
    ----------
    save_codec : Path, optional
        The predicted p_codec per score note (``.npz`` or ``.csv``).
    plot : Path, optional
        PNG of the tempo and velocity curves.
    audio : Path, optional
        WAV of each performance (``<stem>_<i>.wav`` for several), played with a SoundFont.
    soundfont : Path, optional
        The SoundFont for audio (default: :func:`dexter_cli.audio.find_soundfont`).
    tempo_map : bool
        Write the MIDI on the score's bars and beats with a tempo map (:mod:`dexter_cli.data.tempo_map`)
        instead of in seconds on a 120 BPM grid; it plays the same.
    """

    save_codec: Path | None = None
    plot: Path | None = None
    audio: Path | None = None
    soundfont: Path | None = None
    tempo_map: bool = False


NOT_WRITTEN = (".mp3", ".flac", ".ogg", ".aac", ".m4a", ".aiff")  # audio formats dexter does not write


def render_score(score_path: Path, out: Path, options: SamplingOptions | dict | None = None, *, checkpoint=None,
                 unfold: bool = True, source: Source | None = None, extras: Extras | None = None,
                 progress: Progress | None = None) -> RenderResult:
    """Render expressive performances of a score to MIDI (or, for ``out`` ending in ``.wav``, to audio).

    Parameters
    ----------
    score_path : Path
        Any score partitura reads (MusicXML/MXL, MEI, kern, a quantised MIDI).
    out : Path
        MIDI path, or a ``.wav`` path for audio only; with ``num_samples > 1``, ``<stem>_<i><suffix>``.
    options : SamplingOptions or dict, optional
        The options to sample with, or the caller's choices (e.g. ``{"seed": 3, "steps": 8}``) to
        apply to the model's recorded decoding (:meth:`SamplingOptions.for_model`). The same seed
        gives the same output.
    checkpoint : Path or tuple, optional
        Inference checkpoint folder (default: the bundled model), or a ``load_expression`` result
        to reuse across scores.
    unfold : bool
        Play repeats (maximal unfolding) or the score as written.
    source : Source, optional
        A performance of the same score (MIDI or match) to re-render: a variation (noised to
        ``options.strength``, then denoised toward the controls) or, with a transfer-trained
        checkpoint, the paper's transfer from it. Its alignment is computed with parangonar when
        not given.
    extras : Extras, optional
        The codec, a plot of the curves, audio.
    progress : callable, optional
        ``progress(stage, done, total)``.

    Returns
    -------
    RenderResult
    """
    from .data.decode import decode_performance, performance_midi
    from .fileio import check_outputs, write_bytes

    extras = extras or Extras()
    if extras.save_codec is not None and Path(extras.save_codec).suffix not in (".npz", ".csv"):
        raise DexterError(f"--save-codec must end in .npz or .csv, got {Path(extras.save_codec).name}")
    if Path(out).suffix.lower() in NOT_WRITTEN:
        raise DexterError(f"dexter writes MIDI (.mid) and WAV (.wav), not {Path(out).suffix}: convert the WAV")
    t_all = time.perf_counter()
    loaded = load_model(checkpoint)
    opts = resolve(loaded[1], options)
    wav_only = Path(out).suffix.lower() == ".wav"
    midis = [] if wav_only else output_paths(Path(out), opts.num_samples)
    wavs = output_paths(Path(out if wav_only else extras.audio), opts.num_samples) if wav_only or extras.audio else []
    check_outputs([score_path, *(source or ())], [*midis, *wavs, extras.plot, extras.save_codec])
    if wavs:
        from .audio import find_soundfont

        soundfont = find_soundfont(extras.soundfont)  # missing, it fails before the work
    sampled = sample_score(score_path, opts, checkpoint=loaded, unfold=unfold, source=source, progress=progress)
    score, p, timings = sampled.score, sampled.p_codec, sampled.timings
    t0 = time.perf_counter()
    parts = [decode_performance(score, p[k]) for k in range(opts.num_samples)]
    durations = [check_performance(score, p[k], ppart) for k, ppart in enumerate(parts)]  # all, before any file
    if extras.tempo_map:
        from .data.tempo_map import tempo_mapped_midi

        data = [tempo_mapped_midi(score, ppart) for ppart in parts]
    else:
        data = [performance_midi(ppart) for ppart in parts]
    for midi, path in zip(data, midis):
        write_bytes(path, midi)
    if wavs:
        from .audio import render_audio

        for midi, path in zip(data, wavs):
            render_audio(midi, path, soundfont)
    _write_extras(extras, score, p, Path(score_path))
    timings["write"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all
    return RenderResult([*midis, *wavs], p.shape[1], durations, p, score.note_ids, sampled.options, timings)


def _write_extras(extras: Extras, score, p: np.ndarray, score_path: Path) -> None:
    """The codec and the plot of a render, when asked for."""
    if extras.save_codec is not None:
        write_codec(Path(extras.save_codec), score.note_ids, p)
    if extras.plot is not None:
        from .data.scores import score_markings
        from .plots import plot_curves

        plot_curves(Path(extras.plot), score.note_array["onset_beat"], p, markings=score_markings(score),
                    title=piece_title(score_path))


def piece_title(score_path: Path) -> str:
    """A plot's title: the score's file name, or its folder's when the file has a generic name
    (ASAP's ``xml_score.musicxml``)."""
    path = Path(score_path)
    generic = path.stem.lower() in ("xml_score", "score", "midi_score", "mei_score")
    return "/".join(path.parts[-3:-1]) if generic and len(path.parts) >= 3 else path.name


def output_paths(out: Path, num_samples: int) -> list[Path]:
    """The MIDI files of a render: ``out``, or ``<stem>_<i><suffix>`` for ``num_samples`` > 1."""
    out = Path(out)
    return [out] if num_samples == 1 else [out.with_name(f"{out.stem}_{i + 1}{out.suffix}") for i in range(num_samples)]


MAX_PERFORMANCE_S = 12 * 3600.0  # no piano piece lasts half a day; MIDI's delta times run out near 2^28 ticks


def check_performance(score, p_codec: np.ndarray, ppart) -> float:
    """A rendered performance's length in seconds, after checking that it is one: finite values and
    a median tempo a pianist could play (the range the codec accepts from data). A model that
    produces anything else is an error, not a file."""
    from .data.encode import TEMPO_RANGE_BPM

    if not np.isfinite(p_codec).all():
        raise DexterError(f"the model produced non-finite values for {int((~np.isfinite(p_codec)).sum())} "
                          "codec entries: the checkpoint or the sampling settings are broken; nothing was written")
    bpm = 60.0 / float(np.median(np.clip(p_codec[:, Row.BEAT_PERIOD], 1e-3, None)))
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
        save_npz(path, note_ids=np.array([str(i) for i in note_ids]), p_codec=p.astype(np.float32),  # ids as wide as the longest
                 names=np.array(P_CODEC_NAMES))
    else:
        raise DexterError(f"--save-codec must end in .npz or .csv, got {path.name}")
