"""The data layer: dataset layouts, codecs, the on-disk store, pairing, decoding.

The only package that imports partitura; its heavy entry points (``run_codec``)
are imported lazily so that reading a store (training) does not load partitura.
"""

from .codec import C_CODEC_NAMES, C_DESCRIPTIONS, P_CODEC_NAMES
from .pairs import make_pairs, pair_store
from .split import assign_split
from .store import CODEC_VERSION, CodecStore
from .vocab import S_CODEC_NAMES

__all__ = [
    "C_CODEC_NAMES", "C_DESCRIPTIONS", "CODEC_VERSION", "CodecRun", "CodecStore", "P_CODEC_NAMES",
    "S_CODEC_NAMES", "assign_split", "make_pairs", "pair_store", "run_codec", "CodecOptions",
]


def __getattr__(name: str):
    if name in ("run_codec", "CodecRun", "CodecOptions"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
