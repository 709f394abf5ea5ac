"""The data layer: dataset layouts, codecs, the on-disk store, pairing.

The only package (with render's decoding) that imports partitura.
"""

from .codec import C_CODEC_NAMES, C_DESCRIPTIONS, P_CODEC_NAMES
from .pairs import make_pairs, pair_store
from .pipeline import CodecRun, run_codec
from .scores import S_CODEC_NAMES
from .split import assign_split
from .store import CODEC_VERSION, CodecStore

__all__ = [
    "C_CODEC_NAMES", "C_DESCRIPTIONS", "CODEC_VERSION", "CodecRun", "CodecStore", "P_CODEC_NAMES",
    "S_CODEC_NAMES", "assign_split", "make_pairs", "pair_store", "run_codec",
]
