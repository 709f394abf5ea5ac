"""Renderers that ``dexter evaluate`` compares: dexter, deadpan, linear, external:DIR.

dexter
    A checkpoint, rendering whole pieces through render's core.
deadpan
    The score's notated tempo (else the training median), constant velocity, no timing
    deviation, notated durations, no pedal: the floor.
linear
    The prior mean mu(s) alone: the ridge regression from the score features and their moving
    averages to each normalised p_codec row, fitted on the store's real train segments
    (:mod:`dexter_cli.prior`, in the spirit of the Basis Mixer).
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

from ..data.codec import Row

from ..data.store import CodecStore
from ..errors import DexterError
from ..sampling import SamplingOptions
from .metrics import Performance
from .pieces import Piece


class LinearRenderer:
    """The prior mean mu(s) alone (:class:`dexter_cli.prior.Prior`), fitted on the store's real train
    segments as a model's prior is."""

    def __init__(self, store: CodecStore):
        from ..config import TaskConfig
        from ..model.normalize import CodecNormalizer
        from ..prior import Prior

        self.prior = Prior.fit(store, alpha=TaskConfig().prior_alpha)
        self.norm = CodecNormalizer(store.meta["stats"])

    def __call__(self, piece: Piece) -> Performance:
        import torch

        with torch.no_grad():
            z = self.prior(self.norm.encode_s(torch.from_numpy(np.array(piece.s_codec, dtype=np.float32))))
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
        p[:, Row.BEAT_PERIOD] = bp or self.default_bp
        p[:, Row.VELOCITY] = self.velocity
        return Performance(p, np.ones(n, dtype=bool))


class DexterRenderer:
    """Whole-piece rendering with a checkpoint (render's core).

    ``options.num_samples`` > 1 renders that many interpretations of each piece in one batched run
    (as ``dexter render -n K``) and returns them all: the evaluation scores each and averages the
    metrics per piece, which takes most of the seed-to-seed noise out of a comparison.
    """

    def __init__(self, checkpoint: Path | None, options: SamplingOptions | dict | None = None):
        from ..render import load_model
        from ..sampling import resolve

        self.loaded = load_model(checkpoint)  # once, not per piece
        self.options = resolve(self.loaded[1], options)

    def settings(self) -> dict:
        """What this renderer samples with, every default resolved (the model's recorded ones included)."""
        return {"model": self.loaded[1].get("training", {}).get("name"), **self.options.as_dict()}

    def __call__(self, piece: Piece) -> Performance | list[Performance]:
        from ..render import sample_score

        sampled = sample_score(piece.path, self.options, checkpoint=self.loaded, unfold=piece.entry["unfolded"])
        if list(sampled.score.note_ids) != list(piece.entry["note_ids"]):
            raise DexterError(f"{piece.key}: the score's notes differ from the store's")
        perfs = [Performance(pk, np.ones(len(pk), dtype=bool)) for pk in sampled.p_codec]
        return perfs[0] if self.options.num_samples == 1 else perfs


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


def make_renderer(spec: str, store: CodecStore | None, checkpoint: Path | None,
                  options: SamplingOptions | dict | None = None):
    """A renderer from ``dexter``, ``deadpan``, ``linear`` or ``external:DIR``; ``options``: the
    dexter renderer's sampling (:func:`dexter_cli.sampling.resolve`)."""
    if spec == "dexter":
        return DexterRenderer(checkpoint, options)
    if spec == "deadpan":
        if store is not None:
            return DeadpanRenderer(store.meta["stats"])
        from ..engine import load_expression

        # no store (a --pieces list): the statistics of the data the checkpoint was trained on
        return DeadpanRenderer(load_expression(checkpoint)[1]["codec"]["stats"])
    if spec == "linear":
        if store is None:
            raise DexterError("the linear renderer is fitted on a codec store's train split: give --data")
        return LinearRenderer(store)
    if spec.startswith("external:"):
        return ExternalRenderer(Path(spec.split(":", 1)[1]))
    raise DexterError(f"unknown renderer {spec!r}; choose from dexter, deadpan, linear, external:DIR")
