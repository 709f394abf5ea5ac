"""Renderers that ``dexter evaluate`` compares: dexter, deadpan, linear, external:DIR.

dexter
    A checkpoint, rendering whole pieces through render's core.
deadpan
    The score's notated tempo (else the training median), constant velocity, no timing
    deviation, notated durations, no pedal: the floor.
linear
    Ridge regression from the normalised s_codec to each normalised p_codec row, fitted
    on the store's real train segments only (in the spirit of the Basis Mixer).
linear-context
    The same with the moving averages of the score features over 8, 32 and 128 notes
    as further regressors: the prior mean of ``task.prior: context`` on its own.
external:DIR
    MIDI files of another system named after the piece: matched to the score by order when
    they play exactly its notes, else aligned with parangonar.

The evaluation scores every renderer from the MIDI file it would write
(:func:`dexter_cli.data.delivered.delivered_codec`), not from its codec.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..data.store import CodecStore
from ..errors import DexterError
from .metrics import Performance
from .pieces import Piece


class LinearRenderer:
    """Ridge regression s_codec -> p_codec rows (normalised space), fitted on real train segments
    (:func:`dexter_cli.prior.fit_linear_prior`); with ``net_hidden``, corrected by a prior network
    of that width (:func:`dexter_cli.prior.fit_prior_net`, ``task.prior: mlp``); with ``within``,
    fitted within performances (``task.prior_fit: within``)."""

    def __init__(self, store: CodecStore, alpha: float = 1.0, max_rows: int | None = 400_000, seed: int = 0,
                 context: tuple[int, ...] = (), segments: np.ndarray | None = None, net_hidden: int = 0,
                 within: bool = False):
        from ..model import PriorNet
        from ..model.normalize import CodecNormalizer
        from ..prior import fit_linear_prior, fit_prior_net

        self.W, self.fitted_on = fit_linear_prior(store, alpha=alpha, max_rows=max_rows, seed=seed, context=context,
                                                  segments=segments, within=within)
        # the same mu(s) the diffusion's prior uses
        self.norm = CodecNormalizer({**store.meta["stats"], "prior_weights": self.W.tolist(),
                                     "prior_context": list(context)})
        self.net = None
        if net_hidden:  # task.prior: mlp's reading: the ridge corrected by the fitted prior network
            self.net = PriorNet(self.W.shape[0], net_hidden, self.W.shape[1])
            fit_prior_net(self.net, store, self.norm, seed=seed, segments=self.fitted_on)

    def __call__(self, piece: Piece) -> Performance:
        import torch

        with torch.no_grad():
            z = self.norm.prior(self.norm.encode_s(torch.from_numpy(np.array(piece.s_codec, dtype=np.float32))),
                                net=self.net)
        return Performance(self.norm.decode_p(z).numpy(), np.ones(len(z), dtype=bool))


class DeadpanRenderer:
    """Notated tempo, constant velocity, notated durations, no pedal.

    ``stats``: the training statistics of a codec store (or of a checkpoint's data): the
    mean velocity, and the tempo used where a score has no metronome marking.
    """

    def __init__(self, stats: dict):
        self.default_bp = float(math.exp(stats["p_log_mean"][0]))
        self.velocity = float(stats["p_log_mean"][1])

    def __call__(self, piece: Piece) -> Performance:
        from ..data.scores import notated_beat_period

        bp = None
        try:
            bp = notated_beat_period(piece.score)
        except DexterError:
            pass
        n = len(piece.onset_beat)
        p = np.zeros((n, 5), dtype=np.float32)
        p[:, 0] = bp or self.default_bp
        p[:, 1] = self.velocity
        return Performance(p, np.ones(n, dtype=bool))


class DexterRenderer:
    """Whole-piece rendering with a checkpoint (render's core).

    ``samples`` > 1 renders that many interpretations of each piece in one batched run (as
    ``dexter render -n K``) and returns them all: the evaluation scores each and averages the
    metrics per piece, which takes most of the seed-to-seed noise out of a comparison.
    """

    def __init__(self, checkpoint: Path | None, sampler: str = "dpm++", steps: int | None = None, seed: int = 0,
                 guidance: float | None = None, overlap: float = 0.5, temperature: float | None = None,
                 samples: int = 1, spread: tuple[float, float, float] | None = None, curves: str | None = None):
        from ..engine import load_expression

        from ..checks import check_seed

        if samples < 1:
            raise DexterError(f"--samples must be at least 1, got {samples}")
        check_seed(seed)
        self.sampler, self.steps, self.seed, self.guidance, self.overlap = sampler, steps, seed, guidance, overlap
        self.temperature, self.samples, self.spread, self.curves = temperature, samples, spread, curves
        self.loaded = load_expression(checkpoint)  # once, not per piece

    def settings(self) -> dict:
        """What this renderer samples with, defaults resolved (the model's recorded ones included)."""
        from ..engine import sampling_curves, sampling_settings, sampling_spread, sampling_steps

        config = self.loaded[1]
        w, tau = sampling_settings(config, self.guidance, self.temperature)
        return {"model": config.get("training", {}).get("name"), "sampler": self.sampler,
                "steps": sampling_steps(config, self.sampler, self.steps), "guidance": w, "temperature": tau,
                "spread": list(sampling_spread(config, self.spread, tau)),
                "curves": sampling_curves(config, self.curves, tau),
                "seed": self.seed, "overlap": self.overlap, "samples": self.samples}

    def __call__(self, piece: Piece) -> Performance | list[Performance]:
        from ..render import render_piece_codec

        p, note_ids = render_piece_codec(piece.path, loaded=self.loaded, unfold=piece.entry["unfolded"],
                                         sampler=self.sampler, steps=self.steps, seed=self.seed,
                                         guidance=self.guidance, overlap=self.overlap, temperature=self.temperature,
                                         spread=self.spread, curves=self.curves, num_samples=self.samples)
        if list(note_ids) != list(piece.entry["note_ids"]):
            raise DexterError(f"{piece.key}: the score's notes differ from the store's")
        perfs = [Performance(pk, np.ones(len(pk), dtype=bool)) for pk in p]
        return perfs[0] if self.samples == 1 else perfs


class ExternalRenderer:
    """MIDI files produced by another system, one per piece: matched to the score by order within
    each pitch when a file plays exactly the score's notes (``by_order``), else aligned with parangonar."""

    def __init__(self, folder: Path, by_order: bool = True):
        self.folder, self.by_order = Path(folder), by_order
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
        from ..data.align import load_performance
        from ..data.delivered import encode_file_performance

        midi = self.find(piece)
        perf, _ = load_performance(midi)
        # a file that plays exactly the score's notes is matched by order within each pitch; others by parangonar
        p, mask, _ = encode_file_performance(piece.score, perf, midi.name, by_order=self.by_order)
        return Performance(p, mask, from_file=True)


def make_renderer(spec: str, store: CodecStore | None, checkpoint: Path | None, sampler: str, steps: int | None, seed: int,
                  guidance: float | None = None, overlap: float = 0.5, temperature: float | None = None,
                  samples: int = 1, spread: tuple[float, float, float] | None = None, curves: str | None = None):
    """A renderer from ``dexter``, ``deadpan``, ``linear``, ``linear-context`` or ``external:DIR``."""
    if spec == "dexter":
        return DexterRenderer(checkpoint, sampler, steps, seed, guidance, overlap, temperature, samples, spread,
                              curves)
    if spec == "deadpan":
        if store is not None:
            return DeadpanRenderer(store.meta["stats"])
        from ..engine import load_expression

        # no store (a --pieces list): the statistics of the data the checkpoint was trained on
        return DeadpanRenderer(load_expression(checkpoint)[1]["codec"]["stats"])
    if spec in ("linear", "linear-context"):
        if store is None:
            raise DexterError(f"the {spec} renderer is fitted on a codec store's train split: give --data")
        from ..prior import CONTEXT_WIDTHS

        return LinearRenderer(store, context=CONTEXT_WIDTHS if spec == "linear-context" else ())
    if spec.startswith("external:"):
        return ExternalRenderer(Path(spec.split(":", 1)[1]))
    raise DexterError(f"unknown renderer {spec!r}; choose from dexter, deadpan, linear, linear-context, external:DIR")
